"""What to change in OpenWebUI's database, from the desired state and what its API shows (pure).

Ownership: the reconciler touches only what it made. Knowledge bases are in its ledger
(memory: base name → id, file path → sha256 and file id); its files carry
`meta.data.reconciler_path`; its model rows (presets, and rows it made to hide a model) carry
`meta.reconciler: true` and the tag `reconciler`. A knowledge base, file or preset a person
created by hand is never deleted; a hand edit of a managed one is put back.

    knowledge/<name>/     a knowledge base; files added, replaced when their sha256 changes,
                          removed when gone; a folder removed from the desired state
                          removes its base
    presets               a model row: base model + system prompt + params + attached
                          knowledge (the same knowledge on several presets is how a chat keeps
                          its workspace when it switches model)
    other Ollama models   hidden from the picker (`meta.hidden`), e.g. the rollback cache and
                          the RAG embedding model; shown again when desired

The settings are planned only against an OpenWebUI that answers, in a pass that neither
deploys it nor (re)starts Ollama: its files are embedded through Ollama, and its model list
comes from Ollama.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.desired.refs import InvalidReference, canonical, parse_ref
from reconciler.desired.schema import DesiredState, Knowledge, OpenWebUISpec, Preset
from reconciler.labels import MANAGED_TAG
from reconciler.observed import (
    KnowledgeBase,
    Ledger,
    LedgerKnowledge,
    ModelRow,
    Observed,
    OfferedModel,
    OpenWebUIObs,
)
from reconciler.plan.actions import (
    Action,
    AddKnowledgeFile,
    CreateKnowledge,
    CreatePreset,
    DeleteKnowledge,
    DeletePreset,
    FieldChange,
    HideModel,
    PresetForm,
    RemoveKnowledgeFile,
    ReplaceKnowledgeFile,
    ShowModel,
    UpdateKnowledge,
    UpdatePreset,
)
from reconciler.plan.hashing import spec_hash
from reconciler.plan.notes import Note, note
from reconciler.plan.people import grant_actions, group_actions, user_actions


def settings_hash(desired: DesiredState) -> str | None:
    """What lives in OpenWebUI's database (knowledge, presets, visible models), as one hash:
    remembered once OpenWebUI matches it, so a difference seen later is a hand edit."""
    webui = desired.openwebui
    if webui is None:
        return None
    models = sorted(canonical(m.name) for m in desired.ollama.all_models())
    return spec_hash(
        {
            "knowledge": [k.model_dump(mode="json") for k in webui.knowledge],
            "files": desired.knowledge_files,
            "presets": [p.model_dump(mode="json") for p in webui.presets],
            "models": models,
            "people": [u.model_dump(mode="json") for u in webui.users],
            "groups": [g.model_dump(mode="json") for g in webui.groups],
            "model_access": {k: v.model_dump(mode="json") for k, v in webui.model_access.items()},
            "prune": webui.prune,
        }
    )


def _canonical(name: str) -> str | None:
    try:
        return canonical(name)
    except InvalidReference:
        return None


def embedding_model(webui: OpenWebUISpec) -> str | None:
    """The model Ollama embeds knowledge files with (canonical), when Ollama embeds them."""
    return _canonical(webui.rag.embedding_model) if webui.rag.embedding_engine == "ollama" else None


def visible_models(desired: DesiredState, webui: OpenWebUISpec) -> set[str]:
    """Canonical names of the Ollama models the picker shows: the desired models, less the RAG
    embedding model (it cannot chat)."""
    wanted = {canonical(m.name) for m in desired.ollama.all_models()}
    wanted.discard(embedding_model(webui) or "")
    return wanted


def base_model_id(webui: OpenWebUISpec, base: str) -> str:
    """OpenWebUI's id of a preset's base: Ollama's short name (`phi3:mini`), or the model id of
    a cloud endpoint for `<cloud>/<model>`."""
    head, _, rest = base.partition("/")
    if rest and any(c.name == head for c in webui.cloud):
        return rest
    try:
        return parse_ref(base).short
    except InvalidReference:
        return base


def preset_form(webui: OpenWebUISpec, preset: Preset) -> PresetForm:
    params: dict[str, Any] = dict(preset.params)
    if preset.system:
        params["system"] = preset.system
    if preset.knowledge:
        # OpenWebUI 0.12 retrieves a model's attached knowledge into the prompt only with
        # `function_calling: legacy` (utils/middleware.py process_chat_payload); its default,
        # `native`, offers it as tools instead, which only tool-calling models use (Ollama
        # refuses tools for phi3 or deepseek-r1). Legacy RAG works with every base model, local
        # or cloud, which is what sharing knowledge across presets is for. A preset's own
        # `params.function_calling` wins.
        params.setdefault("function_calling", "legacy")
    return PresetForm(
        id=preset.id,
        name=preset.name,
        base_model_id=base_model_id(webui, preset.base),
        params=params,
        knowledge=tuple(preset.knowledge),
    )


def form_json(form: PresetForm, kb_ids: dict[str, str]) -> dict[str, Any]:
    """The preset as OpenWebUI's `models/create` and `models/model/update` take it."""
    knowledge = [{"id": kb_ids[n], "name": n, "type": "collection"} for n in form.knowledge if n in kb_ids]
    return {
        "id": form.id,
        "base_model_id": form.base_model_id,
        "name": form.name,
        "meta": {
            "description": f"{form.name}: managed by the reconciler from git",
            "knowledge": knowledge,
            "tags": [{"name": MANAGED_TAG}],
            MANAGED_TAG: True,
        },
        "params": dict(form.params),
        "is_active": True,
    }


