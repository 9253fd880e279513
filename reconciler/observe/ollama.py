"""Ollama, through the official `ollama` client: models present, loaded, architecture.

Read steps call the API; parse steps turn its responses into observed models and are
tested without I/O. Names are compared in canonical form (refs.canonical).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import ollama

from reconciler.desired.refs import InvalidReference, canonical
from reconciler.observed import Architecture, Blob, LoadedObs, ModelObs

# keep_alive < 0 makes Ollama set expires_at = now + MaxInt64 ns (year 2318, sched.go).
PINNED_AFTER = timedelta(days=3650)


@dataclass(frozen=True)
class OllamaView:
    reachable: bool
    version: str | None = None
    models: tuple[ModelObs, ...] = ()
    loaded: tuple[LoadedObs, ...] = ()
    error: str | None = None


def name_of(raw: str) -> str:
    try:
        return canonical(raw)
    except InvalidReference:
        return raw.lower()


def parse_architecture(model_info: Mapping[str, Any] | None) -> Architecture | None:
    """`/api/show` model_info → Architecture (None when the keys are not there)."""
    if not model_info:
        return None
    arch = model_info.get("general.architecture")
    if not isinstance(arch, str):
        return None

    def num(key: str) -> int | None:
        value = model_info.get(f"{arch}.{key}")
        if isinstance(value, list):  # per-layer values (e.g. gemma): take the largest
            value = max((v for v in value if isinstance(v, int)), default=None)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    block_count, head_count = num("block_count"), num("attention.head_count")
    if block_count is None or head_count is None:
        return None
    return Architecture(
        family=arch,
        block_count=block_count,
        head_count=head_count,
        head_count_kv=num("attention.head_count_kv") or head_count,
        embedding_length=num("embedding_length") or 0,
        context_length=num("context_length") or 0,
        key_length=num("attention.key_length"),
        value_length=num("attention.value_length"),
    )


def parse_models(
    listed: Iterable[Any],
    blobs: Mapping[str, tuple[Blob, ...]],
    architectures: Mapping[str, Architecture | None],
) -> tuple[ModelObs, ...]:
    """`/api/tags` entries + blobs read from the manifests on disk (when readable)."""
    models = []
    for entry in listed:
        name = name_of(str(entry.model))
        details = entry.details
        own = blobs.get(name) or (Blob(digest=f"manifest:{entry.digest}", size=int(entry.size or 0)),)
        models.append(
            ModelObs(
                name=name,
                digest=str(entry.digest or ""),
                blobs=own,
                family=str(getattr(details, "family", "") or ""),
                parameter_size=str(getattr(details, "parameter_size", "") or ""),
                quantization=str(getattr(details, "quantization_level", "") or ""),
                modified_at=entry.modified_at,
                architecture=architectures.get(name),
            )
        )
    return tuple(models)


def parse_loaded(running: Iterable[Any], at: datetime) -> tuple[LoadedObs, ...]:
    loaded = []
    for entry in running:
        expires = entry.expires_at
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        loaded.append(
            LoadedObs(
                name=name_of(str(entry.model)),
                size=int(entry.size or 0),
                size_vram=int(entry.size_vram or 0),
                expires_at=expires,
                context_length=getattr(entry, "context_length", None),
                pinned=expires is not None and expires - at > PINNED_AFTER,
            )
        )
    return tuple(loaded)


def observe_ollama(
    client: ollama.Client,
    http: httpx.Client,
    url: str,
    *,
    blobs: Mapping[str, tuple[Blob, ...]],
    want_architecture: set[str],
) -> OllamaView:
    """Everything the planner needs from Ollama's API; unreachable is an observation."""
    try:
        version = http.get(f"{url}/api/version").json().get("version")  # the client has no call for it
        listed = client.list().models
        running = client.ps().models
        architectures = {}
        for entry in listed:
            name = name_of(str(entry.model))
            if name in want_architecture:
                architectures[name] = parse_architecture(client.show(str(entry.model)).modelinfo)
    except (httpx.HTTPError, ConnectionError, ollama.ResponseError, ValueError) as exc:
        return OllamaView(reachable=False, error=f"{type(exc).__name__}: {exc}"[:300])
    return OllamaView(
        reachable=True,
        version=str(version) if version else None,
        models=parse_models(listed, blobs, architectures),
        loaded=parse_loaded(running, datetime.now(UTC)),
    )
