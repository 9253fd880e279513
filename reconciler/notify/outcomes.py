"""The updates a reconcile applied or failed, from its plans and their outcomes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.notify.decide import UpdateDone
from reconciler.plan.actions import UpdateModel

if TYPE_CHECKING:
    from reconciler.reconcile import ReconcileReport


def updates_done(report: ReconcileReport | None) -> list[UpdateDone]:
    """Each pass that ran has its plan and outcome at the same index; an action is known in its
    outcome by its title (the runner's record; the typed reconcile result will carry it)."""
    if report is None:
        return []
    done: list[UpdateDone] = []
    for plan, outcome in zip(report.plans, report.outcomes, strict=False):
        failed = {f.action: str(f.error) for f in outcome.failed}
        for action in plan.actions:
            if not isinstance(action, UpdateModel):
                continue
            base = UpdateDone(action.canonical, action.old_digest, action.new_digest, action.rollback)
            if action.title() in outcome.done:
                done.append(base)
            elif action.title() in failed:
                done.append(UpdateDone(base.model, base.old, base.new, base.rollback, failed[action.title()]))
    return done
