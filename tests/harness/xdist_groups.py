"""Which tests may run beside each other under pytest-xdist (`scripts/test.sh -n 2`).

The tests that hold something of the machine's alone run on one worker, one after another: the
fault tests (they kill processes and fill disks; the one that restarts the engine runs after the
rest, alone, scripts/test.sh), the full stack and every Kamal deploy over SSH (Kamal's one
`kamal-proxy` container, the Kamal registry's cached storage, this machine's SSH), the fresh
servers (bootstrap's registry on 127.0.0.1:5000, one apt cache) and systemd's watchdog test.
Everything else (unit tests, and e2e tests whose containers, volumes, networks and ports are their
own) runs on either worker.

The scheduler decides by the test's module: it sees node ids only (the workers collect).
xdist's own `--dist loadgroup` cannot be used: it marks a group by rewriting `item._nodeid`,
which pytest 9 no longer reads, so its groups are silently ignored.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

SERIAL_GROUP = "engine-serial"
SERIAL_PATHS = (
    "tests/faults/",
    "tests/e2e/test_fresh_server.py",
    "tests/e2e/test_fullstack.py",
    "tests/e2e/test_kamal_deploy.py",
    "tests/e2e/test_reconcile_kamal.py",
    "tests/e2e/test_serve_systemd.py",
)


def scope_of(nodeid: str, serial_paths: tuple[str, ...] = SERIAL_PATHS) -> str:
    """The unit of work a test belongs to: the one serial group, or the test alone."""
    return SERIAL_GROUP if nodeid.startswith(serial_paths) else nodeid


class SerialGroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> SerialGroupScheduling:
    return SerialGroupScheduling(config, log)
