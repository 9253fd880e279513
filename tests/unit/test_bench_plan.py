"""`benchmarks.on_change` in the pure planner: a converged server plans one RunBenchmark of the
listed models not measured at their current settings, inside the window, with the pinned set's
loads to run after it; deferred attempts wait; planning again on its effect plans nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.analytics.history import History, history_path, with_benchmarks
from reconciler.analytics.results import BenchRun, settings_key
from reconciler.apply.table import simulate
from reconciler.desired.refs import canonical
from reconciler.observed import BenchObs, LoadedObs, Observed
from reconciler.plan.actions import LoadModel, PullModel, RunBenchmark
from reconciler.plan.bench import target
from reconciler.plan.planner import plan
from tests.unit.factories import GiB, desired, model, observed, remote
from tests.unit.test_bench_history import _result

PHI = "phi3:mini"
LLAMA3 = "llama3:8b-instruct-q4_K_M"
NIGHT = datetime(2026, 12, 2, 3, 30, tzinfo=UTC)
NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _state(**bench: Any) -> Any:
    return desired(
        [{"name": LLAMA3, "keep_loaded": True, "num_ctx": 8192}, PHI],
        benchmarks={"models": [LLAMA3, PHI], "on_change": True, **bench},
    )


def _seen(state: Any, bench: BenchObs | None, **extra: Any) -> Observed:
    loaded = (
        LoadedObs(name=canonical(LLAMA3), size=5 * GiB, size_vram=5 * GiB, pinned=True, context_length=8192),
    )
    models = [model(LLAMA3, ("l", 4 * GiB)), model(PHI, ("p", 2 * GiB))]
    return observed(state, models=models, loaded=loaded, warmed=(canonical(LLAMA3),), bench=bench, **extra)


def _keys(state: Any, seen: Observed, *names: str) -> tuple[str, ...]:
    return tuple(target(state, seen, n).key(seen.ollama_version) for n in names)


def test_a_converged_server_benchmarks_what_was_never_measured_then_loads_the_pinned_set() -> None:
    state = _state(window="03:00-05:00")
    seen = _seen(state, BenchObs(clock=NIGHT))
    p = plan(state, seen)
    (action,) = p.actions
    assert isinstance(action, RunBenchmark)
    assert [t.model for t in action.targets] == [LLAMA3, PHI]
    assert action.targets[0].setting.num_ctx == 8192  # measured as people use it
    assert "benchmarks.on_change, benchmarks.window 03:00-05:00" in action.reason
    (load,) = action.restore
    assert isinstance(load, LoadModel) and load.model == LLAMA3 and load.num_ctx == 8192
    # what the benchmark leaves: both measured, the pinned set loaded: nothing more to do
    assert plan(state, simulate(p, seen)).empty


def test_only_models_not_measured_at_their_settings_key_are_due() -> None:
    state = _state()
    seen = _seen(state, BenchObs(clock=NOON))
    llama_key, _ = _keys(state, seen, LLAMA3, PHI)
    (action,) = plan(state, _seen(state, BenchObs(clock=NOON, benchmarked=(llama_key,)))).actions
    assert isinstance(action, RunBenchmark) and [t.model for t in action.targets] == [PHI]
    # a new num_ctx is a new settings key: measured again
    wider = desired(
        [{"name": LLAMA3, "keep_loaded": True, "num_ctx": 8192}, {"name": PHI, "num_ctx": 2048}],
        benchmarks={"models": [LLAMA3, PHI], "on_change": True},
    )
    both = BenchObs(clock=NOON, benchmarked=_keys(state, seen, LLAMA3, PHI))
    assert plan(state, _seen(state, both)).empty
    (again,) = plan(wider, _seen(wider, both)).actions
    assert isinstance(again, RunBenchmark) and [t.model for t in again.targets] == [PHI]


def test_outside_the_window_it_waits_with_a_note() -> None:
    state = _state(window="03:00-05:00")
    p = plan(state, _seen(state, BenchObs(clock=NOON)))
    assert p.empty
    assert any(
        "runs in benchmarks.window 03:00-05:00" in str(n) and n.kind == "benchmark_waiting" for n in p.notes
    )


def test_a_deferred_attempt_is_tried_again_after_half_an_hour() -> None:
    state = _state()
    recent = BenchObs(clock=NOON, deferred=((canonical(PHI), NOON - timedelta(minutes=10)),))
    (action,) = plan(state, _seen(state, recent)).actions
    assert isinstance(action, RunBenchmark) and [t.model for t in action.targets] == [LLAMA3]
    assert any(
        f"benchmark of {PHI} deferred" in str(n) and "12:20" in str(n)
        for n in plan(state, _seen(state, recent)).notes
    )
    old = BenchObs(clock=NOON, deferred=((canonical(PHI), NOON - timedelta(minutes=31)),))
    (action,) = plan(state, _seen(state, old)).actions
    assert isinstance(action, RunBenchmark) and [t.model for t in action.targets] == [LLAMA3, PHI]


@pytest.mark.parametrize(
    ("bench", "on_change"),
    [(None, True), (BenchObs(clock=NOON), False), (BenchObs(), True)],
    ids=["history not read", "on_change off", "no clock"],
)
def test_nothing_is_planned_without_on_change_or_its_observation(
    bench: BenchObs | None, on_change: bool
) -> None:
    state = _state(on_change=on_change)
    assert plan(state, _seen(state, bench)).empty


def test_a_server_that_has_work_to_do_benchmarks_only_once_it_converged() -> None:
    state = _state()
    seen = _seen(state, BenchObs(clock=NOON)).model_copy(
        update={"models": (model(LLAMA3, ("l", 4 * GiB)),), "remote": (remote(PHI, ("p", 2 * GiB)),)}
    )
    first = plan(state, seen)
    assert [type(a) for a in first.actions] == [PullModel]
    assert isinstance(plan(state, simulate(first, seen)).actions[0], RunBenchmark)


def test_the_history_says_what_was_measured_and_what_was_deferred(tmp_path: Path) -> None:
    history = History(history_path(tmp_path))
    llama, phi = canonical(LLAMA3), canonical(PHI)
    history.record(BenchRun(started_at=NOON, status="busy", models=(llama, phi)))
    assert history.deferred() == {llama: NOON, phi: NOON}
    assert history.benchmarked() == set()
    later = NOON + timedelta(hours=1)
    measured = _result(model=phi)
    history.record(BenchRun(started_at=later, status="completed", models=(phi,), results=(measured,)))
    assert history.deferred() == {llama: NOON}  # phi3 measured since
    assert history.benchmarked() == {settings_key(phi, measured.digest, measured.setting, None)}
    state = _state()
    off = _state(on_change=False)
    seen = _seen(state, None)
    assert with_benchmarks(seen, off, tmp_path, NOON).bench is None  # not read when off
    read = with_benchmarks(seen, state, tmp_path, NOON).bench
    assert read is not None and read.clock == NOON and dict(read.deferred) == {llama: NOON}
