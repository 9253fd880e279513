"""Reconcile events: one stream, many readers (terminal, JSONL log, push output, tests).

An event is a flat dict: `event` (dotted name), `ts` (ISO time), and key-values.
Secrets never reach here: actions and specs carry references, not values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from reconciler.clock import SYSTEM, Clock

Event = dict[str, Any]
Subscriber = Callable[[Event], None]

# Every event the reconciler emits (the `event` field of events.jsonl): one closed set, so a
# renderer or a test that matches a name matches one that exists.
EventName = Literal[
    "reconcile.start",
    "reconcile.done",
    "reconcile.preempted",
    "reconcile.rejected",
    "reconcile.suspended",
    "plan",
    "action.start",
    "action.done",
    "action.failed",
    "action.blocked",
    "action.unsupported",
    "pull.progress",
    "pull.done",
    "load.progress",
    "load.done",
    "container.network_created",
    "container.volume_created",
    "container.image_pulled",
    "container.container_removed",
    "container.container_created",
    "container.container_started",
    "container.container_ready",
    "container.gpu_passthrough",
    "kamal.start",
    "kamal.done",
    "kamal.output",
    "kamal.image_built",
    "kamal.image_pushed",
    "kamal.lock_wait",
    "kamal.interrupted_wait",
    "kamal.stale_lock_released",
    "kamal.restored_previous",
    "kamal.restore_failed",
    "kamal.rollback_unavailable",
    "tls.renewed",
    "trigger",
    "retry.scheduled",
    "requeue.scheduled",
    "serve.started",
    "serve.stopped",
    "serve.stuck",
    "serve.recovered",
    "bench.start",
    "bench.waiting",
    "bench.model",
    "bench.run",
    "bench.result",
    "bench.interrupted",
    "bench.warning",
    "bench.done",
    "bench.deferred",
    "update.rollback_kept",
    "update.recorded",
    "update.image",
    "update.image_failed",
    "notify.sent",
    "notify.failed",
]
EventSink = Callable[[EventName, dict[str, Any]], None]  # an executor's way to report progress


def notify(sink: EventSink | None, event: EventName, **data: Any) -> None:
    """Tell `sink` (when there is one) that `event` happened."""
    if sink is not None:
        sink(event, data)


class EventBus:
    def __init__(self, *subscribers: Subscriber, clock: Clock = SYSTEM, **context: Any) -> None:
        self._subscribers = list(subscribers)
        self._clock = clock
        self._context = context

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def bind(self, **context: Any) -> EventBus:
        bus = EventBus(*self._subscribers, clock=self._clock, **{**self._context, **context})
        return bus

    def emit(self, event: EventName, **fields: Any) -> None:
        record: Event = {"event": event, "ts": self._clock.now().isoformat(), **self._context, **fields}
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


_KAMAL_LINES: dict[EventName, str] = {
    "kamal.start": "  kamal {command} --version={version}",
    "kamal.output": "  kamal| {line}",
    "kamal.lock_wait": "  kamal: the deploy lock is held; waiting {wait_s} s (try {attempt})",
    "kamal.interrupted_wait": "  kamal: waiting for `{running}` (pid {pid}), left by a restart",
    "kamal.stale_lock_released": "  kamal: released the deploy lock `{interrupted}` left when interrupted",
    "kamal.restored_previous": "  kamal: the new version failed; restarted {version} (healthy: {healthy})",
}


def note_text(value: object) -> str:
    """A note of an event (`{"kind", "message"}`; a plain string in logs of older versions)."""
    if isinstance(value, dict):
        return str(value.get("message", ""))
    return str(value)


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def kamal_line(event: Event) -> str | None:
    """A Kamal event as one line for a person (push output, terminal); None for other events."""
    template = _KAMAL_LINES.get(event["event"])
    return template.format_map(_Fields(event)) if template else None