def hide_form(model_id: str, row: ModelRow | None, *, hidden: bool) -> dict[str, Any]:
    """The row that hides (or shows) a model: its own marked row, or the person's with `hidden`."""
    if row is None:
        meta = {"hidden": hidden, MANAGED_TAG: True, "tags": [{"name": MANAGED_TAG}]}
        return {"id": model_id, "base_model_id": None, "name": model_id, "meta": meta, "params": {},
                "is_active": True}  # fmt: skip
    return {
        "id": row.id,
        "base_model_id": row.base_model_id,
        "name": row.name,
        "meta": {**row.meta, "hidden": hidden},
        "params": row.params,
        "is_active": row.is_active,
    }


def preset_changes(wanted: dict[str, Any], row: ModelRow) -> tuple[FieldChange, ...]:
    """The fields of a preset row that differ from what is wanted (named as a person reads
    them), each with what OpenWebUI has and what is wanted."""
    changes = [FieldChange(field="name", before=row.name, after=wanted["name"])]
    changes.append(
        FieldChange(
            field="base model", before=row.base_model_id or None, after=wanted["base_model_id"] or None
        )
    )
    params = {k: v for k, v in row.params.items() if k != "model_controls" or v}
    changes += [
        FieldChange(field=k, before=params.get(k), after=wanted["params"].get(k))
        for k in sorted(params.keys() | wanted["params"].keys())
    ]
    changes += [FieldChange(field=k, before=row.meta.get(k), after=v) for k, v in wanted["meta"].items()]
    changes.append(FieldChange(field="active", before=row.is_active, after=wanted["is_active"]))
    return tuple(c for c in changes if c.before != c.after)


@dataclass(frozen=True)
class _Ctx:
    desired: DesiredState
    webui: OpenWebUISpec
    view: OpenWebUIObs
    ledger: Ledger
    since: str  # "desired since abc1234"
    by_hand: bool  # these settings were converged before: a difference now is a hand edit

    def why(self, changed: str) -> str:
        return f"changed in OpenWebUI by hand: {changed}" if self.by_hand else f"{self.since}, {changed}"


def plan_openwebui(
    desired: DesiredState, observed: Observed, since: str, *, waiting: str | None
) -> tuple[list[Action], list[Note]]:
    """The changes that make OpenWebUI's database match `desired`; `waiting` says why they
    cannot be planned in this pass (a deploy or an Ollama restart is planned first)."""
    webui, view = desired.openwebui, observed.openwebui
    if webui is None or view is None:
        return [], []
    if waiting is not None:
        return [], [note("openwebui_waiting", f"OpenWebUI's knowledge and presets are planned {waiting}")]
    if not view.reachable:
        error = view.error or "no answer"
        message = f"OpenWebUI does not answer ({error}): its knowledge and presets are planned once it does"
        return [], [note("openwebui_unreachable", message)]
    by_hand = observed.deployed.openwebui_settings_hash == settings_hash(desired)
    ctx = _Ctx(desired, webui, view, observed.ledger, since, by_hand)
    admin = webui.admin()
    people = [
        *user_actions(webui, view, since, ctx.why, admin.email if admin else None),
        *group_actions(webui, view, ctx.ledger, since, ctx.why),
    ]
    grants = grant_actions(webui, view, ctx.ledger, ctx.why)
    return [*people, *_knowledge_actions(ctx), *_preset_actions(ctx), *_picker_actions(ctx), *grants], []


# ───────────────────────────── knowledge ─────────────────────────────


def _knowledge_actions(ctx: _Ctx) -> list[Action]:
    present = ctx.view.knowledge_by_id()
    actions: list[Action] = []
    for kb in ctx.webui.knowledge:
        entry = ctx.ledger.knowledge.get(kb.name)
        seen = present.get(entry.id) if entry else None
        if entry is None or seen is None:
            actions.append(
                CreateKnowledge(
                    name=kb.name, description=kb.description, reason=f"{ctx.since}, not in OpenWebUI"
                )
            )
            actions += _file_actions(ctx, kb, LedgerKnowledge(id=""), None)
            continue
        actions += _base_update(ctx, kb, seen)
        actions += _file_actions(ctx, kb, entry, seen)
    wanted = {kb.name for kb in ctx.webui.knowledge}
    for name, entry in ctx.ledger.knowledge.items():
        if name not in wanted and entry.id in present:
            reason = f"knowledge/{name}/ is no longer in the desired state"
            actions.append(DeleteKnowledge(name=name, id=entry.id, reason=reason))
    return actions


