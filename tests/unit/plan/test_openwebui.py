"""OpenWebUI planned like the models: typed actions with reasons, from (desired, observed)."""

from __future__ import annotations

from typing import Any

from reconciler.apply.table import simulate
from reconciler.desired.refs import canonical
from reconciler.desired.schema import DesiredState
from reconciler.observed import (
    DeployedObs,
    KnowledgeBase,
    KnowledgeFile,
    Ledger,
    LedgerFile,
    LedgerKnowledge,
    ModelRow,
    Observed,
    OfferedModel,
    OpenWebUIObs,
)
from reconciler.plan.actions import (
    AddKnowledgeFile,
    CreateKnowledge,
    CreatePreset,
    DeleteKnowledge,
    FieldChange,
    HideModel,
    RemoveKnowledgeFile,
    ReplaceKnowledgeFile,
    ShowModel,
    UpdateKnowledge,
    model_key,
)
from reconciler.plan.kamal import deploy_hash
from reconciler.plan.openwebui import settings_hash
from reconciler.plan.planner import plan
from tests.unit.factories import GiB, MiB, desired, model, observed

PHI, EMBED, OLD = "phi3:mini", "nomic-embed-text", "old-model:1b"
WEBUI: dict[str, Any] = {
    "default_models": [PHI],
    "rag": {"embedding_engine": "ollama", "embedding_model": EMBED},
    "knowledge": [{"name": "work", "description": "Work notes"}],
    "presets": [
        {"id": "phi3-fast", "name": "Fast", "base": PHI, "system": "Be brief.", "knowledge": ["work"]}
    ],
}
FILES = {"work": {"a.md": "a" * 64, "b.md": "b" * 64}}


def _state(
    webui: dict[str, Any] | None = None, files: dict[str, dict[str, str]] | None = None
) -> DesiredState:
    state = desired([PHI, EMBED], openwebui=webui or WEBUI)
    return state.model_copy(update={"knowledge_files": files if files is not None else FILES})


def _offered(*ids: str) -> tuple[OfferedModel, ...]:
    return tuple(OfferedModel(id=i, owned_by="ollama") for i in ids)


def _seen(state: DesiredState, view: OpenWebUIObs, ledger: Ledger | None = None, **extra: Any) -> Observed:
    deployed = DeployedObs(
        openwebui_spec_hash=deploy_hash(state), openwebui_settings_hash=extra.pop("settled", None)
    )
    models = [model(PHI, ("p", GiB)), model(EMBED, ("e", 200 * MiB)), model(OLD, ("o", GiB))]
    return observed(
        state, models=models, deployed=deployed, openwebui=view, ledger=ledger or Ledger(), **extra
    )


FRESH = OpenWebUIObs(
    reachable=True, version="0.12.4", offered=_offered("phi3:mini", "nomic-embed-text:latest", OLD)
)


def test_a_fresh_openwebui_gets_each_knowledge_base_file_preset_and_hidden_model_with_its_reason() -> None:
    state = _state()
    p = plan(state, _seen(state, FRESH))
    assert [a.title() for a in p.actions] == [
        "create knowledge base work",
        "add a.md to knowledge base work",
        "add b.md to knowledge base work",
        "create preset phi3-fast on phi3:mini",
        "hide nomic-embed-text:latest from the model picker",
        f"hide {OLD} from the model picker",
    ]
    reasons = {a.title(): a.reason for a in p.actions}
    assert reasons["create knowledge base work"] == "desired since abc1234, not in OpenWebUI"
    assert (
        reasons["hide nomic-embed-text:latest from the model picker"] == "the RAG embedding model cannot chat"
    )
    add = p.actions[1]
    assert isinstance(add, AddKnowledgeFile)
    assert add.needs() >= {
        "knowledge:work",
        model_key(canonical(EMBED)),
    }  # a failed pull of it blocks the add
    preset = p.actions[3]
    assert isinstance(preset, CreatePreset) and preset.preset.params == {
        "system": "Be brief.",
        "function_calling": "legacy",
    }
    assert preset.needs() >= {"knowledge:work"}
    assert plan(state, simulate(p, _seen(state, FRESH))).empty


def _converged(state: DesiredState) -> Observed:
    seen = _seen(state, FRESH)
    return simulate(plan(state, seen), seen).model_copy(
        update={
            "deployed": seen.deployed.model_copy(update={"openwebui_settings_hash": settings_hash(state)})
        }
    )


def test_a_changed_file_is_replaced_a_new_one_added_and_a_removed_one_removed() -> None:
    state = _state()
    before = _converged(state)
    changed = _state(files={"work": {"a.md": "c" * 64, "new.md": "d" * 64}})
    p = plan(changed, before)
    by_type = {type(a): a for a in p.actions}
    assert set(by_type) == {ReplaceKnowledgeFile, AddKnowledgeFile, RemoveKnowledgeFile}
    assert (
        by_type[ReplaceKnowledgeFile].reason
        == "desired since abc1234, its content changed (sha256 aaaaaaaaaaaa → cccccccccccc)"
    )
    assert by_type[RemoveKnowledgeFile].title() == "remove b.md from knowledge base work"
    assert plan(changed, simulate(p, before)).empty


