"""The updates a notification tells of come from the runner's typed results, not from titles."""

from __future__ import annotations

from typing import Any, cast

import pytest

from reconciler.apply import runner as runner_mod
from reconciler.apply.context import ExecContext
from reconciler.apply.models import ModelActionInterrupted
from reconciler.apply.runner import Runner
from reconciler.notify.decide import UpdateDone
from reconciler.notify.outcomes import updates_done
from reconciler.plan.actions import Action, Plan, UpdateModel
from reconciler.reconcile import ReconcileReport
from reconciler.report.events import EventBus


def _update(model: str, old: str, new: str) -> UpdateModel:
    return UpdateModel(
        model=model,
        canonical=f"registry.ollama.ai/library/{model}",
        old_digest=old * 64,
        new_digest=new * 64,
        download_bytes=1,
        rollback=f"registry.ollama.ai/library/{model}-sha256-{old * 12}",
        reason="policy auto, inside the window",
    )


def test_updates_are_told_by_their_results_whatever_their_titles_say(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two updates with the same title (a wording that no longer tells them apart), one applied
    and one failed: each is told as what became of it."""
    good, bad = _update("phi3:mini", "a", "b"), _update("llama3:8b", "c", "d")

    def execute(action: Action, ctx: Any) -> None:
        if action == bad:
            raise ModelActionInterrupted("pull llama3:8b failed: connection reset")

    monkeypatch.setattr(runner_mod, "execute", execute)
    monkeypatch.setattr(UpdateModel, "title", lambda self: "update a model")
    ctx = cast(ExecContext, type("Ctx", (), {"events": EventBus()})())
    plan = Plan(revision="abc", actions=(good, bad))
    outcome = Runner(ctx).run(plan)
    assert outcome.done == ["update a model"] and [f.action for f in outcome.failed] == ["update a model"]
    report = ReconcileReport(result="failed", revision="abc", plans=[plan], outcomes=[outcome])
    assert updates_done(report) == [
        UpdateDone(good.canonical, good.old_digest, good.new_digest, good.rollback),
        UpdateDone(bad.canonical, bad.old_digest, bad.new_digest, bad.rollback,
                   "pull llama3:8b failed: connection reset"),
    ]  # fmt: skip