def _base_update(ctx: _Ctx, kb: Knowledge, seen: KnowledgeBase) -> list[Action]:
    diff = tuple(
        c
        for c in (
            FieldChange(field="name", before=seen.name, after=kb.name),
            FieldChange(field="description", before=seen.description, after=kb.description),
        )
        if c.before != c.after
    )
    if not diff:
        return []
    changed = tuple(c.field for c in diff)
    return [
        UpdateKnowledge(
            name=kb.name,
            id=seen.id,
            description=kb.description,
            changed=changed,
            diff=diff,
            reason=ctx.why(", ".join(changed)),
        )
    ]


def _file_actions(
    ctx: _Ctx, kb: Knowledge, entry: LedgerKnowledge, seen: KnowledgeBase | None
) -> list[Action]:
    files = ctx.desired.knowledge_files.get(kb.name, {})
    there = {f.id for f in (seen.files or ())} if seen is not None else set()
    embed = embedding_model(ctx.webui)
    actions: list[Action] = []
    for path, sha in files.items():
        known = entry.files.get(path)
        if known is not None and known.file_id in there:
            if known.sha256 != sha:
                reason = f"{ctx.since}, its content changed (sha256 {known.sha256[:12]} → {sha[:12]})"
                actions.append(
                    ReplaceKnowledgeFile(
                        base=kb.name,
                        path=path,
                        sha256=sha,
                        old_file_id=known.file_id,
                        embedding_model=embed,
                        reason=reason,
                    )
                )
            continue
        reason = (
            f"{ctx.since}, not in the knowledge base"
            if known is None
            else ctx.why(f"{path} was removed from it")
        )
        actions.append(
            AddKnowledgeFile(base=kb.name, path=path, sha256=sha, embedding_model=embed, reason=reason)
        )
    for path, known in entry.files.items():
        if path not in files and known.file_id in there:
            reason = f"knowledge/{kb.name}/{path} is no longer in the desired state"
            actions.append(RemoveKnowledgeFile(base=kb.name, path=path, file_id=known.file_id, reason=reason))
    return actions


# ───────────────────────────── presets ─────────────────────────────


def _preset_actions(ctx: _Ctx) -> list[Action]:
    rows = ctx.view.rows_by_id()
    kb_ids = {name: entry.id for name, entry in ctx.ledger.knowledge.items()}
    actions: list[Action] = []
    for preset in ctx.webui.presets:
        form = preset_form(ctx.webui, preset)
        row = rows.get(preset.id)
        if row is None:
            actions.append(CreatePreset(preset=form, reason=f"{ctx.since}, not in OpenWebUI"))
            continue
        diff = preset_changes(form_json(form, kb_ids), row)
        if diff:
            changed = tuple(c.field for c in diff)
            reason = ctx.why(", ".join(changed))
            actions.append(UpdatePreset(preset=form, changed=changed, diff=diff, reason=reason))
    wanted = {p.id for p in ctx.webui.presets}
    for model_id in ctx.ledger.presets:
        row = rows.get(model_id)
        if model_id not in wanted and row is not None and row.managed:
            actions.append(DeletePreset(id=model_id, reason="no longer among openwebui.yaml's presets"))
    return actions


# ───────────────────────────── the model picker ─────────────────────────────


def _picker_actions(ctx: _Ctx) -> list[Action]:
    rows = ctx.view.rows_by_id()
    visible = visible_models(ctx.desired, ctx.webui)
    presets = {p.id for p in ctx.webui.presets}
    embed = embedding_model(ctx.webui)
    actions: list[Action] = []
    for offered in ctx.view.offered:
        if offered.owned_by != "ollama" or offered.preset or offered.id in presets:
            continue
        row = rows.get(offered.id)
        show = _canonical(offered.id) in visible
        if not show and (row is None or not row.hidden):
            actions.append(HideModel(id=offered.id, row=row, reason=_hide_reason(offered, embed)))
        elif show and offered.id in ctx.ledger.hidden and row is not None and row.hidden:
            delete = ctx.ledger.hidden[offered.id] and row.managed
            actions.append(
                ShowModel(id=offered.id, row=row, delete_row=delete, reason=f"{ctx.since}, desired again")
            )
    return actions


def _hide_reason(offered: OfferedModel, embed: str | None) -> str:
    if embed is not None and _canonical(offered.id) == embed:
        return "the RAG embedding model cannot chat"
    return "not a desired model (kept on disk for rollback, or pulled by hand)"
