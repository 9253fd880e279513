"""A plan refused for VRAM names the advisor's best fitting alternatives, with numbers."""

from __future__ import annotations

from pathlib import Path

from reconciler.desired.load import load_desired
from reconciler.desired.schema import DesiredState
from reconciler.desired.source import DirSource
from reconciler.plan import advise as A
from reconciler.plan.planner import REFUSAL_MAX_PINNED, plain_plan, plan
from tests.advise_world import example_world, llama3_tag

EXAMPLE = load_desired(DirSource(Path(__file__).resolve().parents[2] / "desired_state"))


def _q8() -> DesiredState:
    desired, _ = A._rename(EXAMPLE, llama3_tag("q4_K_M"), llama3_tag("q8_0"))
    return A.without_lan(desired)


def test_a_vram_refusal_names_the_best_changes_that_fit() -> None:
    refused = plan(_q8(), example_world())
    (vram,) = [v for v in refused.violations if v.budget == "vram"]
    assert len(vram.alternatives) >= 3
    best, *others = vram.alternatives
    assert best.startswith(
        "`llama3:8b-instruct-q5_K_M` fits at num_ctx 8192 with OLLAMA_KV_CACHE_TYPE q4_0 (~"
    )
    assert any(a.startswith("`llama3:8b-instruct-q4_K_M` fits") for a in others)  # a smaller quantization
    assert any(a.startswith("unpinning `llama3:8b-instruct-q8_0`") for a in others)
    assert all("GiB" in a for a in vram.alternatives)
    assert "fits instead: `llama3:8b-instruct-q5_K_M`" in vram.message and "reconciler advise" in vram.message


def test_each_named_alternative_passes_the_plan() -> None:
    """What the refusal names is what the planner would accept (the advisor judged it with it)."""
    desired, _ = A._rename(_q8(), llama3_tag("q8_0"), llama3_tag("q5_K_M"))
    desired, _ = A._set_kv(desired, "q4_0")
    assert not plan(desired, example_world()).refused


def test_the_plain_plan_and_a_state_with_many_pinned_models_list_none() -> None:
    (vram,) = [v for v in plain_plan(_q8(), example_world()).violations if v.budget == "vram"]
    assert vram.alternatives == () and "fits instead" not in vram.message
    many = _q8()
    models = [m.model_copy(update={"keep_loaded": True}) for m in many.ollama.models]
    extra = [models[1].model_copy(update={"name": f"phi3:mini-{i}"}) for i in range(REFUSAL_MAX_PINNED)]
    many = many.model_copy(update={"ollama": many.ollama.model_copy(update={"models": models + extra})})
    refused = plan(many, example_world())
    assert refused.refused and all(not v.alternatives for v in refused.violations)
