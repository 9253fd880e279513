"""Reconcile events: one stream, many readers (terminal, JSONL log, push output, tests).

An event is a flat dict: `event` (dotted name), `ts` (ISO time), and key-values.
Secrets never reach here: actions and specs carry references, not values.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Event = dict[str, Any]
Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self, *subscribers: Subscriber, **context: Any) -> None:
        self._subscribers = list(subscribers)
        self._context = context

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def bind(self, **context: Any) -> EventBus:
        bus = EventBus(*self._subscribers, **{**self._context, **context})
        return bus

    def emit(self, event: str, **fields: Any) -> None:
        record: Event = {"event": event, "ts": datetime.now(UTC).isoformat(), **self._context, **fields}
        for subscriber in self._subscribers:
            subscriber(record)


class Recorder:
    """Keeps every event; used by tests and by `apply --json` summaries."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e["event"] == name]


def kamal_line(event: Event) -> str | None:
    """A Kamal event as one line for a person (push output, terminal); None for other events."""
    name = event["event"]
    if name == "kamal.start":
        return f"  kamal {event.get('command')} --version={event.get('version')}"
    if name == "kamal.output":
        return f"  kamal| {event.get('line')}"
    if name == "kamal.lock_wait":
        wait, attempt = event.get("wait_s"), event.get("attempt")
        return f"  kamal: the deploy lock is held; waiting {wait} s (try {attempt})"
    if name == "kamal.interrupted_wait":
        return f"  kamal: waiting for `{event.get('running')}` (pid {event.get('pid')}), left by a restart"
    if name == "kamal.stale_lock_released":
        return f"  kamal: released the deploy lock an interrupted `{event.get('interrupted')}` left behind"
    if name == "kamal.restored_previous":
        version, healthy = event.get("version"), event.get("healthy")
        return f"  kamal: the new version failed; restarted {version} (healthy: {healthy})"
    return None
