"""One reconcile: observe → plan → execute, repeated until the plan is empty.

Level-triggered: it never trusts what the last run did, it observes again. A pass that
(re)creates the container is followed by another, because models can only be planned
once Ollama answers. `apply` runs this once; `serve` decides when to run it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from reconciler.desired.refs import canonical, parse_ref
from reconciler.desired.schema import DesiredState
from reconciler.errors import ReconcilerError
from reconciler.memory import Eviction, Memory, with_memory
from reconciler.observe.server import observe_server
from reconciler.observed import Observed
from reconciler.plan.actions import OpenWebUIAction, Plan
from reconciler.plan.image_tags import effective, images_due
from reconciler.plan.notes import Note, note, requeue_after
from reconciler.plan.openwebui import settings_hash
from reconciler.plan.planner import plan as make_plan
from reconciler.plan.update_policy import checks_due
from reconciler.report import status as status_mod
from reconciler.report.events import EventBus
from reconciler.report.render import plan_to_json
from reconciler.report.status import StatusResult
from reconciler.runtime import Runtime
from reconciler.state.suspend import load_suspension
from reconciler.state.upstream import record_lookups

if TYPE_CHECKING:  # the executors are imported only when there is something to do
    from reconciler.apply.context import ExecContext
    from reconciler.apply.runner import Failure, Outcome, RunHooks

# degraded: everything this installation can do is done; some planned actions it cannot do.
Result = Literal["converged", "degraded", "refused", "failed", "planned", "preempted"]
MAX_PASSES = 4


@dataclass
class ReconcileReport:
    """What one reconcile did, and when to come back (`requeue_after`, controller-runtime's
    `Result.RequeueAfter`): `serve` schedules the next run by it, never by the text."""

    result: Result
    revision: str | None
    plans: list[Plan] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    notes: tuple[Note, ...] = ()
    last_observed: Observed | None = None
    observe_error: ReconcilerError | None = None  # observing failed: nothing was planned
    # Seconds until the next reconcile even without a trigger; None: at the next trigger or
    # resync (or, for a failure that can be retried, after `serve`'s backoff).
    requeue_after: float | None = None

    @property
    def actions_run(self) -> int:
        return sum(len(o.done) for o in self.outcomes)

    @property
    def failures(self) -> list[Failure]:
        found = [f for o in self.outcomes for f in o.failed]
        if self.observe_error is not None:
            from reconciler.apply.runner import Failure  # the executors: only once something failed

            found.insert(0, Failure("observe the server", self.observe_error))
        return found

    @property
    def stalled(self) -> bool:
        """Failed, and no retry of this commit can help: every failure is a permanent error."""
        if self.result != "failed":
            return False
        failures = self.failures
        return bool(failures) and all(f.error.permanent for f in failures)

    @property
    def retrying(self) -> bool:
        """Failed, and a retry of the same commit may succeed (with backoff)."""
        return self.result == "failed" and not self.stalled


def requeue_after_of(report: ReconcileReport) -> float | None:
    """A preempted run comes back at once; a temporary error that knows when to be retried
    (a Conflict: at once) says so; otherwise the soonest any note asks for."""
    if report.result == "preempted":
        return 0.0
    if report.retrying:
        known = [f.error.retry_after for f in report.failures if f.error.retry_after is not None]
        return min(known) if known else None
    if report.result == "failed":
        return None
    return requeue_after(report.notes)


def reconcile(
    desired: DesiredState,
    runtime: Runtime,
    events: EventBus,
    *,
    dry_run: bool = False,
    hooks: RunHooks | None = None,
) -> ReconcileReport:
    events = events.bind(revision=(desired.revision or "working-tree")[:12])
    report = ReconcileReport(result="converged", revision=desired.revision)
    events.emit("reconcile.start", dry_run=dry_run)
    passes = _Passes(desired, runtime, events, report, dry_run, hooks)
    for number in range(1, MAX_PASSES + 1):
        if not passes.run(number):
            break
    else:
        report.result = "failed"
        report.notes += (
            note("passes_exhausted", "the plan was not empty after several passes; see the events"),
        )
    if report.result == "converged":
        runtime.state.update(lambda m: m.model_copy(update={"last_applied": desired.revision}))
    report.requeue_after = requeue_after_of(report)
    events.emit(
        "reconcile.done",
        result=report.result,
        actions=report.actions_run,
        notes=_notes(report.notes),
        requeue_after=report.requeue_after,
    )
    return report


@dataclass
class _Passes:
    """One pass: observe, plan, run; `run` says whether another pass is needed."""

    desired: DesiredState
    runtime: Runtime
    events: EventBus
    report: ReconcileReport
    dry_run: bool
    hooks: RunHooks | None

    def run(self, number: int) -> bool:
        desired, runtime, report = self.desired, self.runtime, self.report
        now = runtime.clock.now
        try:
            memory, observed = observe(desired, runtime, now())
        except ReconcilerError as exc:  # Docker down, a registry login secret missing…
            report.result, report.observe_error = "failed", exc
            report.notes += (note("observe_failed", str(exc)),)
            return False
        memory = _bookkeep(memory, observed, desired, now())
        if not self.dry_run:  # a dry run changes nothing, the reconciler's memory included
            runtime.state.save(memory)
        from reconciler.analytics.history import with_benchmarks  # SQLite: read only when asked

        observed = with_benchmarks(with_memory(observed, memory, now()), desired, runtime.state.root, now())
        plan = make_plan(desired, observed)
        if not self.dry_run:
            _openwebui_settled(desired, observed, plan, runtime)
        report.plans.append(plan)
        report.notes, report.last_observed = plan.notes, observed
        self.events.emit("plan", pass_number=number, **_plan_summary(plan))
        if plan.refused:
            report.result = "refused"
            return False
        if not plan.actions:
            self._nothing_planned(observed, plan)
            return False
        if self.dry_run:
            report.result = "planned"
            return False
        return self._execute(plan, observed)

    def _nothing_planned(self, observed: Observed, plan: Plan) -> None:
        if not observed.ollama_reachable and observed.container is not None:
            # Nothing could be planned for the models: that is not convergence.
            self.report.result = "failed"
            self.report.notes += (
                note("models_unchecked", "Ollama's API does not answer; the models were not checked"),
            )
        elif any(n.kind == "openwebui_held_back" for n in plan.notes):
            self.report.result = "degraded"  # all that can be done is done; not the commit's state

    def _execute(self, plan: Plan, observed: Observed) -> bool:
        report = self.report
        # The executors (and the Kamal hooks they start) work from the images `auto` moved.
        desired = effective(self.desired, observed)
        ctx = exec_context(desired, self.runtime, self.events, self.runtime.clock.now, observed)
        from reconciler.apply.runner import Runner

        outcome = Runner(ctx, self.hooks).run(plan)
        report.outcomes.append(outcome)
        if outcome.preempted:
            report.result = "preempted"
            return False
        if not outcome.ok:
            report.result = "failed"
            return False
        if outcome.unsupported:
            report.notes += tuple(note("not_implemented", str(why)) for _, why in outcome.unsupported)
            if not outcome.done:
                report.result = "degraded"
                return False
        return True


def observe(desired: DesiredState, runtime: Runtime, at: datetime) -> tuple[Memory, Observed]:
    """The server as it is, and what the reconciler remembers of it (not yet merged in)."""
    memory = runtime.state.load()
    ledger = runtime.state.load_ledger()
    deployed = desired.openwebui is not None and memory.deployed.openwebui_spec_hash is not None
    seen = observe_server(
        desired,
        runtime.readers(desired),
        at,
        openwebui=ledger.own_ids() if deployed else None,
        due_checks=lambda present: [
            parse_ref(m.name) for m in checks_due(desired, present, memory.upstream, at)
        ],
        images=images_due(desired, memory.image_tags, at),
        image_tags=memory.image_tags,
    )
    return memory, seen.model_copy(update={"ledger": ledger})


def exec_context(
    desired: DesiredState, runtime: Runtime, events: EventBus, now: Callable[[], datetime], observed: Observed
) -> ExecContext:
    from reconciler.apply.context import ExecContext, OllamaClients

    url = runtime.ollama_base(desired)
    return ExecContext(
        desired=desired,
        docker=runtime.docker,
        state=runtime.state,
        events=events,
        now=now,
        ollama=OllamaClients(
            api=runtime.ollama(url),
            puller=runtime.ollama(url, pulling=True),
            loader=runtime.ollama(url, loading=desired),
            load_timeout=Runtime.load_timeout(desired),
            base_url=url,
        ),
        ready_timeout=runtime.ready_timeout,
        api_timeout=runtime.api_timeout,
        kamal_timing=runtime.kamal_timing,
        read_knowledge=runtime.read_knowledge,
        openwebui_url=runtime.openwebui_url,
        container_id=observed.container.id if observed.container else "",
        desired_repo=runtime.desired_repo,
        desired_branch=runtime.desired_branch,
    )


def _plan_summary(plan: Plan) -> dict[str, object]:
    data = plan_to_json(plan)
    return {
        "actions": [a["title"] + " — " + a["reason"] for a in data["actions"]],
        "violations": [v["message"] for v in data["violations"]],
        "notes": _notes(plan.notes),
    }


def _notes(notes: tuple[Note, ...]) -> list[dict[str, str]]:
    return [n.model_dump() for n in notes]


def _openwebui_settled(desired: DesiredState, observed: Observed, plan: Plan, runtime: Runtime) -> None:
    """Once OpenWebUI matches the desired settings, remember it (a difference seen later is a
    hand edit) and record the desired presets seen there as the reconciler's own."""
    webui, view = desired.openwebui, observed.openwebui
    if webui is None or view is None or not view.reachable or plan.refused:
        return
    if any(isinstance(a, OpenWebUIAction) for a in plan.actions) or any(
        n.kind == "openwebui_waiting" for n in plan.notes
    ):
        return
    wanted = settings_hash(desired)
    if observed.deployed.openwebui_settings_hash != wanted:
        update = {"openwebui_settings_hash": wanted}
        runtime.state.update(
            lambda m: m.model_copy(update={"deployed": m.deployed.model_copy(update=update)})
        )
    rows = view.rows_by_id()
    seen = {p.id for p in webui.presets if p.id in rows and rows[p.id].managed}
    if not seen <= set(observed.ledger.presets):
        runtime.state.update_ledger(
            lambda led: led.model_copy(update={"presets": tuple(sorted(set(led.presets) | seen))})
        )


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


