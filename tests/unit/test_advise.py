"""The advisor's choices: tables of (GPU size, pinned set, candidates) → proposal, each option
judged by the planner itself on the example's server (tests/advise_world.py: an RTX 3070
running Ollama 0.32.15 with the real models' architectures and sizes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.desired.load import load_desired
from reconciler.desired.schema import DesiredState
from reconciler.desired.source import DirSource
from reconciler.observed import EvictionObs
from reconciler.plan import advise as A
from reconciler.plan.planner import plain_plan as plan
from tests.advise_world import GIB, LIB, example_world, llama3_tag

EXAMPLE = load_desired(DirSource(Path(__file__).resolve().parents[2] / "desired_state"))


def _with_llama3(quant: str, *, pinned: bool = True) -> DesiredState:
    """The example with llama3 at another quantization (its references follow)."""
    desired, _ = A._rename(EXAMPLE, llama3_tag("q4_K_M"), llama3_tag(quant))
    if not pinned:
        desired, _ = A._set_model(desired, llama3_tag(quant), keep_loaded=False)
    return desired


def _candidates(desired: DesiredState, *quants: str) -> dict[str, list[A.Candidate]]:
    name = next(m.name for m in desired.ollama.models if m.name.startswith("llama3:"))
    return {name: [A.Candidate(llama3_tag(q)) for q in quants if llama3_tag(q) != name]}


ALL = ("q3_K_M", "q4_K_M", "q5_K_M", "q6_K", "q8_0")


def _advise(desired: DesiredState, gpu: int, quants: tuple[str, ...] = ALL, **world: object) -> A.Advice:
    observed = A.with_gpu(example_world(**world), gpu)  # type: ignore[arg-type]
    return A.advise(desired, observed, check=plan, candidates=_candidates(desired, *quants))


def _what(o: A.Option | None) -> tuple[str, str, int, bool] | None:
    """(candidate's quantization, KV cache type, num_ctx, unpinned) of a proposal."""
    if o is None:
        return None
    return (A.quant_of(o.candidate), o.kv_type, o.num_ctx, A.is_unpin(o))


# (GPU, llama3 quantization pinned, candidates) → (proposal, the next better that does not fit)
CASES = [
    ("8 GB, as shipped: one step up, with a q4_0 KV cache", 8 * GIB, "q4_K_M", ALL,
     ("Q5_K_M", "q4_0", 8192, False), "Q6_K"),
    ("8 GB, Q8_0 is refused: Q5_K_M with a q4_0 KV cache is the least loss", 8 * GIB, "q8_0", ALL,
     ("Q5_K_M", "q4_0", 8192, False), "Q6_K"),
    ("8 GB, Q8_0 and only Q4_K_M to compare", 8 * GIB, "q8_0", ("q4_K_M",),
     ("Q4_K_M", "q8_0", 8192, False), "Q8_0"),
    ("8 GB, Q8_0 and no candidate: only a smaller context or KV cache, or unpinning", 8 * GIB, "q8_0", (),
     ("Q8_0", "q8_0", 8192, True), None),
    ("12 GB: Q8_0 fits at the desired KV cache", 12 * GIB, "q4_K_M", ALL,
     ("Q8_0", "q8_0", 8192, False), None),
    ("6 GB: nothing of llama3 fits beside the embedding model; unpin it", 6 * GIB, "q4_K_M", ALL,
     ("Q4_K_M", "q8_0", 8192, True), None),
    ("16 GB, Q8_0 already: nothing better to propose", 16 * GIB, "q8_0", ALL, None, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "gpu", "quant", "quants", "proposal", "blocked"), CASES, ids=[c[0] for c in CASES]
)
def test_the_proposal(
    name: str, gpu: int, quant: str, quants: tuple[str, ...], proposal: tuple[str, str, int, bool] | None,
    blocked: str | None,
) -> None:  # fmt: skip
    advice = _advise(_with_llama3(quant), gpu, quants)
    assert _what(advice.best) == proposal
    assert (A.quant_of(advice.blocked.candidate) if advice.blocked else None) == blocked
    if advice.best is not None:
        assert advice.best.fits and advice.best.needed <= (advice.limit or 0)


def test_every_figure_is_the_planners() -> None:
    """An option's VRAM is what `plan` reports for the desired state the edit would give."""
    advice = _advise(EXAMPLE, 8 * GIB)
    assert advice.best is not None
    desired, _ = A._rename(EXAMPLE, llama3_tag("q4_K_M"), llama3_tag("q5_K_M"))
    desired, _ = A._set_kv(desired, "q4_0")
    planned = plan(A.without_lan(desired), A.with_gpu(example_world(), 8 * GIB))
    assert not planned.refused and planned.budget.vram_pinned == advice.best.needed
    assert (
        advice.needed == plan(A.without_lan(EXAMPLE), A.with_gpu(example_world(), 8 * GIB)).budget.vram_pinned
    )


def test_the_table_holds_each_candidate_at_the_desired_setting() -> None:
    advice = _advise(EXAMPLE, 8 * GIB)
    llama3 = [r for r in advice.rows if r.model == llama3_tag("q4_K_M")]
    assert [A.quant_of(r.candidate) for r in llama3] == ["Q4_K_M", "Q3_K_M", "Q5_K_M", "Q6_K", "Q8_0"]
    assert all(r.num_ctx == 8192 and r.kv_type == "q8_0" and r.exact for r in llama3)
    assert [r.fits for r in llama3] == [True, True, False, False, False]
    own = [r.own_total for r in llama3]
    assert own[1] < own[0] < own[2] < own[3] < own[4]  # the bigger file, the more VRAM
    phi3 = next(r for r in advice.rows if r.model == "phi3:mini")
    assert not phi3.pinned and not phi3.fits  # people who load phi3 push a pinned model out


def test_a_refusal_gets_the_best_of_each_kind_that_fits() -> None:
    advice = _advise(_with_llama3("q8_0"), 8 * GIB)
    assert not advice.fits
    kinds = {A._kind(o, 8192, "q8_0"): o for o in advice.alternatives}
    assert set(kinds) == {"quantization", "unpin"}  # a smaller context or KV cache alone is not enough
    assert A.quant_of(kinds["quantization"].candidate) == "Q4_K_M"
    assert all(o.fits for o in advice.alternatives)


def test_a_candidate_without_a_manifest_is_scaled_from_its_tag_and_says_so() -> None:
    observed = A.with_gpu(example_world().model_copy(update={"remote": ()}), 8 * GIB)
    advice = A.advise(EXAMPLE, observed, check=plan, candidates=_candidates(EXAMPLE, "q5_K_M"))
    q5 = next(r for r in advice.rows if r.candidate == llama3_tag("q5_K_M"))
    exact = _advise(EXAMPLE, 8 * GIB, ("q5_K_M",))
    q5_exact = next(r for r in exact.rows if r.candidate == llama3_tag("q5_K_M"))
    assert not q5.exact and q5_exact.exact
    assert q5.own_total == pytest.approx(q5_exact.own_total, rel=0.02)  # bits per weight: within 2 %
    assert "size estimated from the tag" in A.summary(advice, q5)


def test_measured_and_predicted_rates() -> None:
    measured = {(LIB + llama3_tag("q4_K_M")).lower(): A.Measured(eval_tps=60.0, simulated=False, weights=0)}
    observed = A.with_gpu(example_world(), 8 * GIB)
    advice = A.advise(EXAMPLE, observed, check=plan, candidates=_candidates(EXAMPLE, *ALL), measured=measured)
    rows = {A.quant_of(r.candidate): r for r in advice.rows if r.model == llama3_tag("q4_K_M")}
    assert rows["Q4_K_M"].measured is not None and rows["Q4_K_M"].predicted_tps is None
    # bandwidth-bound: the rate scales with the bytes of weights read per token
    assert rows["Q8_0"].predicted_tps == pytest.approx(
        60.0 * rows["Q4_K_M"].own.weights / rows["Q8_0"].own.weights  # type: ignore[union-attr]
    )
    assert rows["Q3_K_M"].predicted_tps > 60.0 > rows["Q5_K_M"].predicted_tps  # type: ignore[operator]


@pytest.mark.parametrize(("gpu", "keeps_both"), [(8 * GIB, False), (16 * GIB, True)])
def test_a_pinned_model_evicted_again_and_again_gets_the_options_that_keep_both(
    gpu: int, keeps_both: bool
) -> None:
    world = example_world().model_copy(
        update={"evictions": (EvictionObs(model=(LIB + llama3_tag("q4_K_M")).lower(), count=3,
                                          suspects=(LIB + "deepseek-r1:7b",)),)}
    )  # fmt: skip
    advice = A.advise(EXAMPLE, A.with_gpu(world, gpu), check=plan)
    (evicted,) = advice.evictions
    assert evicted.by == "deepseek-r1:7b" and evicted.count == 3
    assert bool(evicted.options) == keeps_both
    assert all(o.fits and o.model == "deepseek-r1:7b" for o in evicted.options)
    # the example loads at most 2 runners; the pinned copies (llama3, nomic-embed-text) and
    # deepseek are 3: whatever VRAM is free, Ollama would unload one of them
    runners = ("container", "env", "OLLAMA_MAX_LOADED_MODELS")
    assert all(
        any(c.path == runners and (c.old, c.new) == (2, 3) for c in o.changes) for o in evicted.options
    )


@pytest.mark.parametrize(("limit", "edit"), [(4, None), (None, None), (1, (1, 3))])
def test_the_runner_limit_is_raised_only_when_it_is_what_evicts(limit: int | None, edit: object) -> None:
    env = EXAMPLE.ollama.container.env.model_copy(update={"OLLAMA_MAX_LOADED_MODELS": limit})
    container = EXAMPLE.ollama.container.model_copy(update={"env": env})
    desired = EXAMPLE.model_copy(
        update={"ollama": EXAMPLE.ollama.model_copy(update={"container": container})}
    )
    world = example_world().model_copy(
        update={"evictions": (EvictionObs(model=(LIB + llama3_tag("q4_K_M")).lower(), count=2,
                                          suspects=(LIB + "deepseek-r1:7b",)),)}
    )  # fmt: skip
    (evicted,) = A.advise(desired, A.with_gpu(world, 16 * GIB), check=plan).evictions
    assert evicted.options
    runners = ("container", "env", "OLLAMA_MAX_LOADED_MODELS")
    for o in evicted.options:
        found = [(c.old, c.new) for c in o.changes if c.path == runners]
        assert found == ([edit] if edit else [])  # unset: 3 per GPU (sched.go), enough for 3


def test_the_sentence() -> None:
    advice = _advise(EXAMPLE, 8 * GIB)
    text = A.summary(advice)
    assert text.startswith(
        "`llama3:8b-instruct-q5_K_M` fits at num_ctx 8192 with OLLAMA_KV_CACHE_TYPE q4_0 (~"
    )
    assert "`llama3:8b-instruct-q6_K` does not" in text
    none = _advise(_with_llama3("q8_0"), 16 * GIB)
    assert A.summary(none) == "the desired state is the best option that fits: no change proposed"


@pytest.mark.parametrize(
    ("tag", "quant"),
    [("llama3:8b-instruct-q4_K_M", "Q4_K_M"), ("qwen2.5:7b-instruct-q8_0", "Q8_0"), ("phi3:mini", ""),
     ("llama3:8b-instruct-fp16", "F16"), ("gemma:2b-instruct-q3_K_S", "Q3_K_S"), ("x/y:q6_K", "Q6_K")],
)  # fmt: skip
def test_quantizations_read_from_tags(tag: str, quant: str) -> None:
    assert A.quant_of(tag) == quant
    assert (
        A.quality("Q4_K_M") < A.quality("Q5_K_M") < A.quality("Q6_K") < A.quality("Q8_0") < A.quality("F16")
    )
