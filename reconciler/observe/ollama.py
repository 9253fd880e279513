"""Ollama, through the official `ollama` client: models present, loaded, architecture.

Read steps call the API; parse steps turn its responses into observed models and are
tested without I/O. Names are compared in canonical form (refs.canonical).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
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


@dataclass(frozen=True)
class Shown:
    """What `/api/show` said of one model: its architecture and capabilities, or why Ollama
    cannot read it (a missing weights blob is 404 "not found", weights that are not a GGUF a
    500 with the decoder's message: server/routes.go ShowHandler / GetModelInfo)."""

    architecture: Architecture | None = None
    capabilities: tuple[str, ...] | None = None
    error: str | None = None


def parse_show(response: Any, tensors: Iterable[Any] = ()) -> Shown:
    caps = getattr(response, "capabilities", None)
    return Shown(
        architecture=parse_architecture(getattr(response, "modelinfo", None), tensors),
        capabilities=tuple(str(c) for c in caps) if caps is not None else None,
    )


def blob_problems(
    blobs: tuple[Blob, ...], on_disk: Mapping[str, int] | None
) -> tuple[tuple[str, ...], str | None]:
    """(digests not on disk, why a blob on disk is wrong) — from the manifest and the blobs dir."""
    if on_disk is None:
        return (), None
    missing = tuple(b.digest for b in blobs if b.digest not in on_disk)
    for b in blobs:
        size = on_disk.get(b.digest)
        if size is not None and size != b.size:
            return missing, f"blob {b.digest} is {size} bytes on disk, its manifest says {b.size}"
    return missing, None


def parse_models(
    listed: Iterable[Any],
    blobs: Mapping[str, tuple[Blob, ...]],
    shown: Mapping[str, Shown],
    on_disk: Mapping[str, int] | None = None,
    corrupt: Set[str] = frozenset(),
) -> tuple[ModelObs, ...]:
    """`/api/tags` entries + blobs read from the manifests on disk (when readable) + what
    `/api/show` said of the models it was asked about. A model is broken only on evidence
    from disk — a blob missing, of the wrong size, or weights (in `corrupt`) that are not a
    GGUF — never on Ollama's error alone, which may be passing: re-pulling is not free."""
    models = []
    for entry in listed:
        name = name_of(str(entry.model))
        details = entry.details
        own = blobs.get(name) or (Blob(digest=f"manifest:{entry.digest}", size=int(entry.size or 0)),)
        seen = shown.get(name, Shown())
        missing, wrong = blob_problems(blobs[name], on_disk) if name in blobs else ((), None)
        gone = f"blobs missing on disk: {', '.join(missing)}" if missing else None
        weights = next((b.digest for b in own if b.media_type.endswith(".model")), None)
        unreadable = seen.error if weights in corrupt and seen.error else None
        broken = gone or wrong or unreadable
        models.append(
            ModelObs(
                name=name,
                digest=str(entry.digest or ""),
                blobs=own,
                family=str(getattr(details, "family", "") or ""),
                parameter_size=str(getattr(details, "parameter_size", "") or ""),
                modified_at=entry.modified_at,
                architecture=seen.architecture,
                capabilities=seen.capabilities,
                broken=broken,
                missing_blobs=missing,
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
    want_show: set[str],
    want_architecture: Set[str] = frozenset(),
    on_disk: Mapping[str, int] | None = None,
    is_gguf: Callable[[str], bool | None] = lambda _: None,
    at: datetime,
) -> OllamaView:
    """Everything the planner needs from Ollama's API; unreachable is an observation, and a
    model Ollama cannot read is that model's observation, not the server's. `is_gguf(digest)`
    looks at a weights blob on disk when Ollama could not read a model."""
    try:
        version = http.get(f"{url}/api/version").json().get("version")  # the client has no call for it
        listed = client.list().models
        running = client.ps().models
        shown: dict[str, Shown] = {}
        for entry in listed:
            name = name_of(str(entry.model))
            if name in want_show:
                shown[name] = _show(client, http, url, str(entry.model), tensors=name in want_architecture)
    except (httpx.HTTPError, ConnectionError, ollama.ResponseError, ValueError) as exc:
        return OllamaView(reachable=False, error=f"{type(exc).__name__}: {exc}"[:300])
    corrupt = {
        b.digest
        for name, seen in shown.items()
        if seen.error
        for b in blobs.get(name, ())
        if b.media_type.endswith(".model") and is_gguf(b.digest) is False
    }
    return OllamaView(
        reachable=True,
        version=str(version) if version else None,
        models=parse_models(listed, blobs, shown, on_disk, corrupt),
        loaded=parse_loaded(running, at),
    )


def _show(client: ollama.Client, http: httpx.Client, url: str, model: str, *, tensors: bool) -> Shown:
    """`/api/show` of one listed model (with its tensor list when the VRAM estimate needs it);
    Ollama's 4xx/5xx answer is that model's problem."""
    try:
        response = client.show(model)
    except ollama.ResponseError as exc:
        if exc.status_code < 400:
            raise
        return Shown(error=f"Ollama cannot read it (HTTP {exc.status_code}: {exc.error})"[:300])
    return parse_show(response, show_tensors(http, url, model) if tensors else ())
