"""Table-driven tests of the pure planner: (desired, observed) → actions or refusal."""

from __future__ import annotations

from reconciler.apply.table import simulate
from reconciler.apply.world import FOREVER
from reconciler.desired.refs import canonical
from reconciler.observed import ContainerObs, DiskObs, LoadedObs
from reconciler.plan.actions import (
    CreateDerived,
    EnsureContainer,
    KamalDeploy,
    LoadModel,
    PullModel,
    RemoveModel,
    UnloadModel,
)
from reconciler.plan.planner import plan
from tests.unit.factories import GiB, MiB, desired, model, observed, remote, running_container

PHI = "phi3:mini"
LLAMA3 = "llama3:8b-instruct-q4_K_M"
R1 = "deepseek-r1:7b"


def kinds(p: object) -> list[str]:
    return [f"{a.kind}:{getattr(a, 'model', getattr(a, 'op', ''))}" for a in p.actions]  # type: ignore[attr-defined]


def test_empty_server_creates_the_container_first_and_waits_for_ollama() -> None:
    state = desired([PHI])
    p = plan(state, observed(state, container=None, ollama_reachable=False))
    assert kinds(p) == ["container:create"]
    assert not any(n.kind == "ollama_unreachable" for n in p.notes)  # a create is coming: no warning


def test_fresh_container_pulls_every_model_pinned_first_then_loads_pinned() -> None:
    state = desired([PHI, {"name": LLAMA3, "keep_loaded": True, "num_ctx": 8192}])
    # llama3:8b-instruct-q4_K_M is 4.9 GB (4.6 GiB): with 1 GiB of KV at 8192, the graph, the CUDA
    # minimum and llama-server's 1 GiB fit target it needs ~7.3 GiB of the 7.5 GiB budget
    seen = observed(state, remotes=[remote(PHI, ("p", 2 * GiB)), remote(LLAMA3, ("l", int(4.5 * GiB)))])
    p = plan(state, seen)
    assert kinds(p) == [f"pull:{LLAMA3}", f"pull:{PHI}", f"load:{LLAMA3}"]
    load = p.actions[-1]
    assert isinstance(load, LoadModel) and load.num_ctx == 8192
    assert p.budget.download_bytes == int(6.5 * GiB)
    assert "desired since abc1234" in p.actions[0].reason


def test_identical_state_gives_an_empty_plan() -> None:
    state = desired([PHI, {"name": LLAMA3, "keep_loaded": True}])
    seen = observed(
        state,
        models=[model(PHI, ("p", GiB)), model(LLAMA3, ("l", 4 * GiB))],
        loaded=(
            LoadedObs(
                name=canonical(LLAMA3),
                size=5 * GiB,
                size_vram=5 * GiB,
                context_length=4096,
                expires_at=FOREVER,
                pinned=True,
            ),
        ),
    )
    assert plan(state, seen).empty


def test_removed_model_is_cached_by_default_and_removed_with_policy_remove() -> None:
    seen_models = [model(PHI, ("p", GiB)), model(R1, ("r", 4 * GiB))]
    cache = desired([PHI])
    p = plan(cache, observed(cache, models=seen_models, managed={R1: 1}))
    assert p.empty and p.budget.cached_models == (canonical(R1),)
    remove = desired([PHI], removal={"undesired": "remove"})
    p = plan(remove, observed(remove, models=seen_models, managed={R1: 1}))
    assert kinds(p) == [f"remove:{canonical(R1)}"]
    assert isinstance(p.actions[0], RemoveModel) and p.actions[0].frees_bytes == 4 * GiB


def test_models_pulled_by_hand_are_never_touched_unless_adopted() -> None:
    seen_models = [model(PHI, ("p", GiB)), model(R1, ("r", 4 * GiB))]
    state = desired([PHI], removal={"undesired": "remove"})
    assert plan(state, observed(state, models=seen_models)).empty  # R1 is not in the inventory
    adopt = desired([PHI], removal={"undesired": "remove", "adopt_unmanaged": True})
    assert kinds(plan(adopt, observed(adopt, models=seen_models))) == [f"remove:{canonical(R1)}"]


