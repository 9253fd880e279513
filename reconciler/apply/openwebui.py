"""The only code that changes OpenWebUI's database: one executor per planned change, each a
call or two of its REST API and a line in the ledger (saved after every write, so a crash
leaves nothing the reconciler made unowned), with the effect it promises beside it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from reconciler.apply.context import ExecContext, ExecutorUnavailable
from reconciler.apply.world import World
from reconciler.errors import Conflict, PermanentError
from reconciler.labels import PATH_KEY
from reconciler.observed import (
    KnowledgeBase,
    KnowledgeFile,
    Ledger,
    LedgerFile,
    LedgerKnowledge,
    ModelRow,
    OpenWebUIObs,
)
from reconciler.plan.actions import (
    AddKnowledgeFile,
    CreateKnowledge,
    CreatePreset,
    DeleteKnowledge,
    DeletePreset,
    HideModel,
    RemoveKnowledgeFile,
    ReplaceKnowledgeFile,
    ShowModel,
    UpdateKnowledge,
    UpdatePreset,
)
from reconciler.plan.openwebui import form_json, hide_form

_TYPES = {
    ".md": "text/markdown",
    ".txt": "text/plain",
    ".pdf": "application/pdf",
    ".html": "text/html",
    ".csv": "text/csv",
    ".json": "application/json",
}


class KnowledgeFileMissing(PermanentError):
    """A knowledge file the plan names is not in the desired state's commit."""


def _content_type(path: str) -> str:
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    return _TYPES.get(suffix, "application/octet-stream")


def _ledger(ctx: ExecContext, change: Callable[[Ledger], Ledger]) -> None:
    ctx.state.update_ledger(change)


def _with_knowledge(ledger: Ledger, name: str, entry: LedgerKnowledge | None) -> Ledger:
    kbs = {k: v for k, v in ledger.knowledge.items() if k != name}
    return ledger.model_copy(update={"knowledge": kbs if entry is None else {**kbs, name: entry}})


def _own_base(ctx: ExecContext, name: str) -> LedgerKnowledge:
    entry = ctx.state.load_ledger().knowledge.get(name)
    if entry is None:
        raise Conflict(f"knowledge base {name} is not in the reconciler's ledger any more")
    return entry


def _kb_ids(ctx: ExecContext) -> dict[str, str]:
    return {name: entry.id for name, entry in ctx.state.load_ledger().knowledge.items()}


# ───────────────────────────── knowledge bases ─────────────────────────────


def run_create_knowledge(action: CreateKnowledge, ctx: ExecContext) -> None:
    made = ctx.openwebui().create_knowledge(action.name, action.description)
    _ledger(ctx, lambda led: _with_knowledge(led, action.name, LedgerKnowledge(id=str(made["id"]))))


def run_update_knowledge(action: UpdateKnowledge, ctx: ExecContext) -> None:
    ctx.openwebui().update_knowledge(action.id, action.name, action.description)


def run_delete_knowledge(action: DeleteKnowledge, ctx: ExecContext) -> None:
    ctx.openwebui().delete_knowledge(action.id)
    _ledger(ctx, lambda led: _with_knowledge(led, action.name, None))


def _upload(ctx: ExecContext, base: str, path: str, sha256: str) -> None:
    if ctx.read_knowledge is None:
        raise ExecutorUnavailable(f"knowledge/{base}/{path}: the desired state's files cannot be read here")
    entry = _own_base(ctx, base)
    data = ctx.read_knowledge(base, path)
    if data is None:
        raise KnowledgeFileMissing(f"knowledge/{base}/{path} is not in the desired state's source")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise Conflict(f"knowledge/{base}/{path} changed while reconciling; the next run retries")
    client = ctx.openwebui()
    name = path.rsplit("/", 1)[-1]
    file_id = client.upload_file(name, data, _content_type(path), metadata={PATH_KEY: path})
    client.add_file(entry.id, file_id)
    uploaded = LedgerFile(sha256=sha256, file_id=file_id)

    def record(led: Ledger) -> Ledger:
        now = led.knowledge.get(base, entry)
        return _with_knowledge(led, base, now.model_copy(update={"files": {**now.files, path: uploaded}}))

    _ledger(ctx, record)


