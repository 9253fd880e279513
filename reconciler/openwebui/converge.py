"""Converge what lives in OpenWebUI's database to the desired state, through its REST API.

Level-triggered and idempotent: observe, compute the API writes (pure: `plan_knowledge`,
`plan_models`), do them, remember what was made. A run with nothing to change makes no write.

Ownership: the reconciler touches only what it made. Knowledge bases are tracked in a ledger
under the state directory (`openwebui.json`: base name → id, file path → sha256 and file id);
its files carry `meta.data.reconciler_path`; its model rows (presets, and rows it made to hide
a model) carry `meta.reconciler: true` and the tag `reconciler`. A knowledge base, file or
preset a person created by hand is never deleted; a hand edit of a managed one is put back.

    knowledge/<name>/     a knowledge base; files added, replaced when their sha256 changes,
                          removed when gone; a folder removed from the desired state
                          removes its base
    presets               a model row: base model + system prompt + params + attached
                          knowledge (the same knowledge on several presets is how a chat keeps
                          its workspace when it switches model)
    other Ollama models   hidden from the picker (`meta.hidden`), e.g. the rollback cache and
                          the RAG embedding model; shown again when desired
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reconciler.desired.refs import InvalidReference, canonical, parse_ref
from reconciler.desired.schema import DesiredState, OpenWebUISpec, Preset
from reconciler.errors import ReconcilerError
from reconciler.openwebui.client import OpenWebUIClient
from reconciler.openwebui.observe import MANAGED_TAG, PATH_KEY, OpenWebUIView, observe_webui
from reconciler.state.store import read_model, write_atomic

LEDGER_FILE = "openwebui.json"
ReadFile = Callable[[str, str], bytes | None]  # (knowledge base, path in it) → bytes

OpKind = Literal[
    "kb_create",
    "kb_update",
    "kb_delete",
    "file_add",
    "file_remove",
    "model_create",
    "model_update",
    "model_delete",
]


class LedgerFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    sha256: str
    file_id: str


class LedgerKnowledge(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    files: dict[str, LedgerFile] = Field(default_factory=dict)


class Ledger(BaseModel):
    """What the reconciler made in OpenWebUI (memory, rebuilt where the marks allow)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    knowledge: dict[str, LedgerKnowledge] = Field(default_factory=dict)
    presets: tuple[str, ...] = ()
    hidden: dict[str, bool] = Field(default_factory=dict)  # model id → True if we created its row


def load_ledger(state_dir: Path, warn: Callable[[str], None] = lambda _: None) -> Ledger:
    return read_model(state_dir / LEDGER_FILE, Ledger, warn) or Ledger()


def save_ledger(state_dir: Path, ledger: Ledger) -> None:
    write_atomic(state_dir / LEDGER_FILE, ledger.model_dump_json(indent=1))


@dataclass(frozen=True)
class Op:
    """One API change. `file_add` is two writes (upload, attach); the others one."""

    kind: OpKind
    target: str  # knowledge base name or model id
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.kind} {self.target}" + (f" {self.detail}" if self.detail else "")


class ConvergeFailed(ReconcilerError):
    """A desired-state file could not be read, or OpenWebUI refused a change."""


# ───────────────────────────── what is wanted (pure) ─────────────────────────────


def _webui(desired: DesiredState) -> OpenWebUISpec:
    if desired.openwebui is None:
        raise ConvergeFailed("the desired state has no openwebui.yaml")
    return desired.openwebui


def base_model_id(desired: DesiredState, base: str) -> str:
    """OpenWebUI's id of a preset's base: Ollama's short name (`phi3:mini`), or the model id of
    a cloud endpoint for `<cloud>/<model>`."""
    head, _, rest = base.partition("/")
    if rest and any(c.name == head for c in _webui(desired).cloud):
        return rest
    try:
        return parse_ref(base).short
    except InvalidReference:
        return base


def _canonical(name: str) -> str | None:
    try:
        return canonical(name)
    except InvalidReference:
        return None


def visible_models(desired: DesiredState) -> set[str]:
    """Canonical names of the Ollama models the picker shows: the desired models, less the RAG
    embedding model (it cannot chat)."""
    wanted = {canonical(m.name) for m in desired.ollama.all_models()}
    rag = _webui(desired).rag
    if rag.embedding_engine == "ollama":
        embed = _canonical(rag.embedding_model)
        wanted.discard(embed or "")
    return wanted