def test_tight_disk_budget_evicts_least_recently_used_cache_only_as_needed() -> None:
    state = desired(["new:1"], disk="10GiB")
    cached = [model("a:1", ("a", 3 * GiB)), model("b:1", ("b", 3 * GiB)), model("c:1", ("c", 3 * GiB))]
    seen = observed(
        state,
        models=cached,
        remotes=[remote("new:1", ("n", 4 * GiB))],
        managed={"a:1": 20, "b:1": 5, "c:1": 12},
    )
    p = plan(state, seen)
    # 9 GiB cached + 4 GiB new > 10 GiB: evict the oldest (b, day 5) → 10 GiB fits.
    assert kinds(p) == [f"remove:{canonical('b:1')}", "pull:new:1"]
    assert isinstance(p.actions[0], RemoveModel) and p.actions[0].eviction
    assert set(p.budget.cached_models) == {canonical("a:1"), canonical("c:1")}


def test_rotation_evicts_in_lru_order_until_it_fits() -> None:
    state = desired(["new:1"], disk="5GiB")
    cached = [model("a:1", ("a", 2 * GiB)), model("b:1", ("b", 2 * GiB)), model("c:1", ("c", 2 * GiB))]
    seen = observed(
        state,
        models=cached,
        remotes=[remote("new:1", ("n", 3 * GiB))],
        managed={"a:1": 3, "b:1": 1, "c:1": 2},
    )
    assert kinds(plan(state, seen)) == [
        f"remove:{canonical('b:1')}",
        f"remove:{canonical('c:1')}",
        "pull:new:1",
    ]


def test_shared_blobs_are_counted_once() -> None:
    state = desired(["llama3:latest", "llama3:8b"], disk="6GiB")
    seen = observed(
        state,
        models=[model("llama3:latest", ("w", 5 * GiB), ("t1", 100))],
        remotes=[remote("llama3:8b", ("w", 5 * GiB), ("t2", 200))],
    )
    p = plan(state, seen)
    pull = p.actions[0]
    assert isinstance(pull, PullModel) and pull.download_bytes == 200
    assert p.budget.disk_models_after == 5 * GiB + 300


def test_removing_a_model_that_shares_its_weights_frees_only_its_own_blobs() -> None:
    state = desired(["llama3:latest"], removal={"undesired": "remove"})
    seen = observed(
        state,
        models=[
            model("llama3:latest", ("w", 5 * GiB), ("t1", 100)),
            model("llama3:8b", ("w", 5 * GiB), ("t2", 200)),
        ],
        managed={"llama3:8b": 1},
    )
    (action,) = plan(state, seen).actions
    assert isinstance(action, RemoveModel) and action.frees_bytes == 200


def test_pull_that_breaks_the_disk_budget_is_refused_with_numbers() -> None:
    state = desired([PHI, R1], disk="5GiB")
    seen = observed(state, remotes=[remote(PHI, ("p", 2 * GiB)), remote(R1, ("r", 4 * GiB))])
    p = plan(state, seen)
    assert p.refused and not p.actions
    (v,) = p.violations
    assert v.budget == "disk" and v.needed == 6 * GiB and v.limit == 5 * GiB
    assert [name for name, _ in v.entries] == [canonical(R1), canonical(PHI)]
    assert "6.0 GiB on disk, budget 5.0 GiB" in v.message


def test_pull_that_would_leave_too_little_free_space_is_refused() -> None:
    state = desired([R1], min_free="10GiB")
    p = plan(state, observed(state, remotes=[remote(R1, ("r", 4 * GiB))], free=12 * GiB))
    assert [v.budget for v in p.violations] == ["free_space"]
    assert "would leave 8.0 GiB free, minimum 10.0 GiB" in p.violations[0].message


def test_a_resumed_pull_needs_free_space_only_for_what_is_left() -> None:
    state = desired([R1], min_free="10GiB")
    fetch = [remote(R1, ("r", 4 * GiB))]
    half = {"sha256:r": 2 * GiB, "sha256:other": 3 * GiB}  # a partial of another blob is no credit
    disk = DiskObs(total=1000 * GiB, free=12 * GiB, partial=half)
    p = plan(state, observed(state, remotes=fetch, disk=disk))
    assert [v.budget for v in p.violations] == []
    assert p.budget.disk_free_after == 10 * GiB
    disk = DiskObs(total=1000 * GiB, free=11 * GiB, partial=half)
    (v,) = plan(state, observed(state, remotes=fetch, disk=disk)).violations
    assert "pulling 4.0 GiB (2.0 GiB of it already downloaded) would leave 9.0 GiB free" in v.message


