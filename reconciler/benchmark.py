"""`reconciler bench`, end to end: observe → pick targets → measure → record → restore.

The measuring is apply/bench.py; this module wires it to the server the way reconcile.py
wires the planner and the executors: it observes the server once (to know which models are
there, their digests and capabilities), measures, stores the run in the history
(analytics/history.py), and puts the pinned set back with the planner's own warm loads —
the same LoadModel actions a reconcile would run — so a reconcile afterwards has nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.analytics.history import History, history_path
from reconciler.analytics.results import BenchRun
from reconciler.apply.bench import Bench, BenchBusy, BenchOptions, measure_all, server_machine
from reconciler.apply.runner import Runner
from reconciler.desired.schema import DesiredState
from reconciler.errors import ReconcilerError
from reconciler.observe.gpu_sample import GpuSampler
from reconciler.observe.server import observe_server, with_memory
from reconciler.observed import Observed
from reconciler.plan.actions import LoadModel, Plan
from reconciler.plan.bench import NotBenchmarkable, Target, default_names, target
from reconciler.plan.planner import plan as make_plan
from reconciler.report.events import EventBus
from reconciler.runtime import Runtime


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class BenchReport:
    run: BenchRun
    skipped: list[str]  # models named that could not be measured, with why
    restored: list[str]  # pinned models loaded again afterwards
    restore_notes: list[str]


def observe(desired: DesiredState, runtime: Runtime, now: Callable[[], datetime] = _utcnow) -> Observed:
    memory = runtime.state.load()
    return with_memory(observe_server(desired, runtime, memory, now()), memory, now())


def pick(desired: DesiredState, observed: Observed, names: list[str]) -> tuple[list[Target], list[str]]:
    """The targets for `names` (default: benchmarks.models, else every desired model that can
    generate), and why the others cannot be measured."""
    targets, skipped = [], []
    for name in names or default_names(desired, observed):
        try:
            targets.append(target(desired, observed, name))
        except NotBenchmarkable as exc:
            skipped.append(str(exc))
    return targets, skipped


def forget_warmed(runtime: Runtime, names: list[str]) -> None:
    """Pinned models the benchmark unloads leave the reconciler's record of what it warmed, as
    an unload action's do: their absence is the benchmark's doing, not an eviction."""
    gone = set(names)
    runtime.state.update(
        lambda m: m.model_copy(update={"warmed": {k: v for k, v in m.warmed.items() if k not in gone}})
    )


def run_bench(
    desired: DesiredState,
    runtime: Runtime,
    targets: list[Target],
    events: EventBus,
    options: BenchOptions,
    now: Callable[[], datetime] = _utcnow,
) -> BenchRun:
    """Measure the targets and record the run (completed or interrupted) in the history."""
    url = runtime.ollama_base(desired)
    sampler = GpuSampler()
    try:
        machine = server_machine(runtime.http(), url, sampler)
        memory = runtime.state.load()
        warmed_at = {name: at for name, at in memory.warmed_at.items() if name in memory.warmed}
        bench = Bench(
            runtime.ollama(url, loading=desired), options, events, sampler, wall=now, warmed_at=warmed_at
        )
        run = measure_all(
            bench,
            targets,
            machine,
            revision=desired.revision,
            started_at=now(),
            on_unloaded=lambda names: forget_warmed(runtime, names),
        )
    finally:
        sampler.close()
    history = History(
        history_path(runtime.state.root), warn=lambda text: events.emit("bench.warning", message=text)
    )
    run = run.model_copy(update={"id": history.record(run)})
    events.emit("bench.done", run_id=run.id, status=run.status, models=len(run.results))
    return run


def restore_pinned(
    desired: DesiredState, runtime: Runtime, events: EventBus, now: Callable[[], datetime] = _utcnow
) -> tuple[list[str], list[str]]:
    """Load the pinned set again with the planner's own warm loads. Returns (models loaded, the
    plan's notes or refusal when it cannot)."""
    observed = observe(desired, runtime, now)
    planned = make_plan(desired, observed)
    if planned.refused:
        return [], [v.message for v in planned.violations]
    loads = tuple(a for a in planned.actions if isinstance(a, LoadModel))
    if not loads:
        return [], list(planned.notes)
    container = observed.container.id if observed.container else ""
    runner = Runner(runtime, runtime.ollama_base(desired), events, now, None, container, desired)
    outcome = runner.run(Plan(revision=planned.revision, actions=loads))
    return [a.model for a in loads if a.title() in outcome.done], [f"{t}: {e}" for t, e in outcome.failed]


def bench(
    desired: DesiredState,
    runtime: Runtime,
    names: list[str],
    events: EventBus,
    options: BenchOptions,
    now: Callable[[], datetime] = _utcnow,
) -> BenchReport:
    """`reconciler bench`: measure, record, restore the pinned set (also after an interruption;
    BenchBusy — nothing was touched — is raised as it is)."""
    targets, skipped = pick(desired, observe(desired, runtime, now), names)
    if not targets:
        return BenchReport(
            BenchRun(started_at=now(), status="failed", note="; ".join(skipped)), skipped, [], []
        )
    failed: ReconcilerError | None = None
    try:
        run = run_bench(desired, runtime, targets, events, options, now)
    except BenchBusy:
        raise  # nothing was touched
    except ReconcilerError as exc:  # Ollama failed a request: the pinned set still goes back
        failed = exc
    restored, notes = restore_pinned(desired, runtime, events, now)
    if failed is not None:
        raise failed
    return BenchReport(run, skipped, restored, notes)
