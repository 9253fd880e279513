"""The planner against Ollama's behaviour (issue 11): shared weights, embedding models, the
context cap, pinned-ness, broken blobs, version defaults — tables of (desired, observed) → plan."""

from __future__ import annotations

from reconciler.apply.table import simulate
from reconciler.apply.world import FOREVER
from reconciler.desired.refs import canonical
from reconciler.desired.schema import OllamaEnv
from reconciler.observed import Architecture, LoadedObs, ModelObs
from reconciler.plan.actions import LoadModel, PullModel, RemoveModel
from reconciler.plan.ollama_version import defaults_for, load_timeout_s, support
from reconciler.plan.planner import plan
from tests.unit.factories import LLAMA, GiB, MiB, degraded, desired, model, observed, remote

LLAMA3 = "llama3:8b-instruct-q4_K_M"
EMBED = "nomic-embed-text"
NOMIC = Architecture(
    family="nomic-bert", block_count=12, head_count=12, head_count_kv=12, embedding_length=768,
    context_length=2048, embedding_model=True,
)  # fmt: skip


def kinds(p: object) -> list[str]:
    return [f"{a.kind}:{getattr(a, 'model', getattr(a, 'op', ''))}" for a in p.actions]  # type: ignore[attr-defined]


def _derived_pinned() -> list[dict[str, object]]:
    return [{"name": "work", "from": LLAMA3, "system": "Be brief.", "keep_loaded": True}]


def test_a_derived_model_pinned_with_its_base_is_one_load_and_counted_once() -> None:
    state = desired([{"name": LLAMA3, "keep_loaded": True, "num_ctx": 8192}], derived=_derived_pinned())
    seen = observed(state, remotes=[remote(LLAMA3, ("l", 4 * GiB))])
    p = plan(state, seen)
    assert kinds(p) == [f"pull:{LLAMA3}", "create:work", f"load:{LLAMA3}"]
    (load,) = [a for a in p.actions if isinstance(a, LoadModel)]
    assert load.shared_with == ("work",) and load.num_ctx == 8192  # the derived rides on the base's
    (estimate,) = p.budget.vram_estimates
    assert p.budget.vram_pinned == estimate.total + estimate.margin  # one copy (margin: once per GPU)
    after = simulate(p, seen)
    assert plan(state, after).empty  # the shared copy serves both: nothing more to load


def test_two_copies_that_fit_once_but_not_twice_are_not_refused() -> None:
    state = desired(
        [{"name": LLAMA3, "keep_loaded": True, "num_ctx": 8192}], derived=_derived_pinned(),
        vram={"per_gpu": "9GiB"},
    )  # fmt: skip
    p = plan(state, observed(state, remotes=[remote(LLAMA3, ("l", 4 * GiB))]))
    (one,) = p.budget.vram_estimates
    assert not p.refused and p.budget.vram_pinned < 9 * GiB < 2 * one.total + one.margin


def test_the_shared_copy_listed_under_the_base_keeps_the_derived_model_loaded() -> None:
    state = desired([{"name": LLAMA3, "keep_loaded": True, "num_ctx": 8192}], derived=_derived_pinned())
    base = model(LLAMA3, ("l", 4 * GiB))
    work = ModelObs(name=canonical("work"), digest="d-work", blobs=base.blobs, architecture=LLAMA)
    loaded = LoadedObs(
        name=canonical(LLAMA3), size=5 * GiB, size_vram=5 * GiB, expires_at=FOREVER, context_length=8192,
        pinned=True,
    )  # fmt: skip
    seen = observed(state, models=[base, work], loaded=(loaded,))
    p = plan(state, seen)
    assert [a.kind for a in p.actions] == ["create"]  # inventory unknown: re-create, never re-load
    assert seen.served_names() == {canonical(LLAMA3), canonical("work")}


def test_an_embedding_model_is_loaded_through_embed() -> None:
    state = desired([{"name": EMBED, "keep_loaded": True}])
    p = plan(state, observed(state, remotes=[remote(EMBED, ("e", 274 * MiB), arch=NOMIC)]))
    (load,) = [a for a in p.actions if isinstance(a, LoadModel)]
    assert load.embedding and load.num_ctx == 2048  # default 4096 capped at its trained 2048
    listed = ModelObs(
        name=canonical(EMBED), digest="d", blobs=remote(EMBED, ("e", 1)).blobs, capabilities=("embedding",)
    )
    p = plan(state, observed(state, models=[listed]))
    (load,) = [a for a in p.actions if isinstance(a, LoadModel)]
    assert load.embedding


def test_num_ctx_above_the_trained_context_is_planned_capped_and_said_for_new_ollama() -> None:
    state = desired([{"name": LLAMA3, "keep_loaded": True, "num_ctx": 32768}])
    base = model(LLAMA3, ("l", 4 * GiB))  # LLAMA: trained context 0 in the factory
    trained = base.model_copy(update={"architecture": LLAMA.model_copy(update={"context_length": 8192})})
    capped = LoadedObs(
        name=canonical(LLAMA3), size=5 * GiB, size_vram=5 * GiB, expires_at=FOREVER, context_length=8192,
        pinned=True,
    )  # fmt: skip
    p = plan(state, observed(state, models=[trained], loaded=(capped,), ollama_version="0.32.15"))
    # no reload: Ollama reports the capped 8192, and the plan says why
    assert not p.actions
    assert any(n.kind == "num_ctx_capped" and "caps num_ctx 32768 to 8192" in n.message for n in p.notes)
    old = plan(state, observed(state, models=[trained], ollama_version="0.6.8", gpu_total=80 * GiB))
    (load,) = [a for a in old.actions if isinstance(a, LoadModel)]
    assert load.num_ctx == 32768  # 0.6.8 does not cap


