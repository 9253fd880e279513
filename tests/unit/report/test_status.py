"""`reconciler status` points at `reconciler doctor` when something is wrong, and only then."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from rich.console import Console

from reconciler.report.status import Condition, ConditionType, Status, conditions_for
from reconciler.report.text import print_status

AT = datetime(2026, 12, 1, tzinfo=UTC)


def text(status: Status) -> str:
    console = Console(record=True, width=200)
    print_status(status, 123, console)
    return console.export_text()


def condition(kind: ConditionType, on: bool) -> Condition:
    return Condition(type=kind, status=on, reason="Converged" if on else "ActionFailed", last_transition=AT)


def test_a_failure_points_at_doctor() -> None:
    assert "reconciler doctor" in text(Status(last_error="could not start container ollama"))
    assert "reconciler doctor" in text(
        Status(conditions=[condition("Ready", False), condition("Stalled", True)])
    )
    assert "reconciler doctor" in text(
        Status(conditions=[condition("Ready", True), condition("Degraded", True)])
    )


def test_a_healthy_server_does_not() -> None:
    healthy = Status(
        conditions=[condition("Ready", True), condition("Stalled", False), condition("Degraded", False)]
    )
    assert "doctor" not in text(healthy)


def test_condition_reasons_are_one_closed_set() -> None:
    """A reason outside `ConditionReason` is refused: programs can match reasons safely."""
    with pytest.raises(ValidationError, match="reason"):
        Condition.model_validate({"type": "Ready", "status": True, "reason": "Fine", "last_transition": AT})
    wanted = conditions_for("stalled", "abc", ["a secret is missing"], [], None)
    assert wanted["Stalled"] == (True, "PermanentFailure", "a secret is missing")
    assert wanted["Reconciling"][1] == "WaitingForFix"
    failed = conditions_for("failed", "abc", ["pull failed"], [], 4.0)
    assert failed["Reconciling"] == (True, "RetryScheduled", "retrying in 4 s")
    assert failed["Degraded"] == (True, "ActionFailed", "pull failed; retrying in 4 s")
