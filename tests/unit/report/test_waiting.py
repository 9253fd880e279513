"""`wait_for` over a real event log file: the result of a commit's reconcile and its exit code."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.report.eventlog import EventLog, log_path
from reconciler.report.status import Condition, Status
from reconciler.report.waiting import WaitRules, settled, wait_for

A = "a" * 40
B = "b" * 40


def write(state: Path, *events: dict[str, Any]) -> None:
    log = EventLog(log_path(state))
    for event in events:
        log({"ts": "2026-12-02T00:00:00Z", **event})


def done(rev: str, result: str, **extra: Any) -> dict[str, Any]:
    return {"event": "reconcile.done", "revision": rev[:12], "result": result, "actions": 0, **extra}


def start(rev: str) -> dict[str, Any]:
    return {"event": "reconcile.start", "revision": rev[:12]}


def test_converged_refused_rejected_and_failed_map_to_their_exit_codes(tmp_path: Path) -> None:
    cases = [
        (done(A, "converged"), "converged", 0),
        (done(A, "degraded", notes=["evicted"]), "degraded", 0),
        (done(A, "refused", notes=["disk budget"]), "refused", 3),
        (done(A, "failed", notes=["pull failed: 500"]), "failed", 4),
        ({"event": "reconcile.rejected", "revision": A[:12], "problems": ["ollama.yaml:5"]}, "rejected", 2),
    ]
    for index, (end, result, code) in enumerate(cases):
        state = tmp_path / str(index)
        write(state, {"event": "trigger", "head": A[:12]}, start(A), end)
        waited = wait_for(state, A, WaitRules(timeout=2))
        assert (waited.result, waited.exit_code) == (result, code)
    assert "pull failed: 500" in wait_for(tmp_path / "3", A, WaitRules(timeout=2)).reason


def test_only_the_last_reconcile_of_the_commit_counts(tmp_path: Path) -> None:
    write(tmp_path, start(A), done(A, "failed", notes=["first try"]), start(A), done(A, "converged"))
    assert wait_for(tmp_path, A, WaitRules(timeout=2)).result == "converged"


def test_a_reconcile_that_ends_after_the_wait_began_is_followed(tmp_path: Path) -> None:
    write(tmp_path, start(B), done(B, "converged"))
    seen: list[str] = []

    def later() -> None:
        time.sleep(0.3)
        write(tmp_path, start(A), {"event": "action.start", "revision": A[:12]}, done(A, "converged"))

    threading.Thread(target=later).start()
    waited = wait_for(tmp_path, A, WaitRules(timeout=10), lambda e: seen.append(e["event"]))
    assert waited.result == "converged" and seen == ["reconcile.start", "action.start", "reconcile.done"]


def test_failures_are_followed_up_to_the_attempts_then_reported(tmp_path: Path) -> None:
    write(tmp_path, start(A), done(A, "failed", notes=["pull failed"]))
    assert wait_for(tmp_path, A, WaitRules(timeout=2)).result == "failed"  # one attempt: `wait`

    def retried() -> None:
        time.sleep(0.3)
        write(tmp_path, {"event": "retry.scheduled", "revision": A[:12]}, start(A), done(A, "converged"))

    threading.Thread(target=retried).start()
    assert wait_for(tmp_path, A, WaitRules(timeout=10, attempts=3)).result == "converged"  # the hook
    assert wait_for(tmp_path / "x", A, WaitRules(timeout=0.2)).result == "timeout"


def test_a_newer_commit_is_followed_or_reported_as_superseding(tmp_path: Path) -> None:
    write(tmp_path, start(A), {"event": "reconcile.done", "revision": A[:12], "result": "preempted"})
    write(tmp_path, start(B), done(B, "converged"))
    newer = WaitRules(timeout=2, newer=lambda other, mine: other == B[:12])
    followed = wait_for(tmp_path, A, newer)
    assert (followed.result, followed.revision, followed.exit_code) == ("converged", B[:12], 0)
    hook = WaitRules(timeout=2, follow_newer=False, newer=newer.newer)
    assert wait_for(tmp_path, A, hook).result == "superseded"
    unrelated = wait_for(tmp_path, A, WaitRules(timeout=0.3))
    assert unrelated.result == "timeout"  # B is not a descendant of A: not followed


def test_the_status_settles_an_applied_or_stalled_commit_without_the_log() -> None:
    at = datetime.now(UTC)
    rules = WaitRules(timeout=1, newer=lambda other, mine: other == B)
    assert settled(Status(last_applied_revision=A), A, rules).result == "converged"  # type: ignore[union-attr]
    assert settled(Status(last_applied_revision=B), A, rules).revision == B  # type: ignore[union-attr]
    stalled = Condition(
        type="Stalled", status=True, reason="BudgetExceeded", message="disk", last_transition=at
    )
    refused = Status(last_attempted_revision=A, conditions=[stalled])
    assert settled(refused, A, rules).exit_code == 3  # type: ignore[union-attr]
    invalid = stalled.model_copy(update={"reason": "InvalidDesiredState"})
    assert settled(Status(last_attempted_revision=A, conditions=[invalid]), A, rules).exit_code == 2  # type: ignore[union-attr]
    assert settled(Status(last_attempted_revision=A), A, rules) is None
    permanent = stalled.model_copy(update={"reason": "PermanentFailure"})
    assert settled(Status(last_attempted_revision=A, conditions=[permanent]), A, rules).exit_code == 4  # type: ignore[union-attr]


def test_a_reconcile_planned_while_suspended_is_passed_over_once_resumed(tmp_path: Path) -> None:
    suspended = {"event": "reconcile.done", "revision": A[:12], "result": "planned", "actions": 0}
    write(tmp_path, {"event": "trigger", "head": A[:12]}, start(A), suspended)
    assert wait_for(tmp_path, A, WaitRules(timeout=2)).exit_code == 6

    def resumed() -> None:
        time.sleep(0.3)
        write(tmp_path, {"event": "trigger", "head": A[:12]}, start(A), done(A, "converged"))

    threading.Thread(target=resumed).start()
    assert wait_for(tmp_path, A, WaitRules(timeout=10, still_suspended=lambda: False)).result == "converged"