def test_unknown_download_size_is_refused_with_the_reason() -> None:
    state = desired([PHI])
    p = plan(state, observed(state, remote_errors={canonical(PHI): "registry.ollama.ai unreachable"}))
    assert p.refused and "unreachable" in p.violations[0].message


def test_pinned_models_over_the_vram_budget_are_refused_naming_each() -> None:
    state = desired(
        [
            {"name": LLAMA3, "keep_loaded": True, "num_ctx": 8192},
            {"name": R1, "keep_loaded": True, "num_ctx": 8192},
        ]
    )
    seen = observed(state, models=[model(LLAMA3, ("l", int(4.6 * GiB))), model(R1, ("r", int(4.4 * GiB)))])
    p = plan(state, seen)
    (v,) = p.violations
    assert v.budget == "vram" and v.limit == 8 * GiB - 512 * MiB
    assert {name for name, _ in v.entries} == {LLAMA3, R1}
    assert v.needed > v.limit and "budget 7.5 GiB" in v.message


def test_vram_estimate_follows_the_documented_formula() -> None:
    state = desired([{"name": LLAMA3, "keep_loaded": True, "num_ctx": 4096}])
    p = plan(state, observed(state, models=[model(LLAMA3, ("l", 4 * GiB))]))
    (est,) = p.budget.vram_estimates
    assert est.kv_cache == 512 * MiB  # 128 KiB/token f16 × 4096 (ollama.md worked example)
    quant = desired(
        [{"name": LLAMA3, "keep_loaded": True, "num_ctx": 4096}],
        container={"env": {"OLLAMA_FLASH_ATTENTION": True, "OLLAMA_KV_CACHE_TYPE": "q8_0"}},
    )
    (est_q,) = plan(quant, observed(quant, models=[model(LLAMA3, ("l", 4 * GiB))])).budget.vram_estimates
    assert est_q.kv_cache == 256 * MiB


def test_image_or_env_change_recreates_the_container_and_keeps_the_volume() -> None:
    old = desired([PHI])
    new = desired([PHI], container={"image": "ollama/ollama:0.7.0"})
    seen = observed(old, models=[model(PHI, ("p", GiB))])
    (action,) = plan(new, seen).actions
    assert isinstance(action, EnsureContainer) and action.op == "recreate"
    assert action.spec.volume == "ollama" and "models volume is kept" in action.reason
    env = desired([PHI], container={"env": {"OLLAMA_NUM_PARALLEL": 2}})
    assert kinds(plan(env, seen)) == ["container:recreate"]


def test_recreate_reloads_pinned_models() -> None:
    state = desired([{"name": PHI, "keep_loaded": True}], container={"image": "ollama/ollama:0.7.0"})
    seen = observed(
        desired([PHI]),
        models=[model(PHI, ("p", GiB))],
        loaded=(LoadedObs(name=canonical(PHI), size=GiB, size_vram=GiB, pinned=True),),
    )
    assert kinds(plan(state, seen)) == ["container:recreate", f"load:{PHI}"]


def test_stopped_container_is_started() -> None:
    state = desired([PHI])
    running = observed(state).container
    assert running is not None
    stopped = ContainerObs(name="ollama", running=False, status="exited", spec_hash=running.spec_hash)
    assert kinds(plan(state, observed(state, container=stopped, models=[model(PHI, ("p", GiB))]))) == [
        "container:start"
    ]


def test_openwebui_only_change_plans_only_a_kamal_deploy() -> None:
    webui = {"image": "ghcr.io/open-webui/open-webui:v0.12.4", "auth": False}
    before = desired([PHI], openwebui=webui)
    seen = simulate(
        plan(before, observed(before, models=[model(PHI, ("p", GiB))])),
        observed(before, models=[model(PHI, ("p", GiB))]),
    )
    assert plan(before, seen).empty
    after = desired([PHI], openwebui={**webui, "image": "ghcr.io/open-webui/open-webui:v0.12.5"})
    (action,) = plan(after, seen).actions
    assert isinstance(action, KamalDeploy) and not action.first


