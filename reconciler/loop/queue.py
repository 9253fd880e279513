"""Triggers in, reconciles out: single flight, bursts coalesce, newest commit wins.

Any number of triggers that arrive while a reconcile runs become one more reconcile,
which reads the branch head at that moment — so ten pushes in a second cause at most
two reconciles. Retries are scheduled with exponential backoff and full jitter.
"""

from __future__ import annotations

import random
import threading
import time


class TriggerQueue:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._reasons: set[str] = set()
        self._due: float | None = None  # monotonic time of a scheduled retry
        self._closed = False

    def put(self, reason: str) -> None:
        with self._cond:
            self._reasons.add(reason)
            self._cond.notify_all()

    def put_later(self, reason: str, delay: float) -> None:
        with self._cond:
            due = time.monotonic() + delay
            self._due = due if self._due is None else min(self._due, due)
            self._reasons.discard(reason)
            self._cond.notify_all()

    def drain(self) -> set[str]:
        """Take whatever is pending without waiting."""
        with self._cond:
            reasons, self._reasons = self._reasons, set()
            return reasons

    def pending(self) -> set[str]:
        with self._cond:
            return set(self._reasons)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, timeout: float | None = None) -> set[str] | None:
        """Wait for triggers; return all pending reasons at once (None: closed/timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                if self._due is not None and now >= self._due:
                    self._due = None
                    self._reasons.add("retry")
                if self._reasons:
                    reasons, self._reasons = self._reasons, set()
                    return reasons
                waits = [t - now for t in (self._due, deadline) if t is not None]
                if deadline is not None and now >= deadline:
                    return None
                self._cond.wait(timeout=max(min(waits), 0.001) if waits else None)
            return None


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