def preset_form(desired: DesiredState, preset: Preset, kb_ids: dict[str, str]) -> dict[str, Any]:
    knowledge = [
        {"id": kb_ids[name], "name": name, "type": "collection"}
        for name in preset.knowledge
        if name in kb_ids
    ]
    params: dict[str, Any] = dict(preset.params)
    if preset.system:
        params["system"] = preset.system
    if knowledge:
        # OpenWebUI 0.12 retrieves a model's attached knowledge into the prompt only with
        # `function_calling: legacy` (utils/middleware.py process_chat_payload); its default,
        # `native`, offers it as tools instead, which only tool-calling models use (Ollama
        # refuses tools for phi3 or deepseek-r1). Legacy RAG works with every base model, local
        # or cloud, which is what sharing knowledge across presets is for. A preset's own
        # `params.function_calling` wins.
        params.setdefault("function_calling", "legacy")
    return {
        "id": preset.id,
        "base_model_id": base_model_id(desired, preset.base),
        "name": preset.name,
        "meta": {
            "description": f"{preset.name}: managed by the reconciler from git",
            "knowledge": knowledge,
            "tags": [{"name": MANAGED_TAG}],
            MANAGED_TAG: True,
        },
        "params": params,
        "is_active": True,
    }


def _same_row(form: dict[str, Any], row: Any) -> bool:
    meta_ok = all(row.meta.get(key) == value for key, value in form["meta"].items())
    return (
        row.name == form["name"]
        and (row.base_model_id or None) == (form["base_model_id"] or None)
        and {k: v for k, v in row.params.items() if k != "model_controls" or v} == form["params"]
        and meta_ok
        and row.is_active == form["is_active"]
    )


# ───────────────────────────── planning (pure) ─────────────────────────────


def plan_knowledge(desired: DesiredState, view: OpenWebUIView, ledger: Ledger) -> list[Op]:
    webui = _webui(desired)
    present = view.knowledge_by_id()
    ops: list[Op] = []
    for kb in webui.knowledge:
        files = desired.knowledge_files.get(kb.name, {})
        entry = ledger.knowledge.get(kb.name)
        seen = present.get(entry.id) if entry else None
        if seen is None:
            ops.append(Op("kb_create", kb.name, data={"description": kb.description}))
            ops += [
                Op("file_add", kb.name, path, {"path": path, "sha256": sha}) for path, sha in files.items()
            ]
            continue
        assert entry is not None
        if seen.name != kb.name or seen.description != kb.description:
            ops.append(Op("kb_update", kb.name, data={"id": seen.id, "description": kb.description}))
        there = {f.id for f in seen.files or ()}
        for path, sha in files.items():
            known = entry.files.get(path)
            if known and known.sha256 == sha and known.file_id in there:
                continue
            if known and known.file_id in there:
                ops.append(Op("file_remove", kb.name, path, {"id": seen.id, "file_id": known.file_id}))
            ops.append(Op("file_add", kb.name, path, {"path": path, "sha256": sha}))
        for path, known in entry.files.items():
            if path not in files and known.file_id in there:
                ops.append(Op("file_remove", kb.name, path, {"id": seen.id, "file_id": known.file_id}))
    wanted = {kb.name for kb in webui.knowledge}
    for name, entry in ledger.knowledge.items():
        if name not in wanted and entry.id in present:
            ops.append(Op("kb_delete", name, data={"id": entry.id}))
    return ops