def test_a_model_the_reconciler_pinned_earlier_is_unloaded_and_wrong_ctx_is_reloaded() -> None:
    state = desired([PHI, {"name": LLAMA3, "keep_loaded": True, "num_ctx": 8192}])
    loaded = (
        LoadedObs(name=canonical(PHI), size=GiB, size_vram=GiB, pinned=True),
        LoadedObs(name=canonical(LLAMA3), size=5 * GiB, size_vram=5 * GiB, pinned=True, context_length=4096),
    )
    models = [model(PHI, ("p", GiB)), model(LLAMA3, ("l", 4 * GiB))]
    seen = observed(state, models=models, loaded=loaded, warmed=(canonical(PHI), canonical(LLAMA3)))
    p = plan(state, seen)
    assert kinds(p) == [f"unload:{canonical(PHI)}", f"load:{LLAMA3}"]
    assert isinstance(p.actions[0], UnloadModel)
    assert "want 8192" in p.actions[1].reason


def test_a_model_that_only_never_expires_is_not_the_reconcilers_to_unload() -> None:
    """With a negative OLLAMA_KEEP_ALIVE every model a person loads never expires: pinned-ness
    comes from the desired state and the reconciler's own record, not from the expiry."""
    state = desired([PHI, {"name": LLAMA3, "keep_loaded": True}])
    loaded = (
        LoadedObs(name=canonical(PHI), size=GiB, size_vram=GiB, pinned=True),
        LoadedObs(name=canonical(LLAMA3), size=5 * GiB, size_vram=5 * GiB, pinned=True, context_length=4096),
    )
    seen = observed(state, models=[model(PHI, ("p", GiB)), model(LLAMA3, ("l", 4 * GiB))], loaded=loaded)
    assert plan(state, seen).empty


def test_derived_model_is_created_after_its_base_and_recreated_when_its_spec_changes() -> None:
    derived = [{"name": "work", "from": PHI, "system": "Be brief.", "parameters": {"temperature": 0.2}}]
    state = desired([PHI], derived=derived)
    seen = observed(state, remotes=[remote(PHI, ("p", GiB))])
    p = plan(state, seen)
    assert kinds(p) == [f"pull:{PHI}", "create:work"]
    after = simulate(p, seen)
    assert plan(state, after).empty
    changed = desired([PHI], derived=[{**derived[0], "system": "Be thorough."}])
    (action,) = plan(changed, after).actions
    assert isinstance(action, CreateDerived) and "changed" in action.reason


def test_ollama_unreachable_with_a_healthy_container_plans_no_model_actions() -> None:
    state = desired([PHI])
    p = plan(state, observed(state, ollama_reachable=False))
    assert p.empty is True
    assert any(n.kind == "ollama_unreachable" and "does not answer" in n.message for n in p.notes)


def test_pinned_model_evicted_is_rewarmed_then_left_alone_after_repeated_evictions() -> None:
    from reconciler.observed import EvictionObs

    state = desired([PHI, {"name": LLAMA3, "keep_loaded": True}])
    models = [model(PHI, ("p", GiB)), model(LLAMA3, ("l", 4 * GiB))]
    once = observed(
        state, models=models, evictions=(EvictionObs(model=canonical(LLAMA3), count=1, suspects=(PHI,)),)
    )
    (load,) = plan(state, once).actions
    assert isinstance(load, LoadModel) and f"{PHI} was loaded instead" in load.reason
    thrash = observed(
        state, models=models, evictions=(EvictionObs(model=canonical(LLAMA3), count=3, suspects=(PHI,)),)
    )
    p = plan(state, thrash)
    assert p.actions == ()
    assert any(
        n.kind == "eviction_loop" and "evicted 3 times" in n.message and PHI in n.message for n in p.notes
    )


def test_settings_changed_by_hand_in_openwebui_are_put_back() -> None:
    from rich.console import Console

    from reconciler.observed import DeployedObs, ModelRow, OpenWebUIObs
    from reconciler.plan.actions import FieldChange, UpdatePreset
    from reconciler.plan.kamal import deploy_hash
    from reconciler.plan.openwebui import settings_hash
    from reconciler.report.render import plan_to_json, print_plan

    webui = {"default_models": [PHI], "presets": [{"id": "phi3-fast", "name": "Fast", "base": PHI}]}
    state = desired([PHI], openwebui=webui)
    deployed = DeployedObs(
        openwebui_spec_hash=deploy_hash(state), openwebui_settings_hash=settings_hash(state)
    )
    fresh = observed(
        state, models=[model(PHI, ("p", GiB))], deployed=deployed, openwebui=OpenWebUIObs(reachable=True)
    )
    calm = simulate(plan(state, fresh), fresh)
    assert plan(state, calm).empty
    assert calm.openwebui is not None
    (row,) = calm.openwebui.rows
    by_hand = row.model_copy(update={"params": {"system": "edited in the UI"}})
    edited = calm.model_copy(update={"openwebui": calm.openwebui.model_copy(update={"rows": (by_hand,)})})
    (action,) = plan(state, edited).actions
    assert isinstance(action, UpdatePreset) and action.changed == ("system",)
    assert "changed in OpenWebUI by hand: system" in action.reason
    assert action.title() == "update preset phi3-fast: system"
    assert action.diff == (FieldChange(field="system", before="edited in the UI", after=None),)
    shown = plan_to_json(plan(state, edited))["actions"][0]["diff"]
    assert shown == [{"field": "system", "before": "edited in the UI", "after": None}]
    console = Console(record=True, width=200)
    print_plan(plan(state, edited), console)
    assert 'system: "edited in the UI" → (unset)' in console.export_text()
    assert isinstance(by_hand, ModelRow)
    assert plan(state, simulate(plan(state, edited), edited)).empty


