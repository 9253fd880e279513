"""GPU memory taken by other processes: pinned models that no longer fit are reported as
Degraded with numbers and left unloaded, never pushed into a load that can only churn.
(The same path through real NVML runs on a GPU machine: bench/gpu_check.py --pressure.)"""

from __future__ import annotations

from reconciler.desired.refs import canonical
from reconciler.observed import GpuObs, LoadedObs
from reconciler.plan.actions import LoadModel, Plan
from reconciler.plan.planner import plan
from tests.unit.factories import GiB, degraded, desired, model, observed

LLAMA3 = "llama3:8b-instruct-q4_K_M"
PHI = "phi3:mini"


def _gpu(used: int, *processes: tuple[int, int]) -> tuple[GpuObs, ...]:
    return (GpuObs(index=0, total=8 * GiB, used=used, free=8 * GiB - used, processes=processes),)


def _loads(p: Plan) -> list[str]:
    return [a.model for a in p.actions if isinstance(a, LoadModel)]


STATE = desired([{"name": LLAMA3, "keep_loaded": True, "num_ctx": 4096}])
# estimate ≈ 4 GiB + 512 MiB KV + 262 MiB graph + 457 MiB (5.2 GiB), and llama-server's 1 GiB
# fit target left free beside it: it needs 6.2 GiB free to load wholly on the GPU
MODELS = [model(LLAMA3, ("l", 4 * GiB))]


def test_a_pinned_model_that_does_not_fit_beside_another_process_is_not_warmed() -> None:
    seen = observed(STATE, models=MODELS, gpus=_gpu(5 * GiB, (4242, 5 * GiB)))
    p = plan(STATE, seen)
    assert _loads(p) == [] and p.violations == ()  # within budget: not refused, just not now
    (note,) = [n for n in p.notes if n.kind == "no_room"]
    assert note.message.startswith(f"not warming {LLAMA3}")
    assert "only 3.0 GiB of the GPU's 8.0 GiB" in note.message
    assert "hold 5.0 GiB (pid 4242 5.0 GiB)" in note.message
    assert note.requeue_after is not None and note.requeue_after < 300  # sooner than the resync
    is_degraded, message = degraded(p, seen)
    assert is_degraded and "pid 4242" in message


def test_it_is_warmed_once_the_other_process_frees_the_memory() -> None:
    seen = observed(STATE, models=MODELS, gpus=_gpu(300 * 2**20))
    p = plan(STATE, seen)
    assert _loads(p) == [LLAMA3] and not any(n.kind == "no_room" for n in p.notes)
    assert degraded(p, seen) == (False, "")


def test_memory_held_by_ollamas_own_models_does_not_count_against_it() -> None:
    loaded = (LoadedObs(name=canonical(PHI), size=3 * GiB, size_vram=3 * GiB),)  # someone's chat
    seen = observed(STATE, models=MODELS, loaded=loaded, gpus=_gpu(3 * GiB))
    assert _loads(plan(STATE, seen)) == [LLAMA3]  # Ollama unloads the idle model to make room


def test_room_goes_to_pinned_models_in_the_order_of_the_commit() -> None:
    state = desired(
        [{"name": PHI, "keep_loaded": True, "num_ctx": 2048}, {"name": LLAMA3, "keep_loaded": True}],
        vram={"per_gpu": "8GiB"},  # both fit the budget (7.7 GiB with one fit target); the GPU decides
    )
    phi = model(PHI, ("p", GiB // 2))
    seen = observed(state, models=[phi, *MODELS], gpus=_gpu(2 * GiB, (7, 2 * GiB)))
    p = plan(state, seen)
    assert _loads(p) == [PHI]
    assert any(n.kind == "no_room" and n.message.startswith(f"not warming {LLAMA3}") for n in p.notes)


def test_a_reload_for_a_new_num_ctx_counts_the_memory_it_frees() -> None:
    loaded = (
        LoadedObs(name=canonical(LLAMA3), size=5 * GiB, size_vram=5 * GiB, pinned=True, context_length=2048),
    )
    seen = observed(STATE, models=MODELS, loaded=loaded, gpus=_gpu(int(6.5 * GiB), (9, int(1.5 * GiB))))
    p = plan(STATE, seen)
    assert _loads(p) == [LLAMA3]  # 8 - 1.5 GiB held by pid 9 leaves 6.5 GiB once the old runner goes


def test_a_pinned_model_partly_on_the_cpu_is_reported_and_not_reloaded() -> None:
    loaded = (
        LoadedObs(name=canonical(LLAMA3), size=5 * GiB, size_vram=2 * GiB, pinned=True, context_length=4096),
    )
    seen = observed(STATE, models=MODELS, loaded=loaded, gpus=_gpu(8 * GiB, (31, 6 * GiB)))
    p = plan(STATE, seen)
    assert p.actions == ()
    (note,) = p.notes
    assert note.kind == "offloaded"
    assert "runs partly on the CPU: 2.0 GiB of 5.0 GiB is in VRAM" in note.message
    assert "pid 31 6.0 GiB" in note.message
    assert degraded(p, seen)[0] is True


def test_without_a_gpu_observed_only_the_budget_decides() -> None:
    loaded = (LoadedObs(name=canonical(PHI), size=GiB, size_vram=0, pinned=True),)  # CPU-only Ollama
    state = desired([{"name": PHI, "keep_loaded": True}, {"name": LLAMA3, "keep_loaded": True}])
    seen = observed(state, models=[model(PHI, ("p", GiB)), *MODELS], loaded=loaded, gpus=(), gpu_total=None)
    p = plan(state, seen)
    assert _loads(p) == [LLAMA3] and not any(n.kind in ("offloaded", "no_room") for n in p.notes)


def test_ollama_on_the_cpu_by_choice_ignores_the_gpu() -> None:
    state = desired([{"name": LLAMA3, "keep_loaded": True}], container={"gpus": "none"})
    loaded = (LoadedObs(name=canonical(PHI), size=GiB, size_vram=0, pinned=True),)
    seen = observed(state, models=MODELS, loaded=loaded, gpus=_gpu(8 * GiB, (4242, 8 * GiB)))
    p = plan(state, seen)
    assert _loads(p) == [LLAMA3] and degraded(p, seen) == (False, "")


def test_a_pinned_model_wholly_on_the_cpu_is_degraded_when_the_gpu_is_full() -> None:
    loaded = (LoadedObs(name=canonical(LLAMA3), size=5 * GiB, size_vram=0, pinned=True, context_length=4096),)
    seen = observed(STATE, models=MODELS, loaded=loaded, gpus=_gpu(8 * GiB, (31, 8 * GiB)))
    p = plan(STATE, seen)
    assert p.actions == () and degraded(p, seen)[0] is True
    (note,) = p.notes
    assert note.kind == "offloaded"
    assert note.message.startswith(f"{LLAMA3} runs on the CPU: 0 B of 5.0 GiB is in VRAM")