def plan_models(
    desired: DesiredState, view: OpenWebUIView, ledger: Ledger, kb_ids: dict[str, str]
) -> list[Op]:
    webui = _webui(desired)
    ops: list[Op] = []
    for preset in webui.presets:
        form = preset_form(desired, preset, kb_ids)
        row = view.rows.get(preset.id)
        if row is None:
            ops.append(Op("model_create", preset.id, "preset", {"form": form}))
        elif not _same_row(form, row):
            ops.append(Op("model_update", preset.id, "preset", {"form": form}))
    wanted_presets = {p.id for p in webui.presets}
    for model_id in ledger.presets:
        row = view.rows.get(model_id)
        if model_id not in wanted_presets and row is not None and row.managed:
            ops.append(Op("model_delete", model_id, "preset"))
    visible = visible_models(desired)
    for offered in view.offered:
        if offered.owned_by != "ollama" or offered.preset or offered.id in wanted_presets:
            continue
        row = view.rows.get(offered.id)
        show = _canonical(offered.id) in visible
        if not show and (row is None or not row.hidden):
            if row is None:
                form = {
                    "id": offered.id,
                    "base_model_id": None,
                    "name": offered.id,
                    "meta": {"hidden": True, MANAGED_TAG: True, "tags": [{"name": MANAGED_TAG}]},
                    "params": {},
                    "is_active": True,
                }
                ops.append(Op("model_create", offered.id, "hide", {"form": form, "created": True}))
            else:
                form = _row_form(row, hidden=True)
                ops.append(Op("model_update", offered.id, "hide", {"form": form, "created": False}))
        elif show and offered.id in ledger.hidden and row is not None and row.hidden:
            if ledger.hidden[offered.id] and row.managed:
                ops.append(Op("model_delete", offered.id, "show"))
            else:
                ops.append(Op("model_update", offered.id, "show", {"form": _row_form(row, hidden=False)}))
    return ops


def _row_form(row: Any, *, hidden: bool) -> dict[str, Any]:
    return {
        "id": row.id,
        "base_model_id": row.base_model_id,
        "name": row.name,
        "meta": {**row.meta, "hidden": hidden},
        "params": row.params,
        "is_active": row.is_active,
    }


# ───────────────────────────── doing it ─────────────────────────────


@dataclass
class ConvergeResult:
    ops: list[Op] = field(default_factory=list)
    writes: int = 0  # mutating API calls made
    view: OpenWebUIView | None = None  # the observation after the changes


def _own_ids(ledger: Ledger) -> set[str]:
    return {entry.id for entry in ledger.knowledge.values()}


def converge(
    desired: DesiredState,
    client: OpenWebUIClient,
    read_file: ReadFile,
    state_dir: Path,
    *,
    on_op: Callable[[Op], None] = lambda _: None,
) -> ConvergeResult:
    """Make OpenWebUI's knowledge bases, presets and model visibility match `desired`."""
    result = ConvergeResult()
    writes_before = len(client.writes)
    ledger = load_ledger(state_dir)
    view = observe_webui(client, _own_ids(ledger))
    if not view.reachable:
        raise ConvergeFailed(f"OpenWebUI does not answer: {view.error}")
    for op in plan_knowledge(desired, view, ledger):
        on_op(op)
        ledger = _apply_knowledge(op, client, read_file, ledger)
        save_ledger(state_dir, ledger)  # after every write: a crash leaves nothing unowned
        result.ops.append(op)
    if result.ops:
        view = observe_webui(client, _own_ids(ledger))
    kb_ids = {name: entry.id for name, entry in ledger.knowledge.items()}
    model_ops = plan_models(desired, view, ledger, kb_ids)
    for op in model_ops:
        on_op(op)
        ledger = _apply_model(op, client, ledger)
        save_ledger(state_dir, ledger)
        result.ops.append(op)
    presets = tuple(sorted(p.id for p in _webui(desired).presets))
    if presets != ledger.presets:
        ledger = ledger.model_copy(update={"presets": presets})
        save_ledger(state_dir, ledger)
    result.writes = len(client.writes) - writes_before
    result.view = observe_webui(client, _own_ids(ledger)) if result.ops else view
    return result


def _apply_knowledge(op: Op, client: OpenWebUIClient, read_file: ReadFile, ledger: Ledger) -> Ledger:
    kbs = dict(ledger.knowledge)
    if op.kind == "kb_create":
        made = client.create_knowledge(op.target, str(op.data["description"]))
        kbs[op.target] = LedgerKnowledge(id=str(made["id"]))
    elif op.kind == "kb_update":
        client.update_knowledge(str(op.data["id"]), op.target, str(op.data["description"]))
    elif op.kind == "kb_delete":
        client.delete_knowledge(str(op.data["id"]))
        kbs.pop(op.target, None)
    elif op.kind == "file_add":
        entry = kbs[op.target]
        path, sha = str(op.data["path"]), str(op.data["sha256"])
        data = read_file(op.target, path)
        if data is None:
            raise ConvergeFailed(f"knowledge/{op.target}/{path} is not in the desired state's source")
        if hashlib.sha256(data).hexdigest() != sha:
            raise ConvergeFailed(
                f"knowledge/{op.target}/{path} changed while reconciling; the next run retries"
            )
        file_id = client.upload_file(
            path.rsplit("/", 1)[-1], data, _content_type(path), metadata={PATH_KEY: path}
        )
        client.add_file(entry.id, file_id)
        kbs[op.target] = entry.model_copy(
            update={"files": {**entry.files, path: LedgerFile(sha256=sha, file_id=file_id)}}
        )
    elif op.kind == "file_remove":
        entry = kbs[op.target]
        client.remove_file(str(op.data["id"]), str(op.data["file_id"]))
        kept = {p: f for p, f in entry.files.items() if f.file_id != op.data["file_id"]}
        kbs[op.target] = entry.model_copy(update={"files": kept})
    return ledger.model_copy(update={"knowledge": kbs})


