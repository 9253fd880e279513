"""`serve` under systemd's notify protocol, as a real process: READY once serving, watchdog
pings while the loop makes progress, none while a reconcile is stuck (an Ollama API that hangs),
pings again once it moves. The socket here plays systemd's $NOTIFY_SOCKET."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.gitops import GitOps
from tests.e2e.stack import Stack
from tests.faults.support import clear_faults, fault

pytestmark = pytest.mark.e2e


class Notifications:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.seen: list[tuple[float, str]] = []

    def read_for(self, seconds: float) -> list[tuple[float, str]]:
        deadline = time.monotonic() + seconds
        got = []
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            for line in data.splitlines():
                got.append((time.monotonic(), line))
        self.seen += got
        return got

    def wait_for(self, line: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(m == line for _, m in self.read_for(0.2)):
                return
        raise AssertionError(f"no {line!r} in {timeout} s; got {self.seen[-5:]}")


@pytest.fixture
def notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Notifications]:
    path = Path("/tmp") / f"rcl-notify-{os.getpid()}-{time.monotonic_ns()}.sock"
    n = Notifications(path)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # WatchdogSec=0.4s: a ping every 0.2 s
    try:
        yield n
    finally:
        n.sock.close()
        path.unlink(missing_ok=True)


def longest_gap(pings: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(pings)), default=0.0)


def test_ready_then_watchdog_pings_that_stop_while_the_loop_is_stuck(
    stack: Stack, gitops: GitOps, notify: Notifications
) -> None:
    gitops.start_serve("--stuck-after", "2")
    notify.wait_for("READY=1", timeout=30)
    gitops.wait_event(lambda e: e["event"] == "reconcile.done", timeout=60)
    healthy = [t for t, m in notify.read_for(2.0) if m == "WATCHDOG=1"]
    assert len(healthy) >= 5 and longest_gap(healthy) < 1.0

    # Every Ollama API call now hangs; the client gives up after its 10 s timeout.
    fault(stack, hang_seconds=30, paths=["/api/*"])
    assert gitops.proc is not None
    gitops.proc.send_signal(signal.SIGHUP)  # reconcile now: it blocks on the hanging API
    start = time.monotonic()
    stuck = [t for t, m in notify.read_for(8.0) if m == "WATCHDOG=1"]
    assert longest_gap([start, *stuck, time.monotonic()]) >= 4, stuck  # fed ~2 s more, then silent
    assert gitops.proc.poll() is None  # alive, but systemd would kill and restart it now
    assert any(e["event"] == "serve.stuck" and e["silent_s"] >= 2 for e in gitops.events())
    clear_faults(stack)
    notify.wait_for("WATCHDOG=1", timeout=30)  # the reconcile moved on (the call timed out)
    gitops.stop_serve()
    assert any(m == "STOPPING=1" for _, m in notify.read_for(1.0) + notify.seen)
