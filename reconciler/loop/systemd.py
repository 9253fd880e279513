"""Telling systemd how `serve` is doing (`Type=notify`): READY once it serves, STATUS after each
reconcile, STOPPING on the way out, and WATCHDOG pings only while the serve loop is alive.

The loop is alive while it turns (it wakes at least once a second when idle) or while the
reconcile it runs makes progress (every event counts: pull progress, Kamal's lines, each
action). If neither happens for `stuck_after` seconds the pings stop, and systemd kills and
restarts the service after `WatchdogSec=` (the journal then says what was interrupted). A frozen
process stops pinging at once. Outside systemd (no $NOTIFY_SOCKET) all of this does nothing.

The protocol is sent with `sdnotify` (a datagram on $NOTIFY_SOCKET).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping

import sdnotify


class Liveness:
    """Beats from the loop and from the reconcile's events; alive while the last is recent."""

    def __init__(self, stuck_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stuck_after = stuck_after
        self.clock = clock
        self._last = clock()

    def beat(self) -> None:
        self._last = self.clock()

    def alive(self) -> bool:
        return self.clock() - self._last < self.stuck_after

    def silent_for(self) -> float:
        return self.clock() - self._last


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of WatchdogSec= (what systemd asks of a notify service), or None when not asked."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 1e6 / 2


class Systemd:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        self.interval = watchdog_interval(env) if self.enabled else None
        self._notifier = sdnotify.SystemdNotifier() if self.enabled else None

    def _send(self, state: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(state)

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def status(self, text: str) -> None:
        self._send(f"STATUS={text}")

    def stopping(self) -> None:
        self._send("STOPPING=1\nSTATUS=stopping")

    def feed(self, liveness: Liveness, stop: threading.Event, on_stuck: Callable[[float], None]) -> None:
        """Start the watchdog feeder thread (when systemd asked for a watchdog)."""
        if self.interval is None:
            return
        interval = self.interval

        def run() -> None:
            reported = False
            while not stop.wait(interval):
                if liveness.alive():
                    self._send("WATCHDOG=1")
                    reported = False
                elif not reported:
                    on_stuck(liveness.silent_for())
                    reported = True

        threading.Thread(target=run, name="watchdog", daemon=True).start()
