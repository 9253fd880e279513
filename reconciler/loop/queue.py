"""Triggers in, reconciles out: single flight, bursts coalesce, newest commit wins.

Any number of triggers that arrive while a reconcile runs become one more reconcile,
which reads the branch head at that moment — so ten pushes in a second cause at most
two reconciles. Retries are scheduled with exponential backoff and full jitter; a reconcile
that says when to come back (`requeue_after`) is scheduled the same way.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Literal

from reconciler.clock import SYSTEM, Clock

TriggerKind = Literal["startup", "push", "docker", "resync", "sighup", "retry", "requeue", "preempted"]


@dataclass(frozen=True, order=True)
class Trigger:
    """Why `serve` reconciles; `detail` is for people (the Docker event: `die`, `oom`…)."""

    kind: TriggerKind
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.detail}" if self.detail else self.kind


class TriggerQueue:
    def __init__(self, clock: Clock = SYSTEM) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._triggers: set[Trigger] = set()
        self._due: dict[Trigger, float] = {}  # scheduled triggers → the monotonic time they fire
        self._closed = False

    def put(self, trigger: Trigger | TriggerKind) -> None:
        with self._cond:
            self._triggers.add(_trigger(trigger))
            self._cond.notify_all()

    def put_later(self, trigger: Trigger | TriggerKind, delay: float) -> None:
        """Fire `trigger` in `delay` seconds (the sooner, if it is scheduled already)."""
        trigger = _trigger(trigger)
        with self._cond:
            due = self._clock.monotonic() + delay
            self._due[trigger] = min(self._due.get(trigger, due), due)
            self._triggers.discard(trigger)
            self._cond.notify_all()

    def drain(self) -> set[Trigger]:
        """Take whatever is pending without waiting."""
        with self._cond:
            self._fire_due()
            triggers, self._triggers = self._triggers, set()
            return triggers

    def pending(self) -> set[Trigger]:
        with self._cond:
            return set(self._triggers)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, timeout: float | None = None) -> set[Trigger] | None:
        """Wait for triggers; return all pending at once (None: closed/timeout)."""
        deadline = None if timeout is None else self._clock.monotonic() + timeout
        with self._cond:
            while not self._closed:
                self._fire_due()
                if self._triggers:
                    triggers, self._triggers = self._triggers, set()
                    return triggers
                now = self._clock.monotonic()
                if deadline is not None and now >= deadline:
                    return None
                waits = [t - now for t in (*self._due.values(), deadline) if t is not None]
                self._clock.wait(self._cond.wait, max(min(waits), 0.001) if waits else None)
            return None

    def _fire_due(self) -> None:
        now = self._clock.monotonic()
        for trigger, due in list(self._due.items()):
            if now >= due:
                del self._due[trigger]
                self._triggers.add(trigger)


def _trigger(value: Trigger | TriggerKind) -> Trigger:
    return value if isinstance(value, Trigger) else Trigger(value)


class Backoff:
    """Exponential backoff with "equal jitter" (half fixed, half random), capped."""

    def __init__(self, base: float = 2.0, cap: float = 300.0, rng: random.Random | None = None) -> None:
        self.base, self.cap = base, cap
        self.failures = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    def next_delay(self) -> float:
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** (self.failures - 1))
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0
