"""Fixtures of the fault-injection suite: the e2e stack and GitOps fixtures, and a record of
what each case survived, written to build/reliability/faults.json for scripts/reliability.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import gitops, stack  # noqa: F401 - fixtures

RESULTS = Path(__file__).resolve().parents[2] / "build" / "reliability" / "faults.json"
_cases: dict[str, dict[str, Any]] = {}
_started = time.monotonic()


@pytest.fixture
def survived(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A dict a case fills with what it injected (`faults`: count, `detail`)."""
    record: dict[str, Any] = {"faults": 0}
    yield record
    _cases.setdefault(request.node.nodeid, {}).update(record)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "tests/faults/" not in report.nodeid.replace("\\", "/"):
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        case = _cases.setdefault(report.nodeid, {"faults": 0})
        case["outcome"] = report.outcome
        case["seconds"] = round(report.duration, 1)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Under xdist the worker that ran the cases writes the record; the controller only saw
    # their reports (no `survived` detail) and would overwrite it.
    if not _cases or session.config.pluginmanager.hasplugin("dsession"):
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"cases": _cases, "wall_seconds": round(time.monotonic() - _started, 1), "at": time.time()},
            indent=1,
        )
    )
