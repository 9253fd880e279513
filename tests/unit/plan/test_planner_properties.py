"""Property tests: the planner never crashes, and a plan's effects converge in one step."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.apply.table import simulate
from reconciler.desired.refs import canonical
from reconciler.observed import Architecture, LoadedObs, Observed
from reconciler.plan.planner import plan
from tests.unit.factories import GiB, MiB, desired, model, observed, remote

NAMES = ["phi3:mini", "llama3:8b", "llama3:latest", "deepseek-r1:7b", "qwen2:0.5b", "reg.lan:5000/team/m:q4"]
DIGESTS = ["w1", "w2", "w3", "w4", "t1", "t2"]
ARCH = st.builds(
    Architecture,
    family=st.just("llama"),
    block_count=st.integers(0, 80),
    head_count=st.integers(0, 64),
    head_count_kv=st.integers(0, 64),
    embedding_length=st.integers(0, 8192),
)
layer_digests = st.lists(st.sampled_from(DIGESTS), min_size=1, max_size=3, unique=True)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[Any, Observed]:
    chosen = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=5))
    specs: list[dict[str, Any] | str] = [
        {"name": n, "keep_loaded": draw(st.booleans()), "num_ctx": draw(st.sampled_from([None, 2048, 8192]))}
        for n in chosen
    ]
    state = desired(
        specs,
        disk=draw(st.integers(0, 40 * GiB)),
        min_free=draw(st.integers(0, 20 * GiB)),
        vram={"per_gpu": draw(st.integers(0, 24 * GiB))} if draw(st.booleans()) else {},
        removal={
            "undesired": draw(st.sampled_from(["cache", "remove"])),
            "adopt_unmanaged": draw(st.booleans()),
        },
        derived=[{"name": "custom", "from": chosen[0], "system": "x"}]
        if chosen and bool(draw(st.booleans()))
        else [],
    )
    present = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=5))
    sizes = {d: draw(st.integers(0, 8 * GiB)) for d in DIGESTS}  # a digest has one size

    def layers() -> list[tuple[str, int]]:
        return [(d, sizes[d]) for d in draw(layer_digests)]

    arch = draw(st.none() | ARCH)
    models = [model(n, *layers(), arch=arch) for n in present]
    remotes = [remote(n, *layers(), arch=arch) for n in NAMES if draw(st.integers(0, 9)) > 0]
    managed = {n: draw(st.integers(1, 28)) for n in present if draw(st.booleans())}
    loaded = tuple(
        LoadedObs(
            name=canonical(n),
            size=GiB,
            size_vram=draw(st.integers(0, GiB)),
            pinned=draw(st.booleans()),
            context_length=draw(st.sampled_from([None, 2048, 4096])),
        )
        for n in present
        if draw(st.booleans())
    )
    seen = observed(
        state,
        models=models,
        remotes=remotes,
        managed=managed,
        loaded=loaded,
        free=draw(st.none() | st.integers(0, 100 * GiB)),
        gpu_total=draw(st.sampled_from([None, 8 * GiB, 512 * MiB])),
        container=draw(st.sampled_from([None, "keep"])) and observed(state).container,
        ollama_reachable=draw(st.booleans()),
    )
    return state, seen


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_planner_never_crashes_and_converges_in_one_step(case: tuple[Any, Observed]) -> None:
    state, seen = case
    first = plan(state, seen)
    if first.refused:
        assert not first.actions
        return
    after = simulate(first, seen)
    second = plan(state, after)
    if not seen.ollama_reachable:
        # Models are planned only once Ollama answers: the first pass starts the container.
        if second.refused:
            return
        after = simulate(second, after)
        second = plan(state, after)
    assert not second.refused
    assert second.actions == (), [a.title() for a in second.actions]
