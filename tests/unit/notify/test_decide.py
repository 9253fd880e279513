"""Which notices a reconcile's status gives, each once per change of state."""

from __future__ import annotations

from datetime import UTC, datetime

from reconciler.notify.decide import FAIL_AFTER, Notice, UpdateDone, decide
from reconciler.report.status import Condition, ModelStatus, Status

AT = datetime(2026, 12, 2, tzinfo=UTC)


def status(
    kind: str, *, models: list[ModelStatus] | None = None, disk: dict[str, int | None] | None = None
) -> Status:
    flags = {
        "ready": (True, False, False),
        "failing": (False, False, True),
        "stalled": (False, True, False),
        "degraded": (True, False, True),
    }[kind]
    conditions = [
        Condition(type=t, status=s, reason="Converged", message=f"{t} message", last_transition=AT)
        for t, s in zip(("Ready", "Stalled", "Degraded"), flags, strict=True)
    ]
    return Status(
        desired_revision="abc1234def5678",
        conditions=conditions,
        last_error="pull x failed: disk I/O error" if kind == "failing" else None,
        models=models or [],
        disk=disk or {},
    )


def told(notices: list[Notice]) -> list[str]:
    return [n.event for n in notices if not n.quiet]


def run(sequence: list[tuple[Status, int]]) -> list[list[str]]:
    sent: dict[str, str] = {}
    out = []
    for st, failures in sequence:
        notices = decide(st, failures=failures, done=[], sent=sent)
        sent.update({n.key: n.state for n in notices})
        out.append(told(notices))
    return out


def test_a_failure_is_told_after_the_retries_once_and_recovery_once() -> None:
    fail = status("failing")
    steps = (
        [(status("ready"), 0)] + [(fail, n) for n in range(1, FAIL_AFTER + 2)] + [(status("ready"), 0)] * 2
    )
    assert run(steps) == [[], [], [], ["failing"], [], ["recovered"], []]


def test_stalled_and_degraded_are_told_on_entering_them_with_the_commit_and_the_fix() -> None:
    notices = decide(status("stalled"), failures=0, done=[], sent={"health": "ready"})
    (stalled,) = notices
    assert (
        stalled.event == "stalled"
        and "abc1234def56" in stalled.body
        and "push a fixed commit" in stalled.body
    )
    assert run([(status("degraded"), 0), (status("degraded"), 0), (status("ready"), 0)]) == [
        ["degraded"],
        [],
        ["recovered"],
    ]


def test_updates_are_told_per_digest_and_disk_low_once_until_it_recovers() -> None:
    row = ModelStatus(
        name="registry.ollama.ai/library/phi3:mini", desired=True, present=True, digest="a" * 64,
        upstream_digest="b" * 64, update_policy="notify", update_state="available", update="update available",
    )  # fmt: skip
    sent: dict[str, str] = {"health": "ready"}
    first = decide(status("ready", models=[row]), failures=0, done=[], sent=sent)
    assert told(first) == ["update_available"]
    sent.update({n.key: n.state for n in first})
    assert told(decide(status("ready", models=[row]), failures=0, done=[], sent=sent)) == []
    newer = row.model_copy(update={"upstream_digest": "c" * 64})
    assert told(decide(status("ready", models=[newer]), failures=0, done=[], sent=sent)) == [
        "update_available"
    ]
    done = [
        UpdateDone(row.name, "a" * 64, "b" * 64, "x:rb"),
        UpdateDone("m", "a" * 64, "c" * 64, error="boom"),
    ]
    assert told(decide(status("ready"), failures=0, done=done, sent=sent)) == [
        "update_applied",
        "update_failed",
    ]

    low: dict[str, int | None] = {"free": 1, "min_free": 2, "models_bytes": 1, "models_budget": 100}
    near: dict[str, int | None] = {"free": 10, "min_free": 2, "models_bytes": 95, "models_budget": 100}
    fine: dict[str, int | None] = {"free": 10, "min_free": 2, "models_bytes": 1, "models_budget": 100}
    steps = [(status("ready", disk=d), 0) for d in (low, near, fine, near)]
    assert run(steps) == [["disk_low"], [], [], ["disk_low"]]