def _detach(ctx: ExecContext, base: str, path: str, file_id: str) -> None:
    entry = _own_base(ctx, base)
    ctx.openwebui().remove_file(entry.id, file_id)

    def record(led: Ledger) -> Ledger:
        now = led.knowledge.get(base, entry)
        kept = {p: f for p, f in now.files.items() if f.file_id != file_id}
        return _with_knowledge(led, base, now.model_copy(update={"files": kept}))

    _ledger(ctx, record)


def run_add_file(action: AddKnowledgeFile, ctx: ExecContext) -> None:
    _upload(ctx, action.base, action.path, action.sha256)


def run_replace_file(action: ReplaceKnowledgeFile, ctx: ExecContext) -> None:
    _detach(ctx, action.base, action.path, action.old_file_id)
    _upload(ctx, action.base, action.path, action.sha256)


def run_remove_file(action: RemoveKnowledgeFile, ctx: ExecContext) -> None:
    _detach(ctx, action.base, action.path, action.file_id)


# ───────────────────────────── presets and the picker ─────────────────────────────


def _presets(led: Ledger, add: str | None = None, drop: str | None = None) -> Ledger:
    ids = (set(led.presets) | ({add} if add else set())) - ({drop} if drop else set())
    return led.model_copy(update={"presets": tuple(sorted(ids))})


def run_create_preset(action: CreatePreset, ctx: ExecContext) -> None:
    ctx.openwebui().create_model(form_json(action.preset, _kb_ids(ctx)))
    _ledger(ctx, lambda led: _presets(led, add=action.preset.id))


def run_update_preset(action: UpdatePreset, ctx: ExecContext) -> None:
    ctx.openwebui().update_model(form_json(action.preset, _kb_ids(ctx)))
    _ledger(ctx, lambda led: _presets(led, add=action.preset.id))


def run_delete_preset(action: DeletePreset, ctx: ExecContext) -> None:
    ctx.openwebui().delete_model(action.id)
    _ledger(ctx, lambda led: _presets(led, drop=action.id))


def _hidden(led: Ledger, model_id: str, created: bool | None) -> Ledger:
    hidden = {k: v for k, v in led.hidden.items() if k != model_id}
    return led.model_copy(update={"hidden": hidden if created is None else {**hidden, model_id: created}})


def run_hide(action: HideModel, ctx: ExecContext) -> None:
    client = ctx.openwebui()
    form = hide_form(action.id, action.row, hidden=True)
    if action.row is None:
        client.create_model(form)
    else:
        client.update_model(form)
    _ledger(ctx, lambda led: _hidden(led, action.id, created=action.row is None))


def run_show(action: ShowModel, ctx: ExecContext) -> None:
    client = ctx.openwebui()
    if action.delete_row:
        client.delete_model(action.id)
    else:
        client.update_model(hide_form(action.id, action.row, hidden=False))
    _ledger(ctx, lambda led: _hidden(led, action.id, created=None))


# ───────────────────────────── the effects (pure) ─────────────────────────────


def _view(world: World) -> OpenWebUIObs:
    return world.openwebui or OpenWebUIObs(reachable=True)


def _set_bases(world: World, bases: dict[str, KnowledgeBase]) -> None:
    world.openwebui = _view(world).model_copy(update={"knowledge": tuple(bases.values())})


def _set_rows(world: World, rows: dict[str, ModelRow]) -> None:
    world.openwebui = _view(world).model_copy(update={"rows": tuple(rows.values())})


