"""One reconcile: observe → plan → execute, repeated until the plan is empty.

Level-triggered: it never trusts what the last run did, it observes again. A pass that
(re)creates the container is followed by another, because models can only be planned
once Ollama answers. `apply` runs this once; `serve` decides when to run it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from reconciler.apply.runner import Outcome, RunHooks, Runner
from reconciler.desired.refs import canonical
from reconciler.desired.schema import DesiredState
from reconciler.observe.server import observe_server, with_memory
from reconciler.observed import Observed
from reconciler.plan.actions import Plan
from reconciler.plan.planner import plan as make_plan
from reconciler.report.events import EventBus
from reconciler.report.render import plan_to_json
from reconciler.runtime import Runtime
from reconciler.state.store import Eviction, Memory
from reconciler.state.upstream import record_lookups

# degraded: everything this installation can do is done; some planned actions it cannot do.
Result = Literal["converged", "degraded", "refused", "failed", "planned", "preempted"]
MAX_PASSES = 4


@dataclass
class ReconcileReport:
    result: Result
    revision: str | None
    plans: list[Plan] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    notes: tuple[str, ...] = ()
    last_observed: Observed | None = None

    @property
    def actions_run(self) -> int:
        return sum(len(o.done) for o in self.outcomes)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def reconcile(
    desired: DesiredState,
    runtime: Runtime,
    events: EventBus,
    *,
    dry_run: bool = False,
    now: Callable[[], datetime] = _utcnow,
    hooks: RunHooks | None = None,
) -> ReconcileReport:
    events = events.bind(revision=(desired.revision or "working-tree")[:12])
    report = ReconcileReport(result="converged", revision=desired.revision)
    events.emit("reconcile.start", dry_run=dry_run)
    for number in range(1, MAX_PASSES + 1):
        memory = runtime.state.load()
        observed = observe_server(desired, runtime, memory, now())
        memory = _bookkeep(memory, observed, desired, now())
        if not dry_run:  # a dry run changes nothing, the reconciler's memory included
            runtime.state.save(memory)
        observed = with_memory(observed, memory, now())
        plan = make_plan(desired, observed)
        report.plans.append(plan)
        report.notes, report.last_observed = plan.notes, observed
        events.emit("plan", pass_number=number, **_plan_summary(plan))
        if plan.refused:
            report.result = "refused"
            break
        if not plan.actions:
            if not observed.ollama_reachable and observed.container is not None:
                # Nothing could be planned for the models: that is not convergence.
                report.result = "failed"
                report.notes += ("Ollama's API does not answer; the models were not checked",)
            break
        if dry_run:
            report.result = "planned"
            break
        container_id = observed.container.id if observed.container else ""
        runner = Runner(runtime, runtime.ollama_base(desired), events, now, hooks, container_id, desired)
        outcome = runner.run(plan)
        report.outcomes.append(outcome)
        if outcome.preempted:
            report.result = "preempted"
            break
        if not outcome.ok:
            report.result = "failed"
            break
        if outcome.unsupported:
            report.notes += tuple(f"not implemented: {why}" for _, why in outcome.unsupported)
            if not outcome.done:
                report.result = "degraded"
                break
    else:
        report.result = "failed"
        report.notes += ("the plan was not empty after several passes; see the events",)
    if report.result == "converged":
        runtime.state.update(lambda m: m.model_copy(update={"last_applied": desired.revision}))
    events.emit("reconcile.done", result=report.result, actions=report.actions_run, notes=list(report.notes))
    return report


def _plan_summary(plan: Plan) -> dict[str, object]:
    data = plan_to_json(plan)
    return {
        "actions": [a["title"] + " — " + a["reason"] for a in data["actions"]],
        "violations": [v["message"] for v in data["violations"]],
        "notes": list(plan.notes),
    }


def _bookkeep(memory: Memory, observed: Observed, desired: DesiredState, at: datetime) -> Memory:
    """Refresh LRU times of desired/loaded models and record evictions of warmed models."""
    wanted = {canonical(m.name) for m in desired.ollama.all_models()}
    # A copy /api/ps lists once serves every name on its weights (server/sched.go).
    loaded = observed.served_names()
    inventory = tuple(
        e.model_copy(update={"last_used": at}) if e.name in wanted or e.name in loaded else e
        for e in memory.inventory
    )
    container_id = observed.container.id if observed.container and observed.container.running else None
    warmed = dict(memory.warmed)
    evictions = dict(memory.evictions)
    if observed.ollama_reachable:
        for name, loaded_in in memory.warmed.items():
            if name in loaded:
                continue
            del warmed[name]
            if container_id and loaded_in == container_id and name in wanted:
                suspects = tuple(sorted(m.name for m in observed.loaded))
                evictions[name] = (*evictions.get(name, ()), Eviction(at=at, suspects=suspects))
    memory = memory.model_copy(update={"inventory": inventory, "warmed": warmed, "evictions": evictions})
    return record_lookups(memory, observed, at)