# ───────────────────────────── status: one writer for serve and apply ─────────────────────────────


def write_status(
    state_dir: Path,
    *,
    result: StatusResult,
    head: str | None,
    memory: Memory,
    desired: DesiredState | None = None,
    report: ReconcileReport | None = None,
    errors: list[str] | None = None,
    retry_in: float | None = None,
    at: datetime | None = None,
) -> status_mod.Status:
    """The one writer of status.json once a reconcile (`serve`'s or `apply`'s) ended, or a
    commit was rejected: built on the status before it (transition times), saved, returned.
    `errors` defaults to what the report says went wrong."""
    pinned = {canonical(m.name): m.keep_loaded for m in desired.ollama.all_models()} if desired else {}
    observed = report.last_observed if report else None
    status = status_mod.build(
        status_mod.load_status(state_dir),
        head=head,
        result=result,
        desired_pinned=pinned,
        observed=observed,
        plan=report.plans[-1] if report and report.plans else None,
        errors=errors if errors is not None else (report_errors(report) if report else []),
        notes=list(report.notes) if report else [],
        applied=memory.last_applied,
        ollama_version=observed.ollama_version if observed else None,
        retry_in=retry_in,
        at=at,
        settings_hash=memory.deployed.openwebui_settings_hash,
    ).model_copy(update={"suspended": load_suspension(state_dir)})
    status = status.model_copy(update={"images": status_mod.image_rows(desired, observed)})
    status_mod.save_status(state_dir, status)
    return status


def result_of(report: ReconcileReport) -> StatusResult:
    """How status records a reconcile's result: a failure no retry can fix is Stalled."""
    if report.stalled:
        return "stalled"
    if report.result == "planned":  # a dry run writes no status; never recorded as a success
        return "failed"
    return report.result


def report_errors(report: ReconcileReport) -> list[str]:
    """What went wrong, for `last_error`: the failed actions (or why the pass failed), the
    budget violations of a refused plan."""
    if report.result == "failed":
        failed = [f"{title}: {error}" for o in report.outcomes for title, error in o.failed]
        if report.observe_error is not None:
            failed.insert(0, str(report.observe_error))
        return failed or [n.message for n in report.notes]
    return [v.message for p in report.plans for v in p.violations]