def knowledge_created(action: CreateKnowledge, world: World) -> None:
    kb_id = f"kb-{action.name}"
    bases = _view(world).knowledge_by_id()
    bases[kb_id] = KnowledgeBase(id=kb_id, name=action.name, description=action.description, files=())
    _set_bases(world, bases)
    world.ledger = _with_knowledge(world.ledger, action.name, LedgerKnowledge(id=kb_id))


def knowledge_updated(action: UpdateKnowledge, world: World) -> None:
    bases = _view(world).knowledge_by_id()
    bases[action.id] = bases[action.id].model_copy(
        update={"name": action.name, "description": action.description}
    )
    _set_bases(world, bases)


def knowledge_deleted(action: DeleteKnowledge, world: World) -> None:
    bases = _view(world).knowledge_by_id()
    bases.pop(action.id, None)
    _set_bases(world, bases)
    world.ledger = _with_knowledge(world.ledger, action.name, None)


def _file_change(world: World, base: str, path: str, drop: str | None, add: LedgerFile | None) -> None:
    entry = world.ledger.knowledge[base]
    bases = _view(world).knowledge_by_id()
    files = [f for f in (bases[entry.id].files or ()) if f.id != drop]
    kept = {p: f for p, f in entry.files.items() if f.file_id != drop}
    if add is not None:
        files.append(KnowledgeFile(id=add.file_id, sha256=add.sha256, path=path))
        kept[path] = add
    bases[entry.id] = bases[entry.id].model_copy(update={"files": tuple(files), "file_count": len(files)})
    _set_bases(world, bases)
    world.ledger = _with_knowledge(world.ledger, base, entry.model_copy(update={"files": kept}))


def file_added(action: AddKnowledgeFile, world: World) -> None:
    new = LedgerFile(sha256=action.sha256, file_id=f"file-{action.base}-{action.path}-{action.sha256[:8]}")
    _file_change(world, action.base, action.path, None, new)


def file_replaced(action: ReplaceKnowledgeFile, world: World) -> None:
    new = LedgerFile(sha256=action.sha256, file_id=f"file-{action.base}-{action.path}-{action.sha256[:8]}")
    _file_change(world, action.base, action.path, action.old_file_id, new)


def file_removed(action: RemoveKnowledgeFile, world: World) -> None:
    _file_change(world, action.base, action.path, action.file_id, None)


def _row(form: dict[str, object], before: ModelRow | None = None) -> ModelRow:
    """The row a write leaves: the form, with the grants it had (writes of the row itself do not
    touch them in OpenWebUI 0.12.4: models/models.py `_write_model` updates only the columns)."""
    row = ModelRow.model_validate(form)
    return row.model_copy(update={"access": before.access}) if before is not None else row


def preset_written(action: CreatePreset | UpdatePreset, world: World) -> None:
    ids = {name: entry.id for name, entry in world.ledger.knowledge.items()}
    rows = _view(world).rows_by_id()
    before = rows.get(action.preset.id) if isinstance(action, UpdatePreset) else None
    rows[action.preset.id] = _row(form_json(action.preset, ids), before)
    _set_rows(world, rows)
    world.ledger = _presets(world.ledger, add=action.preset.id)


def preset_deleted(action: DeletePreset, world: World) -> None:
    rows = _view(world).rows_by_id()
    rows.pop(action.id, None)
    _set_rows(world, rows)
    world.ledger = _presets(world.ledger, drop=action.id)


def hidden(action: HideModel, world: World) -> None:
    rows = _view(world).rows_by_id()
    rows[action.id] = _row(hide_form(action.id, action.row, hidden=True), rows.get(action.id))
    _set_rows(world, rows)
    world.ledger = _hidden(world.ledger, action.id, created=action.row is None)


def shown(action: ShowModel, world: World) -> None:
    rows = _view(world).rows_by_id()
    if action.delete_row:
        rows.pop(action.id, None)
    else:
        rows[action.id] = _row(hide_form(action.id, action.row, hidden=False), rows.get(action.id))
    _set_rows(world, rows)
    world.ledger = _hidden(world.ledger, action.id, created=None)
