"""What OpenWebUI holds, read through its API (a reader: it never writes).

`observe_webui` gives an `OpenWebUIView`: health, version, the knowledge bases the ledger says
are the reconciler's (with their files), the rows of the `model` table (presets and
per-base-model overrides) and the models the chat picker offers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler.openwebui.client import OpenWebUIClient, OpenWebUIError

MANAGED_TAG = "reconciler"  # meta.tags entry and meta key on the model rows the reconciler owns
PATH_KEY = "reconciler_path"  # in a file's meta.data: its path under knowledge/<name>/


@dataclass(frozen=True)
class FileView:
    id: str
    filename: str
    sha256: str | None
    path: str | None  # the reconciler's tag, when it uploaded the file


@dataclass(frozen=True)
class KnowledgeView:
    id: str
    name: str
    description: str
    file_count: int
    files: tuple[FileView, ...] | None = None  # read only for the reconciler's own bases


@dataclass(frozen=True)
class ModelRow:
    id: str
    base_model_id: str | None
    name: str
    params: dict[str, Any]
    meta: dict[str, Any]
    is_active: bool

    @property
    def managed(self) -> bool:
        return bool(self.meta.get(MANAGED_TAG))

    @property
    def hidden(self) -> bool:
        return bool(self.meta.get("hidden"))


@dataclass(frozen=True)
class OfferedModel:
    id: str
    owned_by: str
    preset: bool  # a workspace model on top of a base model
    hidden: bool


@dataclass(frozen=True)
class OpenWebUIView:
    reachable: bool
    version: str | None = None
    auth: bool | None = None
    error: str | None = None
    knowledge: tuple[KnowledgeView, ...] = ()
    rows: dict[str, ModelRow] = field(default_factory=dict)
    offered: tuple[OfferedModel, ...] = ()

    def knowledge_by_id(self) -> dict[str, KnowledgeView]:
        return {k.id: k for k in self.knowledge}


def _row(data: dict[str, Any]) -> ModelRow:
    return ModelRow(
        id=str(data.get("id", "")),
        base_model_id=data.get("base_model_id") or None,
        name=str(data.get("name", "")),
        params=dict(data.get("params") or {}),
        meta=dict(data.get("meta") or {}),
        is_active=bool(data.get("is_active", True)),
    )


def _file(data: dict[str, Any]) -> FileView:
    meta = data.get("meta") or {}
    tag = (meta.get("data") or {}).get(PATH_KEY) if isinstance(meta.get("data"), dict) else None
    return FileView(
        id=str(data.get("id", "")),
        filename=str(data.get("filename") or meta.get("name") or ""),
        sha256=meta.get("file_hash"),
        path=str(tag) if tag else None,
    )


def _offered(data: dict[str, Any]) -> OfferedModel:
    info = data.get("info") or {}
    meta = (info.get("meta") if isinstance(info, dict) else None) or {}
    return OfferedModel(
        id=str(data.get("id", "")),
        owned_by=str(data.get("owned_by", "")),
        preset=bool(isinstance(info, dict) and info.get("base_model_id")) or bool(data.get("preset")),
        hidden=bool(meta.get("hidden")),
    )


def observe_webui(client: OpenWebUIClient, files_of: set[str] | None = None) -> OpenWebUIView:
    """Read everything the converge compares. `files_of`: knowledge base ids whose files to list
    (the reconciler's own; None = all). An unreachable OpenWebUI gives `reachable=False`."""
    try:
        config = client.config()
    except OpenWebUIError as exc:
        return OpenWebUIView(reachable=False, error=exc.message)
    version = str(config.get("version")) if config.get("version") else None
    auth = bool((config.get("features") or {}).get("auth", True))
    bases = []
    for kb in client.knowledge_bases():
        kb_id = str(kb.get("id", ""))
        files = None
        if files_of is None or kb_id in files_of:
            files = tuple(_file(f) for f in client.knowledge_files(kb_id))
        count = len(files) if files is not None else int(kb.get("file_count") or 0)
        bases.append(
            KnowledgeView(
                id=kb_id,
                name=str(kb.get("name", "")),
                description=str(kb.get("description") or ""),
                file_count=count,
                files=files,
            )
        )
    rows = {r.id: r for r in map(_row, client.workspace_models())}
    rows.update({r.id: r for r in map(_row, client.base_model_rows())})
    offered = tuple(_offered(m) for m in client.models())
    return OpenWebUIView(
        reachable=True, version=version, auth=auth, knowledge=tuple(bases), rows=rows, offered=offered
    )
