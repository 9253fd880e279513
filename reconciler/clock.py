"""The time the reconciler reads and waits on, passed in so tests run on fake time.

`observe`, the events, the journal, the trigger queue and `serve` take a `Clock`; none of them
call `time` or `datetime.now` themselves. `SystemClock` is the real one. `FakeClock` jumps:
a wait with a timeout moves its time forward by the timeout at once (like trio's autojump
clock), so a test of a two-minute backoff takes no time and asserts the exact instant.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

Waiter = Callable[[float | None], bool]  # threading.Event.wait or threading.Condition.wait


class Clock(Protocol):
    def now(self) -> datetime:
        """The wall-clock time, in UTC (for status, events, the journal)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals and deadlines)."""
        ...

    def wait(self, waiter: Waiter, timeout: float | None) -> bool:
        """Wait on an Event's or a (held) Condition's `wait` for at most `timeout` seconds."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, waiter: Waiter, timeout: float | None) -> bool:
        return waiter(timeout)


SYSTEM = SystemClock()


class FakeClock:
    """Time that moves only when told to (`advance`) or when something waits with a timeout.
    Meant for one waiting thread: a thread that loops on timed waits (the resync timer) would
    run the clock forward as fast as it loops."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        self._lock = threading.Lock()
        self._start = start
        self._elapsed = 0.0

    def now(self) -> datetime:
        with self._lock:
            return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        with self._lock:
            return self._elapsed

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._elapsed += max(seconds, 0.0)

    def wait(self, waiter: Waiter, timeout: float | None) -> bool:
        if timeout is None:  # nothing to jump to: wait for a real notify
            return waiter(None)
        if waiter(0):  # already set / notified: no time passes
            return True
        self.advance(timeout)
        return waiter(0)
