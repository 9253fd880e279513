"""The updates a reconcile applied or failed, from the typed results of its runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.notify.decide import UpdateDone
from reconciler.plan.actions import UpdateModel

if TYPE_CHECKING:
    from reconciler.reconcile import ReconcileReport


def updates_done(report: ReconcileReport | None) -> list[UpdateDone]:
    """Each model update that ran, applied or failed: read from the runner's typed results
    (the action itself and how it ended), never from its human-readable title."""
    if report is None:
        return []
    done: list[UpdateDone] = []
    for outcome in report.outcomes:
        for action, _ in outcome.of(UpdateModel, "done"):
            done.append(UpdateDone(action.canonical, action.old_digest, action.new_digest, action.rollback))
        for action, error in outcome.of(UpdateModel, "failed"):
            done.append(
                UpdateDone(
                    action.canonical, action.old_digest, action.new_digest, action.rollback, str(error)
                )
            )
    return done
