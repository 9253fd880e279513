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
from reconciler.observed import Architecture, Blob, LoadedObs, ModelObs, VisionTower

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


def _tensor_bytes(shape: Iterable[Any], type_name: str) -> int:
    """Vision tensors are f16/f32 in Ollama's GGUFs; other types are read as 2 bytes (older
    servers name the types after file types, so only these names are trusted)."""
    elements = 1
    for d in shape:
        elements *= int(d) if isinstance(d, int) else 0
    return elements * (4 if type_name == "F32" else 2)


def _tensor_facts(tensors: Iterable[Any]) -> dict[str, Any]:
    """From `/api/show` "tensors" ({name, type, shape}): vocabulary, tied output, vision bytes."""
    names: dict[str, list[int]] = {}
    vision = 0
    for t in tensors:
        if not isinstance(t, Mapping) or not isinstance(t.get("name"), str):
            continue
        shape = [d for d in t.get("shape") or () if isinstance(d, int) and not isinstance(d, bool)]
        names[t["name"]] = shape
        if t["name"].startswith(("v.", "mm.")):
            vision += _tensor_bytes(shape, str(t.get("type", "")))
    if "token_embd.weight" not in names:
        return {}
    embd = names["token_embd.weight"]
    return {
        "vocab_size": embd[1] if len(embd) == 2 else 0,
        "tied_embeddings": "output.weight" not in names,
        "vision_bytes": vision,
    }


def parse_architecture(
    model_info: Mapping[str, Any] | None, tensors: Iterable[Any] | None = None
) -> Architecture | None:
    """`/api/show` model_info (and its tensor list) → Architecture (None when the keys are not there)."""
    if not model_info:
        return None
    arch = model_info.get("general.architecture")
    if not isinstance(arch, str):
        return None

    def raw(key: str) -> Any:
        return model_info.get(f"{arch}.{key}")

    def num(key: str) -> int | None:
        value = raw(key)
        if isinstance(value, list):  # per-layer values (e.g. gemma): take the largest
            value = max((v for v in value if isinstance(v, int)), default=None)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    block_count, head_count = num("block_count"), num("attention.head_count")
    if block_count is None or head_count is None:
        return None
    facts = _tensor_facts(tensors or ())
    pattern = raw("attention.sliding_window_pattern")  # emptied by show unless verbose
    params = model_info.get("general.parameter_count")
    image = num("vision.image_size") or 0
    vision = None
    if image or facts.get("vision_bytes"):
        vision = VisionTower(
            weights=facts.get("vision_bytes", 0),
            image_size=image,
            patch_size=num("vision.patch_size") or 0,
            num_channels=num("vision.num_channels") or 3,
            embedding_length=num("vision.embedding_length") or 0,
            head_count=num("vision.attention.head_count") or 0,
        )
    heads_kv = num("attention.head_count_kv")
    return Architecture(
        family=arch,
        block_count=block_count,
        head_count=head_count,
        head_count_kv=heads_kv or head_count,
        head_count_kv_given=heads_kv is not None,
        embedding_length=num("embedding_length") or 0,
        context_length=num("context_length") or 0,
        key_length=num("attention.key_length"),
        value_length=num("attention.value_length"),
        vocab_size=facts.get("vocab_size") or num("vocab_size") or 0,
        parameter_count=params if isinstance(params, int) and not isinstance(params, bool) else 0,
        tied_embeddings=facts.get("tied_embeddings"),
        sliding_window=num("attention.sliding_window") or 0,
        sliding_window_pattern=tuple(bool(v) for v in pattern)
        if isinstance(pattern, list) and len(pattern) == block_count
        else (),
        kv_lora_rank=num("attention.kv_lora_rank") or 0,
        rope_dimension=num("rope.dimension_count") or 0,
        expert_count=num("expert_count") or 0,
        expert_used_count=num("expert_used_count") or 0,
        embedding_model=raw("pooling_type") is not None,
        vision=vision,
    )


def show_tensors(http: httpx.Client, url: str, model: str) -> list[Any]:
    """The tensor list of `/api/show` (name, type, shape): the official client's ShowResponse
    drops this field, so it is read over HTTP. Empty when the server has none."""
    try:
        body = http.post(f"{url}/api/show", json={"model": model}).json()
    except (httpx.HTTPError, ValueError):
        return []
    tensors = body.get("tensors") if isinstance(body, dict) else None
    return tensors if isinstance(tensors, list) else []


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
                shown = client.show(str(entry.model)).modelinfo
                architectures[name] = parse_architecture(shown, show_tensors(http, url, str(entry.model)))
    except (httpx.HTTPError, ConnectionError, ollama.ResponseError, ValueError) as exc:
        return OllamaView(reachable=False, error=f"{type(exc).__name__}: {exc}"[:300])
    return OllamaView(
        reachable=True,
        version=str(version) if version else None,
        models=parse_models(listed, blobs, architectures),
        loaded=parse_loaded(running, datetime.now(UTC)),
    )
