"""`reconciler status` points at `reconciler doctor` when something is wrong, and only then."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from reconciler.report.status import Condition, Status
from reconciler.report.text import print_status

AT = datetime(2026, 12, 1, tzinfo=UTC)


def text(status: Status) -> str:
    console = Console(record=True, width=200)
    print_status(status, 123, console)
    return console.export_text()


def condition(kind: str, on: bool) -> Condition:
    return Condition(type=kind, status=on, reason="r", last_transition=AT)  # type: ignore[arg-type]


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
