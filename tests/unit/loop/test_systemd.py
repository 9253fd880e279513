"""The watchdog's liveness rule and the environment systemd hands a notify service."""

from __future__ import annotations

import os

from reconciler.loop.systemd import Liveness, Systemd, watchdog_interval


def test_alive_while_beats_are_recent() -> None:
    now = [100.0]
    live = Liveness(stuck_after=30, clock=lambda: now[0])
    now[0] += 29
    assert live.alive()
    now[0] += 2
    assert not live.alive() and live.silent_for() == 31
    live.beat()
    assert live.alive()


def test_watchdog_interval_is_half_of_watchdogsec_for_this_pid_only() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}) == 30
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None and watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_outside_systemd_nothing_is_sent() -> None:
    quiet = Systemd({})
    assert not quiet.enabled and quiet.interval is None
    quiet.ready("x")  # no socket: a no-op, never an error
