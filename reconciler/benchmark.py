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

from reconciler.analytics.results import BenchRun
from reconciler.apply.bench import BenchBusy, BenchOptions, Reach, run_bench
from reconciler.apply.runner import Runner
from reconciler.desired.schema import DesiredState
from reconciler.errors import ReconcilerError
from reconciler.memory import with_memory
from reconciler.observed import Observed
from reconciler.plan.actions import BenchTarget as Target
from reconciler.plan.actions import LoadModel, Plan
from reconciler.plan.bench import NotBenchmarkable, default_names, target
from reconciler.plan.planner import plan as make_plan
from reconciler.reconcile import exec_context
from reconciler.reconcile import observe as observe_server
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
    memory, seen = observe_server(desired, runtime, now())
    return with_memory(seen, memory, now())


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
        return [], [str(n) for n in planned.notes]
    outcome = Runner(exec_context(desired, runtime, events, now, observed)).run(
        Plan(revision=planned.revision, actions=loads)
    )
    return [a.model for a, _ in outcome.of(LoadModel, "done")], [f"{t}: {e}" for t, e in outcome.failed]


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
        url = runtime.ollama_base(desired)
        reach = Reach(runtime.ollama(url, loading=desired), runtime.http(), url, runtime.state)
        run = run_bench(desired, reach, targets, events, options, now)
    except BenchBusy:
        raise  # nothing was touched
    except ReconcilerError as exc:  # Ollama failed a request: the pinned set still goes back
        failed = exc
    restored, notes = restore_pinned(desired, runtime, events, now)
    if failed is not None:
        raise failed
    return BenchReport(run, skipped, restored, notes)
