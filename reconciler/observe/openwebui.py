"""What OpenWebUI holds, read through its REST API (a reader: it never writes).

Read step: `OpenWebUIClient`'s GETs (config, knowledge bases and their files, the `model`
table, the picker's model list, the accounts and groups, the access grants of each). Parse
step: `parse_*` turn OpenWebUI's JSON into the frozen `OpenWebUIObs` the planner compares with
the desired state; tested without OpenWebUI.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.labels import PATH_KEY
from reconciler.observe._json import as_mapping
from reconciler.observed import (
    Grant,
    GroupObs,
    KnowledgeBase,
    KnowledgeFile,
    ModelRow,
    OfferedModel,
    OpenWebUIObs,
    Person,
)
from reconciler.openwebui.client import OpenWebUIClient, OpenWebUIError


def parse_grants(data: Any) -> tuple[Grant, ...]:
    """OpenWebUI's `access_grants` (models/access_grants.py), sorted: their order means nothing."""
    grants = {
        Grant(
            principal_type=str(g.get("principal_type", "")),
            principal_id=str(g.get("principal_id", "")),
            permission=str(g.get("permission", "read")),
        )
        for g in (data if isinstance(data, list) else [])
        if isinstance(g, Mapping)
    }
    return tuple(sorted(grants, key=lambda g: (g.principal_type, g.principal_id, g.permission)))


def parse_row(data: Mapping[str, Any]) -> ModelRow:
    return ModelRow(
        id=str(data.get("id", "")),
        base_model_id=data.get("base_model_id") or None,
        name=str(data.get("name", "")),
        params=dict(as_mapping(data.get("params"))),
        meta=dict(as_mapping(data.get("meta"))),
        is_active=bool(data.get("is_active", True)),
        access=parse_grants(data.get("access_grants")),
    )


def parse_user(data: Mapping[str, Any]) -> Person:
    groups = data.get("group_ids")
    return Person(
        id=str(data.get("id", "")),
        email=str(data.get("email", "")).lower(),
        name=str(data.get("name", "")),
        role=str(data.get("role", "pending")),
        group_ids=tuple(sorted(str(g) for g in groups)) if isinstance(groups, list) else (),
    )


def parse_group(data: Mapping[str, Any]) -> GroupObs:
    return GroupObs(
        id=str(data.get("id", "")),
        name=str(data.get("name", "")),
        description=str(data.get("description") or ""),
    )


def parse_file(data: Mapping[str, Any]) -> KnowledgeFile:
    meta = as_mapping(data.get("meta"))
    tag = as_mapping(meta.get("data")).get(PATH_KEY)
    sha = meta.get("file_hash")
    return KnowledgeFile(
        id=str(data.get("id", "")),
        filename=str(data.get("filename") or meta.get("name") or ""),
        sha256=str(sha) if sha else None,
        path=str(tag) if tag else None,
    )


def parse_offered(data: Mapping[str, Any]) -> OfferedModel:
    info = as_mapping(data.get("info"))
    meta = as_mapping(info.get("meta"))
    return OfferedModel(
        id=str(data.get("id", "")),
        owned_by=str(data.get("owned_by", "")),
        preset=bool(info.get("base_model_id")) or bool(data.get("preset")),
        hidden=bool(meta.get("hidden")),
    )


def parse_knowledge(data: Mapping[str, Any], files: Iterable[Mapping[str, Any]] | None) -> KnowledgeBase:
    listed = tuple(parse_file(f) for f in files) if files is not None else None
    return KnowledgeBase(
        id=str(data.get("id", "")),
        name=str(data.get("name", "")),
        description=str(data.get("description") or ""),
        file_count=len(listed) if listed is not None else int(data.get("file_count") or 0),
        files=listed,
        access=parse_grants(data.get("access_grants")),
    )


def observe_openwebui(client: OpenWebUIClient, files_of: set[str] | None = None) -> OpenWebUIObs:
    """Everything the planner compares. `files_of`: knowledge base ids whose files to list
    (the reconciler's own; None = all). An OpenWebUI that does not answer is `reachable=False`."""
    try:
        config = client.config()
        bases = []
        for kb in client.knowledge_bases():
            kb_id = str(kb.get("id", ""))
            wanted = files_of is None or kb_id in files_of
            bases.append(parse_knowledge(kb, client.knowledge_files(kb_id) if wanted else None))
        rows = {r.id: r for r in map(parse_row, client.workspace_models())}
        rows.update({r.id: r for r in map(parse_row, client.base_model_rows())})
        offered = tuple(parse_offered(m) for m in client.models())
        users = tuple(parse_user(u) for u in client.users())
        groups = tuple(parse_group(g) for g in client.groups())
    except OpenWebUIError as exc:
        return OpenWebUIObs(reachable=False, error=exc.message[:300])
    version = config.get("version")
    return OpenWebUIObs(
        reachable=True,
        version=str(version) if version else None,
        knowledge=tuple(bases),
        rows=tuple(rows.values()),
        offered=offered,
        users=users,
        groups=groups,
        signed_in_as=client.signed_in_as,
        login=client.login_on,
    )