def test_hand_edits_are_put_back_with_the_fields_that_differ() -> None:
    state = _state()
    calm = _converged(state)
    assert calm.openwebui is not None and plan(state, calm).empty
    (kb,) = calm.openwebui.knowledge
    edited_kb = kb.model_copy(update={"description": "edited in the UI"})
    view = calm.openwebui.model_copy(update={"knowledge": (edited_kb,)})
    (action,) = plan(state, calm.model_copy(update={"openwebui": view})).actions
    assert isinstance(action, UpdateKnowledge) and action.changed == ("description",)
    assert action.title() == "update knowledge base work: description"
    assert action.reason == "changed in OpenWebUI by hand: description"
    assert action.diff == (FieldChange(field="description", before="edited in the UI", after=kb.description),)
    assert action.details() == (f'description: "edited in the UI" → "{kb.description}"',)


def test_a_knowledge_folder_removed_removes_the_base_the_reconciler_made_only() -> None:
    state = _state()
    calm = _converged(state)
    assert calm.openwebui is not None
    theirs = KnowledgeBase(id="kb-family", name="family", description="made by hand", file_count=2)
    seen = calm.model_copy(
        update={
            "openwebui": calm.openwebui.model_copy(update={"knowledge": (*calm.openwebui.knowledge, theirs)})
        }
    )
    without = _state({**WEBUI, "knowledge": [], "presets": []}, files={})
    deletes = [a for a in plan(without, seen).actions if isinstance(a, DeleteKnowledge)]
    assert [(d.name, d.id) for d in deletes] == [("work", calm.ledger.knowledge["work"].id)]


def test_a_model_desired_again_is_shown_and_the_row_made_to_hide_it_removed() -> None:
    state = _state()
    row = ModelRow(id=OLD, name=OLD, meta={"hidden": True, "reconciler": True})
    seen = _converged(state)
    assert seen.openwebui is not None
    view = seen.openwebui.model_copy(update={"rows": (*seen.openwebui.rows, row)})
    ledger = seen.ledger.model_copy(update={"hidden": {**seen.ledger.hidden, OLD: True}})
    again = desired([PHI, EMBED, OLD], openwebui=WEBUI).model_copy(update={"knowledge_files": FILES})
    actions = plan(again, seen.model_copy(update={"openwebui": view, "ledger": ledger})).actions
    (show,) = [a for a in actions if isinstance(a, ShowModel)]
    assert show.delete_row and show.title() == f"show {OLD} in the model picker again"


def test_settings_wait_for_a_deploy_and_for_ollama_and_an_unreachable_openwebui_is_degraded() -> None:
    state = _state()
    old = _seen(state, FRESH).model_copy(update={"deployed": DeployedObs(openwebui_spec_hash="0ld")})
    deploying = plan(state, old)
    assert [a.kind for a in deploying.actions] == ["kamal_deploy"]
    (wait,) = [n for n in deploying.notes if n.kind == "openwebui_waiting"]
    assert "once the new version answers" in wait.message and not wait.degraded
    no_ollama = plan(state, _seen(state, FRESH, ollama_reachable=False))
    assert no_ollama.actions == () and any(n.kind == "openwebui_waiting" for n in no_ollama.notes)
    down = plan(state, _seen(state, OpenWebUIObs(reachable=False, error="ConnectError")))
    (note,) = [n for n in down.notes if n.kind == "openwebui_unreachable"]
    assert note.degraded and note.requeue_after is not None and "ConnectError" in note.message


def test_a_base_deleted_by_hand_is_made_again_with_its_files() -> None:
    state = _state()
    ledger = Ledger(
        knowledge={
            "work": LedgerKnowledge(id="kb-gone", files={"a.md": LedgerFile(sha256="a" * 64, file_id="f1")})
        }
    )
    theirs = KnowledgeBase(
        id="kb-2", name="work", files=(KnowledgeFile(id="f9", path="a.md"),)
    )  # same name, not ours
    p = plan(state, _seen(state, FRESH.model_copy(update={"knowledge": (theirs,)}), ledger))
    kinds = [type(a) for a in p.actions[:3]]
    assert kinds == [CreateKnowledge, AddKnowledgeFile, AddKnowledgeFile]
    assert not any(isinstance(a, HideModel) and a.id == "phi3:mini" for a in p.actions)


def test_a_preset_with_knowledge_retrieves_it_into_the_prompt_whatever_its_model() -> None:
    from reconciler.plan.openwebui import form_json, preset_form

    webui = {
        "knowledge": [{"name": "work"}],
        "presets": [
            {"id": "fast", "name": "Fast", "base": PHI, "system": "Be brief.", "knowledge": ["work"]},
            {"id": "bare", "name": "Bare", "base": PHI},
            {"id": "tools", "name": "Tools", "base": "llama3", "knowledge": ["work"],
             "params": {"function_calling": "native"}},
        ],
    }  # fmt: skip
    state = desired([PHI, "llama3"], openwebui=webui)
    assert state.openwebui is not None
    fast, bare, tools = (preset_form(state.openwebui, p) for p in state.openwebui.presets)
    assert fast.params == {"system": "Be brief.", "function_calling": "legacy"}
    assert form_json(fast, {"work": "kb-1"})["meta"]["knowledge"] == [
        {"id": "kb-1", "name": "work", "type": "collection"}
    ]
    assert bare.params == {}  # no knowledge: OpenWebUI's default stays
    assert tools.params == {"function_calling": "native"}  # the preset's own choice wins