def test_a_model_with_missing_blobs_is_repulled_and_a_corrupt_one_removed_first() -> None:
    state = desired([{"name": LLAMA3, "keep_loaded": True}, "phi3:mini"])
    gone = model(LLAMA3, ("l", 4 * GiB)).model_copy(
        update={"broken": "blobs missing on disk: sha256:l", "missing_blobs": ("sha256:l",)}
    )
    fine = model("phi3:mini", ("p", GiB))
    seen = observed(state, models=[gone, fine], remotes=[remote(LLAMA3, ("l", 4 * GiB))])
    p = plan(state, seen)
    assert kinds(p) == [f"pull:{LLAMA3}", f"load:{LLAMA3}"]
    assert isinstance(p.actions[0], PullModel) and "missing" in p.actions[0].reason
    assert p.budget.download_bytes == 4 * GiB
    corrupt = gone.model_copy(
        update={"broken": "Ollama cannot read it (HTTP 500: invalid file magic)", "missing_blobs": ()}
    )
    p = plan(state, observed(state, models=[corrupt, fine], remotes=[remote(LLAMA3, ("l", 4 * GiB))]))
    assert kinds(p) == [f"remove:{canonical(LLAMA3)}", f"pull:{LLAMA3}", f"load:{LLAMA3}"]
    assert isinstance(p.actions[0], RemoveModel) and "invalid file magic" in p.actions[0].reason


def test_an_old_ollama_is_degraded_with_what_to_upgrade() -> None:
    state = desired(["phi3:mini"])
    seen = observed(state, models=[model("phi3:mini", ("p", GiB))], ollama_version="0.5.7")
    p = plan(state, seen)
    assert not p.actions
    flag, message = degraded(p, seen)
    assert flag and "0.5.7" in message and "ollama/ollama:0.32.15" in message
    assert support("0.6.8").supported and support("0.32.15").supported and not support("0.6.7").supported


def test_version_defaults() -> None:
    env = OllamaEnv()
    old, new = defaults_for("0.6.8"), defaults_for("0.32.15")
    assert (old.num_parallel(env), new.num_parallel(env)) == (2, 1)
    assert (old.ps_context_length, new.ps_context_length) == (False, True)
    assert (old.default_num_ctx(env, 24 * GiB), new.default_num_ctx(env, 24 * GiB)) == (4096, 32768)
    assert new.default_num_ctx(env, 8 * GiB) == 4096 and new.default_num_ctx(env, 80 * GiB) == 262144
    assert (old.caps_num_ctx, new.caps_num_ctx) == (False, True)
    assert (old.effective_num_ctx(32768, 8192), new.effective_num_ctx(32768, 8192)) == (32768, 8192)
    assert defaults_for(None, "ollama/ollama:0.6.8").version == (0, 6, 8)
    assert defaults_for(None, "ollama/ollama:latest").version == defaults_for(None).version
    assert load_timeout_s(OllamaEnv()) == 300 and load_timeout_s(OllamaEnv(OLLAMA_LOAD_TIMEOUT="10m")) == 600
    assert load_timeout_s(OllamaEnv(OLLAMA_LOAD_TIMEOUT=0)) is None


def test_status_shows_the_version_whether_it_is_supported_and_the_shared_copy() -> None:
    from rich.console import Console

    from reconciler.report.status import Status, build
    from reconciler.report.text import print_status

    state = desired([{"name": LLAMA3, "keep_loaded": True, "num_ctx": 8192}], derived=_derived_pinned())
    base = model(LLAMA3, ("l", 4 * GiB))
    work = ModelObs(name=canonical("work"), digest="d-work", blobs=base.blobs, architecture=LLAMA)
    loaded = LoadedObs(
        name=canonical(LLAMA3), size=5 * GiB, size_vram=5 * GiB, expires_at=FOREVER, pinned=True
    )
    for version, supported, words in (("0.32.15", True, "(supported"), ("0.5.7", False, "NOT supported")):
        seen = observed(state, models=[base, work], loaded=(loaded,), ollama_version=version)
        pins = {canonical(LLAMA3): True, canonical("work"): True}
        status = build(
            Status(), head="abc", result="converged", desired_pinned=pins, observed=seen,
            plan=plan(state, seen), errors=[], notes=[], applied="abc", ollama_version=version,
        )  # fmt: skip
        assert status.ollama_supported is supported
        rows = {m.name: m for m in status.models}
        assert rows[canonical("work")].loaded and rows[canonical("work")].loaded_as == canonical(LLAMA3)
        console = Console(record=True, width=200)
        print_status(status, None, console)
        text = console.export_text()
        assert f"ollama:              {version} " in text and words in text and "loaded as llama3" in text


def test_removing_a_name_whose_copy_serves_a_pinned_model_reloads_it_under_its_own_name() -> None:
    """`/api/ps` would go on listing the copy under the deleted name, which no longer says
    whose weights it holds: unload it with the name and load the pinned model again."""
    state = desired([{"name": "phi3:mini", "keep_loaded": True}], removal={"undesired": "remove"})
    pinned_model, old = model("phi3:mini", ("w", GiB)), model("phi3:old", ("w", GiB))
    loaded = LoadedObs(
        name=canonical("phi3:old"), size=2 * GiB, size_vram=2 * GiB, expires_at=FOREVER, pinned=True
    )
    seen = observed(state, models=[pinned_model, old], loaded=(loaded,), managed={"phi3:old": 1})
    p = plan(state, seen)
    assert kinds(p) == [
        f"unload:{canonical('phi3:old')}",
        f"remove:{canonical('phi3:old')}",
        "load:phi3:mini",
    ]
    assert plan(state, simulate(p, seen)).empty