def test_a_lan_certificate_near_expiry_is_renewed_by_a_deploy_never_a_rollback() -> None:
    from datetime import UTC, datetime

    from reconciler.observed import CertificateObs, DeployedObs, KamalApp, KamalObs
    from reconciler.plan.actions import RenewCertificate
    from reconciler.plan.kamal import deploy_hash
    from reconciler.plan.openwebui import settings_hash

    tls = {"exposure": {"mode": "proxy", "host": "chat.lan", "tls": {"enabled": True, "names": ["chat.lan"]}}}
    state = desired([PHI], openwebui={"default_models": [PHI], **tls})
    version = deploy_hash(state)
    assert version is not None
    deployed = DeployedObs(openwebui_spec_hash=version, openwebui_settings_hash=settings_hash(state))
    cert = CertificateObs(
        not_after=datetime(2026, 12, 1, tzinfo=UTC), ca_not_after=datetime(2035, 1, 1, tzinfo=UTC)
    )
    app = KamalApp(name="openwebui-web-x", version=version, running=True, networks=("kamal", "llm"))
    kamal = KamalObs(apps=(app,), kamal_network=True, certificate=cert)
    seen = observed(
        state,
        models=[model(PHI, ("p", GiB))],
        deployed=deployed,
        kamal=kamal,
        at=datetime(2026, 11, 25, tzinfo=UTC),
    ).model_copy(
        update={"container": running_container(state).model_copy(update={"networks": ("kamal", "llm")})}
    )
    renew, deploy = plan(state, seen).actions
    assert isinstance(renew, RenewCertificate) and "expires 2026-12-01 (in 6 days)" in renew.reason
    assert (
        isinstance(deploy, KamalDeploy) and not deploy.first and deploy.version == version
    )  # retained, yet deployed
    assert deploy.needs() >= renew.provides()  # a failed renewal blocks the deploy
    assert plan(state, simulate(plan(state, seen), seen)).empty


def test_a_version_that_did_not_become_healthy_is_held_back_until_the_spec_changes() -> None:
    from reconciler.observed import DeployedObs
    from reconciler.plan.kamal import deploy_hash
    from reconciler.plan.openwebui import settings_hash

    good = desired([PHI], openwebui={"default_models": [PHI]})
    broken = desired([PHI], openwebui={"default_models": [PHI], "image": "example/openwebui:bad"})
    deployed = DeployedObs(
        openwebui_spec_hash=deploy_hash(good),
        openwebui_settings_hash=settings_hash(good),
        openwebui_failed_hash=deploy_hash(broken),
    )
    seen = observed(broken, models=[model(PHI, ("p", GiB))], deployed=deployed)
    p = plan(broken, seen)
    assert not [a for a in p.actions if a.kind in ("kamal_deploy", "kamal_rollback")]
    (why,) = [n for n in p.notes if n.kind == "openwebui_held_back"]
    assert why.degraded and f"{deploy_hash(good)} keeps serving" in why.message and "push" in why.message
    fixed = desired([PHI], openwebui={"default_models": [PHI], "image": "example/openwebui:fixed"})
    (deploy,) = [a for a in plan(fixed, seen).actions if a.kind == "kamal_deploy"]
    assert isinstance(deploy, KamalDeploy) and deploy.version == deploy_hash(fixed)
    assert not [n for n in plan(fixed, seen).notes if n.kind == "openwebui_held_back"]
    reverted = plan(good, seen)
    assert not [a for a in reverted.actions if a.kind in ("kamal_deploy", "kamal_rollback")]