def _apply_model(op: Op, client: OpenWebUIClient, ledger: Ledger) -> Ledger:
    hidden = dict(ledger.hidden)
    presets = set(ledger.presets)
    if op.kind == "model_create":
        client.create_model(op.data["form"])
    elif op.kind == "model_update":
        client.update_model(op.data["form"])
    elif op.kind == "model_delete":
        client.delete_model(op.target)
    if op.detail == "preset":
        if op.kind == "model_delete":
            presets.discard(op.target)
        else:
            presets.add(op.target)
    elif op.detail == "hide":
        hidden[op.target] = bool(op.data.get("created"))
    elif op.detail == "show":
        hidden.pop(op.target, None)
    return ledger.model_copy(update={"hidden": hidden, "presets": tuple(sorted(presets))})


_TYPES = {
    ".md": "text/markdown",
    ".txt": "text/plain",
    ".pdf": "application/pdf",
    ".html": "text/html",
    ".csv": "text/csv",
    ".json": "application/json",
}


def _content_type(path: str) -> str:
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    return _TYPES.get(suffix, "application/octet-stream")


def default_url(desired: DesiredState) -> str:
    """Where the reconciler (on the server) reaches OpenWebUI: the published port on loopback, or
    kamal-proxy on loopback (HTTPS with the LAN CA when TLS is on)."""
    exposure = _webui(desired).exposure
    if exposure.mode == "published":
        return f"http://127.0.0.1:{exposure.port}"
    return "https://127.0.0.1" if exposure.tls.enabled else "http://127.0.0.1"


def _admin_token(desired: DesiredState, base: str) -> str | None:
    """The admin API key, resolved for the OpenWebUI address it is sent to."""
    from reconciler.desired.secrets import host_of
    from reconciler.secrets import resolve_secret

    webui = _webui(desired)
    if not (webui.auth and webui.admin_token):
        return None
    return resolve_secret(webui.admin_token, (host_of(base),))


def observe_drift(
    desired: DesiredState, state_dir: Path, *, url: str | None = None, timeout: float = 15.0
) -> tuple[OpenWebUIView, list[Op]]:
    """Read OpenWebUI and say what a converge would change (nothing written): how a setting
    changed by hand in the UI is noticed and put back on the next reconcile."""
    from reconciler.openwebui.client import connect

    base = url or default_url(desired)
    client = connect(base, auth=_webui(desired).auth, token=_admin_token(desired, base), timeout=timeout)
    ledger = load_ledger(state_dir)
    view = observe_webui(client, _own_ids(ledger))
    if not view.reachable:
        return view, []
    ops = plan_knowledge(desired, view, ledger)
    kb_ids = {name: entry.id for name, entry in ledger.knowledge.items()}
    return view, ops + plan_models(desired, view, ledger, kb_ids)


def apply_settings(
    desired: DesiredState,
    read_file: ReadFile,
    state_dir: Path,
    *,
    url: str | None = None,
    timeout: float = 15.0,
    emit: Callable[[str, dict[str, Any]], None] = lambda _n, _d: None,
) -> ConvergeResult:
    """Connect (signing in as the configuration says) and converge; what the runner calls."""
    from reconciler.openwebui.client import connect

    base = url or default_url(desired)
    client = connect(base, auth=_webui(desired).auth, token=_admin_token(desired, base), timeout=timeout)
    result = converge(
        desired, client, read_file, state_dir, on_op=lambda op: emit("openwebui.change", {"change": str(op)})
    )
    emit("openwebui.converged", {"changes": len(result.ops), "writes": result.writes})
    return result
