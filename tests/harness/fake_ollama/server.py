"""A fake Ollama server for tests — stdlib only, runs as ``python3 /app/server.py`` in a container.

It speaks the real Ollama HTTP API where the reconciler uses it (shapes, status codes and error
texts from /work/shared/reference/ollama.md, which cites ollama/ollama server/routes.go,
server/images.go, server/download.go, api/types.go), stores models in Ollama's on-disk layout
(store.py) and simulates the GPU scheduler (scheduler.py). See tests/harness/README.md for what is
simplified.

Environment:
  OLLAMA_HOST                 bind address (default 0.0.0.0:11434)
  OLLAMA_MODELS               model store (default /root/.ollama/models)
  OLLAMA_KEEP_ALIVE, OLLAMA_CONTEXT_LENGTH, OLLAMA_NUM_PARALLEL, OLLAMA_MAX_LOADED_MODELS,
  OLLAMA_FLASH_ATTENTION, OLLAMA_KV_CACHE_TYPE, OLLAMA_GPU_OVERHEAD, OLLAMA_NOPRUNE  as in Ollama
  FAKE_OLLAMA_VERSION         the Ollama version to be (default 0.32.15, the newest release;
                              0.6.8 is the oldest profile): /api/version and every behaviour
                              that differs between versions (versions.py)
  FAKE_OLLAMA_GPU_VRAM        bytes of the simulated GPU (default 8 GiB; 0 = no GPU)
  FAKE_OLLAMA_OVERHEAD        per-model runtime overhead on the GPU (default 457 MiB)
  FAKE_OLLAMA_GRAPH_BYTES     fixed graph size per model (default: formula in scheduler.py)
  FAKE_OLLAMA_PULL_RATE       bytes/s download throttle (default unlimited)
  FAKE_OLLAMA_LOAD_RATE       bytes/s a model's weights load at (default 2 GiB/s): the disk speed
  FAKE_OLLAMA_GPU_BANDWIDTH, FAKE_OLLAMA_CPU_BANDWIDTH, FAKE_OLLAMA_GPU_FLOPS,
  FAKE_OLLAMA_CPU_FLOPS, FAKE_OLLAMA_REPLY_TOKENS   the performance model (perf.py): how long
                              prompts and tokens take, reported in the timing fields
  FAKE_OPENAI_API_KEY         when set, /v1 demands `Authorization: Bearer <it>` (a cloud
                              provider's check, not Ollama's; see openai_compat.py)

OpenAI-compatible API: POST /v1/chat/completions, GET /v1/models (openai_compat.py).

Test-only endpoints (not Ollama's):
  GET    /__fake/events            {"events": [...]} scheduler and pull events
  DELETE /__fake/events            clear them
  POST   /__fake/fault             add a fault: {"status": 500, "error": "...", "paths": [...],
                                   "methods": [...], "count": 3, "hang_seconds": 30, "drop": false}
  GET    /__fake/fault             list active faults;   DELETE /__fake/fault   clear all
  POST   /__fake/config            {"pull_rate": bytes_per_s|null}
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import os
import re
import select
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The container runs this file as a script (/app/server.py) with its siblings on sys.path;
# type checkers see the same modules through the package path.
if TYPE_CHECKING:
    from tests.harness.fake_ollama import ed25519, gotemplate, openai_compat, perf
    from tests.harness.fake_ollama.gguf_reader import (
        GGUFError,
        file_type_name,
        human_number,
        read_gguf_metadata,
    )
    from tests.harness.fake_ollama.scheduler import (
        DurationError,
        LoadAborted,
        ModelRef,
        Runner,
        SchedConfig,
        Scheduler,
        is_embedding,
        keep_alive_seconds,
        rfc3339,
    )
    from tests.harness.fake_ollama.store import (
        MT_CONFIG,
        MT_LICENSE,
        MT_MANIFEST,
        MT_MODEL,
        MT_PARAMS,
        MT_SYSTEM,
        MT_TEMPLATE,
        Manifest,
        Name,
        Store,
        go_json,
        sha256_file,
    )
    from tests.harness.fake_ollama.versions import RUNNER_OPTIONS, Profile
else:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import ed25519
    import gotemplate
    import openai_compat
    import perf
    from gguf_reader import GGUFError, file_type_name, human_number, read_gguf_metadata
    from scheduler import (
        DurationError,
        LoadAborted,
        ModelRef,
        Runner,
        SchedConfig,
        Scheduler,
        is_embedding,
        keep_alive_seconds,
        rfc3339,
    )
    from store import (
        MT_CONFIG,
        MT_LICENSE,
        MT_MANIFEST,
        MT_MODEL,
        MT_PARAMS,
        MT_SYSTEM,
        MT_TEMPLATE,
        Manifest,
        Name,
        Store,
        go_json,
        sha256_file,
    )
    from versions import RUNNER_OPTIONS, Profile


CHUNK = 32 * 1024


class ClientGone(Exception):
    """The HTTP client hung up while we were streaming to it."""


class PullError(Exception):
    pass


# ----------------------------------------------------------------------------------------------
# shared state
# ----------------------------------------------------------------------------------------------
class State:
    def __init__(self) -> None:
        cfg = SchedConfig.from_env()
        self.profile: Profile = cfg.profile
        self.version = cfg.profile.version
        models = os.environ.get("OLLAMA_MODELS") or str(Path.home() / ".ollama" / "models")
        self.store = Store(Path(models))
        self.events: list[dict[str, Any]] = []
        self.events_lock = threading.Lock()
        self.sched = Scheduler(cfg, self.events, self.events_lock)
        self.hw = perf.Hardware.from_env()
        self.key_seed = ensure_keypair(Path.home() / ".ollama")
        rate = os.environ.get("FAKE_OLLAMA_PULL_RATE", "").strip()
        self.pull_rate: float | None = float(rate) if rate else None
        self.faults: list[dict[str, Any]] = []
        self.faults_lock = threading.Lock()
        self.blob_locks: dict[str, threading.Lock] = {}
        self.blob_locks_lock = threading.Lock()
        self.noprune = os.environ.get("OLLAMA_NOPRUNE", "").strip().lower() in ("1", "true", "yes", "on")

    def event(self, kind: str, **fields: Any) -> None:
        with self.events_lock:
            self.events.append({"time": rfc3339(time.time()), "type": kind, **fields})

    def blob_lock(self, digest: str) -> threading.Lock:
        with self.blob_locks_lock:
            return self.blob_locks.setdefault(digest, threading.Lock())

    def take_fault(self, method: str, path: str) -> dict[str, Any] | None:
        with self.faults_lock:
            for fault in self.faults:
                paths = fault.get("paths")
                methods = fault.get("methods")
                if paths and not any(_path_matches(path, p) for p in paths):
                    continue
                if methods and method.upper() not in [m.upper() for m in methods]:
                    continue
                count = fault.get("count")
                if count is not None:
                    if count <= 0:
                        continue
                    fault["count"] = count - 1
                return dict(fault)
        return None


STATE: State


def _sleep_until(due: float) -> None:
    """Sleep until time.monotonic() reaches `due` (skipping waits too short to matter)."""
    left = due - time.monotonic()
    if left > 0.0005:
        time.sleep(left)


def _path_matches(path: str, pattern: str) -> bool:
    """Exact path, or a prefix when the pattern ends with ``*``."""
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return path == pattern


def ensure_keypair(home: Path) -> bytes:
    """cmd/cmd.go initializeKeypair (run by ``ollama serve``): create ``~/.ollama/id_ed25519``
    (OpenSSH format) and ``id_ed25519.pub`` when absent; the key signs registry token requests."""
    private, public = home / "id_ed25519", home / "id_ed25519.pub"
    with contextlib.suppress(OSError):
        seed = ed25519.seed_from_openssh(private.read_text())
        if seed is not None:
            return seed
    seed = os.urandom(32)
    with contextlib.suppress(OSError):
        home.mkdir(parents=True, exist_ok=True)
        private.write_text(ed25519.openssh_private_key(seed))
        private.chmod(0o600)
        public.write_text(ed25519.authorized_key(ed25519.public_key(seed)) + "\n")
    return seed


# ----------------------------------------------------------------------------------------------
# model helpers
# ----------------------------------------------------------------------------------------------
class ModelUnreadable(Exception):
    """images.go GetModel / routes.go getModelData failed: ``status`` 404 when a blob is missing
    (os.IsNotExist), 500 with the decoder's message when the weights are not a GGUF."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def read_weights(store: Store, manifest: Manifest) -> dict[str, Any]:
    """The GGUF metadata of a model's weights, or ModelUnreadable as Ollama reports it."""
    layer = manifest.layer(MT_MODEL)
    if not layer:
        return {}
    path = store.blob_path(layer["digest"])
    if not path.is_file():
        raise ModelUnreadable(404, "not found")
    try:
        return read_gguf_metadata(path)
    except GGUFError as exc:
        # fs/ggml/ggml.go Decode: "invalid file magic"; a header cut short: io's "unexpected EOF".
        text = "invalid file magic" if "magic" in str(exc) else "unexpected EOF"
        raise ModelUnreadable(500, text) from exc
    except (OSError, ValueError) as exc:
        raise ModelUnreadable(500, f"read {path}: {exc}") from exc


def config_readable(store: Store, manifest: Manifest) -> bool:
    """ListHandler leaves out a model whose config blob cannot be opened or decoded ("bad
    manifest filepath" / "bad manifest config", v0.6.8 routes.go ListHandler; v0.32.15
    model_list_cache.go buildModelListSummary → readModelListConfig)."""
    cfg = manifest.config
    if not cfg.get("digest"):
        return True
    try:
        data = json.loads(store.blob_path(cfg["digest"]).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict)


def capabilities(meta: dict[str, Any], template: str) -> list[str]:
    """images.go Model.Capabilities: ``embedding`` when the GGUF has ``<arch>.pooling_type``,
    else ``completion``; ``vision`` with ``<arch>.vision.block_count``; ``tools`` / ``insert``
    when the template uses ``.Tools`` / ``.Suffix`` (v0.6.8 Template.Vars)."""
    caps = ["embedding" if is_embedding(meta) else "completion"]
    arch = str(meta.get("general.architecture", ""))
    if arch and f"{arch}.vision.block_count" in meta:
        caps.append("vision")
    if ".Tools" in template:
        caps.append("tools")
    if ".Suffix" in template:
        caps.append("insert")
    return caps


def read_json_blob(store: Store, layer: dict[str, Any] | None) -> dict[str, Any]:
    if not layer:
        return {}
    try:
        data: Any = json.loads(store.blob_path(layer["digest"]).read_bytes())
    except (OSError, ValueError):
        return {}
    return dict(data) if isinstance(data, dict) else {}


def read_text_blob(store: Store, layer: dict[str, Any] | None) -> str:
    if not layer:
        return ""
    try:
        return store.blob_path(layer["digest"]).read_text(errors="replace")
    except OSError:
        return ""


def gguf_meta(store: Store, manifest: Manifest) -> dict[str, Any]:
    layer = manifest.layer(MT_MODEL)
    if not layer:
        return {}
    try:
        return read_gguf_metadata(store.blob_path(layer["digest"]))
    except (OSError, GGUFError, ValueError):
        return {}


def model_details(store: Store, manifest: Manifest, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """api.ModelDetails. Real Ollama reads them from the config blob (ConfigV2: model_format,
    model_family, model_families, model_type, file_type; routes.go ListHandler); the GGUF header
    fills whatever the config lacks."""
    cfg = read_json_blob(store, manifest.config)
    meta = gguf_meta(store, manifest) if meta is None else meta
    arch = str(meta.get("general.architecture", ""))
    family = cfg.get("model_family") or arch
    families = cfg.get("model_families") or ([family] if family else None)
    param_count = meta.get("general.parameter_count")
    parameter_size = cfg.get("model_type") or (human_number(int(param_count)) if param_count else "")
    quant = cfg.get("file_type") or file_type_name(meta.get("general.file_type"))
    return {
        "parent_model": "",
        "format": cfg.get("model_format") or "gguf",
        "family": family,
        "families": families,
        "parameter_size": parameter_size,
        "quantization_level": quant,
    }


def model_ref(store: Store, manifest: Manifest, meta: dict[str, Any] | None = None) -> ModelRef:
    meta = gguf_meta(store, manifest) if meta is None else meta
    layer = manifest.layer(MT_MODEL) or {}
    return ModelRef(
        name=manifest.name.display_shortest(),
        digest=manifest.digest,
        weights=int(layer.get("size", 0)),
        meta=meta,
        details=model_details(store, manifest, meta),
        weights_digest=str(layer.get("digest", "")),
    )


def runner_shape(runner: Runner) -> perf.Shape:
    """perf.py's view of a loaded runner: its weights, KV cache and share on the GPU."""
    share = runner.size_vram / runner.size if runner.size else 0.0
    positions = runner.est.num_ctx * runner.est.num_parallel
    return perf.shape_of(runner.ref.meta, runner.ref.weights, runner.est.kv, positions, share)


class OptionError(ValueError):
    pass


def check_options(merged: dict[str, Any], kinds: dict[str, str]) -> None:
    """api/types.go ``Options.FromMap``: an option of the wrong JSON type is an error (its exact
    text); an unknown option is only logged ("invalid option provided") and ignored."""
    for key, value in merged.items():
        kind = kinds.get(key)
        if kind is None:
            print(f'[fake-ollama] level=WARN msg="invalid option provided" option={key}', flush=True)
            continue
        if value is None:
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if kind == "int" and not number:
            raise OptionError(f'option "{key}" must be of type integer')
        if kind == "float" and not number:
            raise OptionError(f'option "{key}" must be of type float32')
        if kind == "bool" and not isinstance(value, bool):
            raise OptionError(f'option "{key}" must be of type boolean')
        if kind == "array":
            if not isinstance(value, list):
                raise OptionError(f'option "{key}" must be of type array')
            if not all(isinstance(item, str) for item in value):
                raise OptionError(f'option "{key}" must be of an array of strings')


def format_parameters(params: dict[str, Any]) -> str:
    """ShowHandler: ``fmt.Sprintf("%-*s %#v", 30, k, v)`` per value, lists expanded."""
    lines: list[str] = []
    for key in sorted(params):
        values = params[key] if isinstance(params[key], list) else [params[key]]
        for value in values:
            if isinstance(value, str):
                shown = json.dumps(value, ensure_ascii=False)
            elif isinstance(value, bool):
                shown = "true" if value else "false"
            elif isinstance(value, float) and value == int(value):
                shown = str(int(value))
            else:
                shown = str(value)
            lines.append(f"{key:<30} {shown}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# HTTP handler
# ----------------------------------------------------------------------------------------------


def show_modelfile(store: Store, m: Manifest, params: dict[str, Any], template: str, system: str) -> str:
    """The `modelfile` of /api/show (server/routes.go GetModelInfo, v0.32.15: a header, `m.String()`)."""
    modelfile = [
        '# Modelfile generated by "ollama show"',
        "# To build a new Modelfile based on this, replace FROM with:",
        f"# FROM {m.name.display_shortest()}",
        "",
        f"FROM {store.blob_path((m.layer(MT_MODEL) or {}).get('digest', 'sha256:' + '0' * 64))}",
    ]
    if template:
        modelfile.append(f'TEMPLATE """{template}"""')
    if system:
        modelfile.append(f'SYSTEM """{system}"""')
    for key in sorted(params):
        values = params[key] if isinstance(params[key], list) else [params[key]]
        modelfile.extend(f"PARAMETER {key} {v}" for v in values)
    return "\n".join(modelfile) + "\n"


class Handler(BaseHTTPRequestHandler):
    # Keep-alive responses would otherwise wait on delayed ACKs (Nagle): ~40 ms a request,
    # which real Ollama (Go's net/http sets TCP_NODELAY) does not have.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "fake-ollama"
    sys_version = ""

    # -- plumbing --------------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # one line per request, stdout
        sys.stdout.write(f"[fake-ollama] {self.address_string()} {format % args}\n")
        sys.stdout.flush()

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
            return data
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> dict[str, Any] | None:
        raw = self._raw_body
        if not raw.strip():
            self.send_json(400, {"error": "missing request body"})
            return None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            self.send_json(400, {"error": f"invalid character in request body: {exc}"})
            return None
        if not isinstance(data, dict):
            self.send_json(400, {"error": "json: cannot unmarshal into Go value of type api request"})
            return None
        return data

    def send_bytes(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, obj: Any) -> None:
        self.send_bytes(status, go_json(obj), "application/json; charset=utf-8")

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_chunk(self, data: bytes) -> None:
        try:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError) as exc:
            self.close_connection = True
            raise ClientGone(str(exc)) from exc

    def end_stream(self) -> None:
        with contextlib.suppress(ClientGone):
            self.write_chunk(b"")  # "0\r\n\r\n"

    # -- dispatch --------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        path = self.path.split("?", 1)[0]
        self._raw_body = self._body() if self.command in ("POST", "DELETE", "PUT") else b""
        if not path.startswith("/__fake/"):
            fault = STATE.take_fault(self.command, path)
            if fault is not None:
                if fault.get("hang_seconds"):
                    time.sleep(float(fault["hang_seconds"]))
                if fault.get("drop"):
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault.get("status"):
                    self.send_json(int(fault["status"]), {"error": fault.get("error") or "injected fault"})
                    return
            STATE.sched.expire()
        route = ROUTES.get((self.command, path))
        if route is None and self.command == "HEAD":
            route = ROUTES.get(("GET", path))
        if route is None:
            known = {p for (_m, p) in ROUTES}
            if path in known:
                self.send_json(405, {"error": "405 method not allowed"})
            else:
                self.send_bytes(404, b"404 page not found", "text/plain")
            return
        try:
            route(self)
        except ClientGone:
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = _dispatch

    # -- simple routes ---------------------------------------------------------------------------
    def h_root(self) -> None:
        self.send_bytes(200, b"Ollama is running", "text/plain; charset=utf-8")

    def h_version(self) -> None:
        """routes.go: ``{"version": ...}`` and nothing else (v0.32.15 L1879-1880, v0.6.8 the
        same). The fake adds ``simulated``, which no Ollama sends, so whatever reads the
        server's figures can tell they come from perf.py's model (the one deliberate
        difference: tests/harness/README.md)."""
        self.send_json(200, {"version": STATE.version, "simulated": STATE.hw.describe()})

    def h_tags(self) -> None:
        store = STATE.store
        models: list[dict[str, Any]] = []
        for m in store.list_manifests():
            if not config_readable(store, m):
                print(f"[fake-ollama] level=WARN msg=bad-manifest-config name={m.name.display_shortest()}")
                continue
            name = m.name.display_shortest()
            models.append(
                {
                    "name": name,
                    "model": name,
                    "modified_at": rfc3339(m.mtime),
                    "size": m.size,
                    "digest": m.digest,
                    "details": model_details(store, m),
                    "_mtime": m.mtime,
                }
            )
        # ListHandler: stable sort by ModifiedAt.Unix() descending.
        models.sort(key=lambda x: -int(x["_mtime"]))
        for x in models:
            del x["_mtime"]
        self.send_json(200, {"models": models})

    def _lookup(self, raw_name: str) -> Manifest | None:
        name = Name.parse(raw_name)
        if not name.is_valid():
            return None
        return STATE.store.read_manifest(name)

    def h_show(self) -> None:
        req = self._json_body()
        if req is None:
            return
        raw = req.get("model") or req.get("name") or ""
        if not raw:
            self.send_json(400, {"error": "model is required"})
            return
        m = self._lookup(raw)
        if m is None or not config_readable(STATE.store, m):
            self.send_json(404, {"error": f"model '{raw}' not found"})
            return
        store = STATE.store
        try:
            # routes.go GetModelInfo → getModelData(m.ModelPath): a missing weights blob is
            # os.IsNotExist → 404, weights that are not a GGUF → 500 with the decoder's text.
            meta = read_weights(store, m)
        except ModelUnreadable as exc:
            text = f"model '{raw}' not found" if exc.status == 404 else str(exc)
            self.send_json(exc.status, {"error": text})
            return
        arch = str(meta.get("general.architecture", ""))
        info: dict[str, Any] = {}
        for key, value in meta.items():
            if key.startswith("__") or key == "general.name" or key.startswith("tokenizer."):
                continue
            info[key] = value
        params = read_json_blob(store, m.layer(MT_PARAMS))
        template = read_text_blob(store, m.layer(MT_TEMPLATE))
        system = read_text_blob(store, m.layer(MT_SYSTEM))
        license_text = read_text_blob(store, m.layer(MT_LICENSE))
        resp: dict[str, Any] = {
            "modelfile": show_modelfile(store, m, params, template, system),
            "parameters": format_parameters(params),
            "template": template,
            "details": model_details(store, m, meta),
            "model_info": info,
            "capabilities": capabilities(meta, template),
            "modified_at": rfc3339(m.mtime),
        }
        if system:
            resp["system"] = system
        if license_text:
            resp["license"] = license_text
        if not arch:
            resp["model_info"] = {}
        self.send_json(200, resp)

    def h_delete(self) -> None:
        req = self._json_body()
        if req is None:
            return
        raw = req.get("model") or req.get("name") or ""
        name = Name.parse(raw)
        if not name.is_valid():
            self.send_json(400, {"error": f'name "{raw}" is invalid'})
            return
        store = STATE.store
        m = store.read_manifest(name)
        if m is None:
            self.send_json(404, {"error": f"model '{raw}' not found"})
            return
        store.remove_manifest(m)
        removed = store.remove_unreferenced([layer["digest"] for layer in m.all_layers()])
        STATE.event("delete", model=m.name.display_shortest(), removed_blobs=removed)
        self.send_bytes(200, b"", "text/plain; charset=utf-8")

    def h_copy(self) -> None:
        """CopyHandler (v0.32.15 server/routes.go) and CopyModel (server/images.go): both names
        must be valid (400 ``source "x" is invalid`` / ``destination "x" is invalid``), each is
        matched case-insensitively to an existing name (getExistingName), the source's manifest
        file is copied byte for byte (so the copy lists the same digest and references the same
        blobs), a copy onto itself does nothing, a missing source is 404 ``model "x" not found``;
        success is 200 with an empty body."""
        req = self._json_body()
        if req is None:
            return
        raw_src, raw_dst = str(req.get("source") or ""), str(req.get("destination") or "")
        src, dst = Name.parse(raw_src), Name.parse(raw_dst)
        if not src.is_valid():
            self.send_json(400, {"error": f'source "{raw_src}" is invalid'})
            return
        if not dst.is_valid():
            self.send_json(400, {"error": f'destination "{raw_dst}" is invalid'})
            return
        store = STATE.store
        m = store.read_manifest(src)
        if m is None:
            self.send_json(404, {"error": f'model "{raw_src}" not found'})
            return
        existing = store.read_manifest(dst)
        target = existing.path if existing is not None else store.manifest_path(dst)
        if target != m.path:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            tmp.write_bytes(m.raw)
            os.replace(tmp, target)
        STATE.event("copy", source=m.name.display_shortest(), destination=dst.display_shortest())
        self.send_bytes(200, b"", "text/plain; charset=utf-8")

    def h_ps(self) -> None:
        """PsHandler: one entry per runner, under the name of the model that loaded it;
        ``context_length`` only from 0.9.7; ``expires_at`` as the scheduler keeps it (left as
        it was while a request runs, see scheduler.py)."""
        models = []
        now = time.time()
        for r in STATE.sched.running():
            entry: dict[str, Any] = {
                "name": r.name,
                "model": r.name,
                "size": r.size,
                "digest": r.ref.digest,
                "details": r.ref.details,
                "expires_at": rfc3339(r.shown_expiry(now)),
                "size_vram": r.size_vram,
            }
            if STATE.profile.ps_context_length:
                entry["context_length"] = r.context_length
            models.append(entry)
        self.send_json(200, {"models": models})

    # -- generate / chat / embed ------------------------------------------------------------------
    def _client_gone(self) -> bool:
        """The client closed its end: the request body was read, so a readable socket is EOF.
        (Ollama ties the load to the request context, which the client's hang-up cancels.)"""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _schedule(self, req: dict[str, Any]) -> tuple[Manifest, Any, float | None] | None:
        # keep_alive is decoded while binding the JSON body (api.Duration.UnmarshalJSON), so a bad
        # value is a 400 before the model is even looked up.
        try:
            keep_alive = keep_alive_seconds(req.get("keep_alive"), math.nan)
        except DurationError as exc:
            self.send_json(400, {"error": str(exc)})
            return None
        raw = req.get("model") or ""
        if not raw:
            self.send_json(400, {"error": "model is required"})
            return None
        m = self._lookup(raw)
        if m is None or not config_readable(STATE.store, m):
            self.send_json(404, {"error": f"model '{raw}' not found"})
            return None
        return m, raw, None if math.isnan(keep_alive) else keep_alive

    def _run_model(
        self,
        m: Manifest,
        raw: str,
        req: dict[str, Any],
        keep_alive: float | None,
        need: str | None,
        verb: str,
    ) -> Runner | None:
        """routes.go scheduleRunner: capabilities, then the options (model params + request,
        ``Options.FromMap``), then the scheduler. None when an error answer was sent; else the
        runner, held for this request until ``STATE.sched.release``."""
        store = STATE.store
        try:
            meta = read_weights(store, m)
        except ModelUnreadable as exc:
            if need is not None:
                # Capabilities() cannot open the weights: no capability at all.
                self.send_json(400, {"error": f'"{raw}" does not support {verb}'})
            elif exc.status == 404:
                self.send_json(404, {"error": f'model "{raw}" not found, try pulling it first'})
            else:
                self.send_json(500, {"error": str(exc)})
            return None
        template = read_text_blob(store, m.layer(MT_TEMPLATE))
        if need is not None and need not in capabilities(meta, template):
            self.send_json(400, {"error": f'"{raw}" does not support {verb}'})
            return None
        params = read_json_blob(store, m.layer(MT_PARAMS))
        request_opts = req.get("options") if isinstance(req.get("options"), dict) else {}
        merged = {**params, **(request_opts or {})}
        try:
            check_options(params, STATE.profile.options)
            check_options(request_opts or {}, STATE.profile.options)
        except OptionError as exc:
            self.send_json(500, {"error": str(exc)})
            return None
        num_ctx = int(merged["num_ctx"]) if merged.get("num_ctx") else None
        other = tuple(sorted((k, merged[k]) for k in RUNNER_OPTIONS if k != "num_ctx" and k in merged))
        ref = model_ref(store, m, meta)
        try:
            return STATE.sched.acquire(ref, num_ctx, keep_alive, other, cancelled=self._client_gone)
        except LoadAborted:
            self.close_connection = True  # handleScheduleError: 499 to a client that is gone
            return None

    def _chatlike(self, chat: bool) -> None:
        req = self._json_body()
        if req is None:
            return
        scheduled = self._schedule(req)
        if scheduled is None:
            return
        m, raw, keep_alive = scheduled
        now = rfc3339(time.time())
        empty = not req.get("messages") if chat else not req.get("prompt")
        base: dict[str, Any] = {"model": raw, "created_at": now}
        if chat:
            base["message"] = {"role": "assistant", "content": ""}
        else:
            base["response"] = ""
        # routes.go GenerateHandler/ChatHandler: empty prompt + keep_alive 0 → expireRunner,
        # before any capability check (so it also unloads an embedding model: `ollama stop`).
        if empty and req.get("keep_alive") is not None and keep_alive == 0:
            STATE.sched.unload(model_ref(STATE.store, m), reason="keep_alive 0")
            self.send_json(200, {**base, "done": True, "done_reason": "unload"})
            return
        started = time.monotonic_ns()
        runner = self._run_model(m, raw, req, keep_alive, "completion", "chat" if chat else "generate")
        if runner is None:
            return
        try:
            load_ns = time.monotonic_ns() - started
            if empty:
                self.send_json(200, {**base, "done": True, "done_reason": "load"})
                return
            self._complete(runner, m, req, base, chat, started, load_ns)
        finally:
            STATE.sched.release(runner)

    def _complete(
        self,
        runner: Runner,
        m: Manifest,
        req: dict[str, Any],
        base: dict[str, Any],
        chat: bool,
        started: int,
        load_ns: int,
    ) -> None:
        """Evaluate the prompt and generate the reply at the pace of perf.py's model, streaming
        one chunk per token (routes.go GenerateHandler/ChatHandler: a chunk per runner
        CompletionResponse, the last with done, done_reason and the Metrics)."""
        system = req.get("system") or read_text_blob(STATE.store, m.layer(MT_SYSTEM))
        if chat:
            messages = req.get("messages") or []
            text = "\n".join(str(x.get("content", "")) for x in messages if isinstance(x, dict))
        else:
            text = str(req.get("prompt") or "")
        tokens = perf.truncate(perf.tokenize(f"{system}\n{text}" if system else text), runner.context_length)
        cached = perf.cached_prefix(runner.cached, tokens)
        shape = runner_shape(runner)
        options = req.get("options") if isinstance(req.get("options"), dict) else {}
        predict = (options or {}).get("num_predict")
        limit = int(predict) if isinstance(predict, int | float) else None
        count, reason = perf.reply_length(STATE.hw, limit, len(tokens), runner.context_length)
        prompt_s = perf.prompt_seconds(shape, STATE.hw, len(tokens) - cached, cached)
        due = time.monotonic() + prompt_s
        stream = req.get("stream") is not False
        if stream:
            self.start_stream()
        eval_s = 0.0
        reply = []
        for i in range(count):
            step = perf.token_seconds(shape, STATE.hw, len(tokens) + i)
            eval_s += step
            due += step
            _sleep_until(due)
            word = perf.piece(i)
            reply.append(word)
            if stream:
                piece = {**base, "done": False}
                if chat:
                    piece["message"] = {"role": "assistant", "content": word}
                else:
                    piece["response"] = word
                self.write_chunk(go_json(piece) + b"\n")  # ClientGone: the runner is released
        runner.cached = tokens + perf.tokenize("".join(reply))
        stats = {
            "total_duration": time.monotonic_ns() - started,
            "load_duration": load_ns,
            "prompt_eval_count": len(tokens),
            "prompt_eval_duration": perf.ns(prompt_s),
            "eval_count": count,
            "eval_duration": perf.ns(eval_s),
        }
        final: dict[str, Any] = {**base, "done": True, "done_reason": reason, **stats}
        if not chat:
            final["context"] = [1, 2, 3]
        if not stream:
            if chat:
                final["message"] = {"role": "assistant", "content": "".join(reply)}
            else:
                final["response"] = "".join(reply)
            self.send_json(200, final)
            return
        self.write_chunk(go_json(final) + b"\n")
        self.end_stream()

    def h_generate(self) -> None:
        self._chatlike(chat=False)

    def h_chat(self) -> None:
        openai_compat.native_chat(self, lambda: self._chatlike(chat=True), STATE.event)

    def h_v1_chat(self) -> None:
        openai_compat.chat_completions(self, lambda: self._chatlike(chat=True), STATE.event)

    def h_v1_models(self) -> None:
        openai_compat.models(self, self.h_tags, STATE.event)

    def h_embed(self) -> None:
        """POST /api/embed {model, input: str | [str], keep_alive, options} (routes.go
        EmbedHandler, same in v0.6.8 and v0.32.15): the model is scheduled like any other
        (no capability required, ``keep_alive`` sets its session: -1 pins it, 0 unloads it once
        the request is done) and an empty input only loads it (``embeddings: []``). Vectors
        are deterministic bag-of-words hashes, unit length, so texts that share words are near
        each other: enough for a RAG retrieval round trip."""
        req = self._json_body()
        if req is None:
            return
        try:
            given = keep_alive_seconds(req.get("keep_alive"), math.nan)
        except DurationError as exc:
            self.send_json(400, {"error": str(exc)})
            return
        keep_alive = None if math.isnan(given) else given
        model = str(req.get("model") or "")
        raw = req.get("input")
        if raw is not None and not isinstance(raw, str | list):
            self.send_json(400, {"error": "invalid input type"})
            return
        if isinstance(raw, list) and not all(isinstance(t, str) for t in raw):
            self.send_json(400, {"error": "invalid input type"})
            return
        texts = ([raw] if raw else []) if isinstance(raw, str) else list(raw or [])
        m = self._lookup(model)
        if m is None or not config_readable(STATE.store, m):
            self.send_json(404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        started = time.monotonic_ns()
        runner = self._run_model(m, model, req, keep_alive, None, "embed")
        if runner is None:
            return
        try:
            self._embed(runner, model, texts, started)
        finally:
            STATE.sched.release(runner)

    def _embed(self, runner: Runner, model: str, texts: list[str], started: int) -> None:
        """The inputs are evaluated at perf.py's prompt rate (no cache between inputs);
        EmbedResponse carries total_duration, load_duration and prompt_eval_count (v0.32.15
        routes.go EmbedHandler)."""
        load_ns = time.monotonic_ns() - started
        shape = runner_shape(runner)
        counts = [len(perf.truncate(perf.tokenize(t), runner.context_length)) for t in texts]
        _sleep_until(time.monotonic() + sum(perf.prompt_seconds(shape, STATE.hw, n, 0) for n in counts))
        dims = 64
        vectors = []
        for text in texts:
            vec = [0.0] * dims
            for word in text.lower().split():
                h = hashlib.sha256(word.encode()).digest()
                vec[h[0] % dims] += 1.0 if h[1] % 2 else -1.0
            norm = math.sqrt(sum(v * v for v in vec)) or 1.0
            vectors.append([v / norm for v in vec])
        STATE.event("embed", model=model, inputs=len(texts))
        answer: dict[str, Any] = {
            "model": model,
            "embeddings": vectors,
            "total_duration": time.monotonic_ns() - started,
            "load_duration": load_ns,
        }
        if sum(counts):
            answer["prompt_eval_count"] = sum(counts)
        self.send_json(200, answer)
        # keep_alive 0: sessionDuration 0, so the runner expires as soon as the request ends (release)

    # -- streamed operations (pull / create) ------------------------------------------------------
    def _streamer(self, stream: bool) -> Streamer:
        return Streamer(self, stream)

    def h_pull(self) -> None:
        req = self._json_body()
        if req is None:
            return
        raw = req.get("model") or req.get("name") or ""
        name = Name.parse(raw)
        if not raw or not name.is_valid():
            self.send_json(400, {"error": "invalid model name"})
            return
        out = self._streamer(req.get("stream") is not False)
        try:
            pull_model(name, bool(req.get("insecure")), out)
        except PullError as exc:
            out.error(str(exc))
            return
        out.finish()

    def h_create(self) -> None:
        req = self._json_body()
        if req is None:
            return
        raw = req.get("model") or req.get("name") or ""
        name = Name.parse(raw)
        if not raw or not name.is_valid():
            self.send_json(400, {"error": "invalid model name"})
            return
        out = self._streamer(req.get("stream") is not False)
        try:
            create_model(name, req, out)
        except PullError as exc:
            out.error(str(exc), status=getattr(exc, "status", 500))
            return
        out.finish()

    # -- test-only -------------------------------------------------------------------------------
    def h_events(self) -> None:
        if self.command == "DELETE":
            with STATE.events_lock:
                STATE.events.clear()
            self.send_json(200, {"events": []})
            return
        with STATE.events_lock:
            events = list(STATE.events)
        self.send_json(200, {"events": events})

    def h_fault(self) -> None:
        if self.command == "DELETE":
            with STATE.faults_lock:
                STATE.faults.clear()
            self.send_json(200, {"faults": []})
            return
        if self.command == "POST":
            req = self._json_body()
            if req is None:
                return
            with STATE.faults_lock:
                STATE.faults.append(req)
        with STATE.faults_lock:
            faults = list(STATE.faults)
        self.send_json(200, {"faults": faults})

    def h_config(self) -> None:
        req = self._json_body()
        if req is None:
            return
        if "pull_rate" in req:
            rate = req["pull_rate"]
            STATE.pull_rate = float(rate) if rate else None
        self.send_json(200, {"pull_rate": STATE.pull_rate})


class Streamer:
    """routes.go ``streamResponse`` / ``waitForStream``: NDJSON lines while streaming; an error
    before anything was written is an HTTP error (v0.12.6+; v0.6.8 streams it with 200), after
    that a final ``{"error": ...}`` line with HTTP 200. Non-streaming: only the last message,
    errors as HTTP 500 (or the status the error carries, e.g. 400 for a template error)."""

    def __init__(self, handler: Handler, stream: bool) -> None:
        self.h = handler
        self.stream = stream
        self.started = False
        self.last: dict[str, Any] | None = None

    def send(self, msg: dict[str, Any]) -> None:
        self.last = msg
        if not self.stream:
            # waitForStream still notices a client that went away when the pull ends; here we
            # only probe the socket cheaply so a dropped client stops a download.
            return
        if not self.started:
            self.h.start_stream()
            self.started = True
        self.h.write_chunk(go_json(msg) + b"\n")

    def error(self, text: str, status: int = 500) -> None:
        if self.stream and not self.started and not STATE.profile.error_status_before_output:
            self.h.start_stream()  # v0.6.8: always 200, the error is the stream's one line
            self.started = True
        if self.stream and self.started:
            self.h.write_chunk(go_json({"error": text}) + b"\n")
            self.h.end_stream()
        else:
            self.h.send_json(status, {"error": text})

    def finish(self) -> None:
        if self.stream:
            if not self.started:
                self.h.start_stream()
            self.h.end_stream()
        else:
            self.h.send_json(200, self.last or {"status": "success"})


# ----------------------------------------------------------------------------------------------
# pull (server/images.go PullModel, server/download.go)
# ----------------------------------------------------------------------------------------------
def _registry_url(name: Name, insecure: bool, path: str) -> str:
    scheme = "http" if insecure or name.scheme == "http" else name.scheme
    return f"{scheme}://{name.host}/v2/{name.namespace}/{name.model}/{path}"


class RegistryClient:
    """images.go ``makeRequestWithRetry`` for one pull: a 401 is answered by fetching a token
    from the ``WWW-Authenticate: Bearer realm=…,service=…,scope=…`` challenge (auth.go
    ``getAuthorizationToken``: GET realm?service&scope&ts&nonce signed with the server's
    ed25519 key; from v0.14.3 the realm must be on the registry's own host) and retrying; a
    second 401 is ``unauthorized: access denied``. The token is reused for the blobs."""

    def __init__(self) -> None:
        self.token: str | None = None

    def open(self, url: str, headers: dict[str, str], what: str) -> Any:
        for _attempt in range(2):
            sent = dict(headers)
            if self.token:
                sent["Authorization"] = f"Bearer {self.token}"
            req = urllib.request.Request(url, headers=sent, method="GET")
            try:
                return urllib.request.urlopen(req, timeout=30)
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    challenge = parse_challenge(exc.headers.get("www-authenticate", ""))
                    exc.close()
                    self.token = self._token(challenge, urllib.parse.urlsplit(url).netloc, what)
                    continue
                if exc.code == 404:
                    raise PullError(f"{what}: file does not exist") from exc
                body = exc.read().decode(errors="replace").strip()
                raise PullError(f"{what}: {exc.code}: {body}") from exc
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise PullError(f'{what}: Get "{url}": {reason}') from exc
        raise PullError(f"{what}: unauthorized: access denied")

    def _token(self, challenge: dict[str, str], original_host: str, what: str) -> str:
        realm = urllib.parse.urlsplit(challenge.get("realm", ""))
        if STATE.profile.realm_same_host and realm.netloc != original_host:
            raise PullError(
                f'{what}: realm host "{realm.netloc}" does not match original host "{original_host}"'
            )
        query = urllib.parse.parse_qsl(realm.query)
        query.append(("service", challenge.get("service", "")))
        query.extend(("scope", scope) for scope in challenge.get("scope", "").split(" "))
        query.append(("ts", str(int(time.time()))))
        query.append(("nonce", base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")))
        url = urllib.parse.urlunsplit(
            (realm.scheme, realm.netloc, realm.path, urllib.parse.urlencode(query), "")
        )
        empty = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
        signature = ed25519.ollama_signature(STATE.key_seed, f"GET,{url},{empty}".encode())
        req = urllib.request.Request(url, headers={"Authorization": signature}, method="GET")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace").strip()
            raise PullError(f"{what}: {exc.code}: {text}" if text else f"{what}: {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise PullError(f'{what}: Get "{url}": {getattr(exc, "reason", exc)}') from exc
        try:
            token = json.loads(body).get("token", "")
        except (ValueError, AttributeError) as exc:
            raise PullError(f"{what}: {exc}") from exc
        return str(token)


def parse_challenge(header: str) -> dict[str, str]:
    """images.go ``parseRegistryChallenge``: realm, service and scope of a Bearer challenge."""
    text = header.removeprefix("Bearer ")
    return {k: v for k, v in re.findall(r'(\w+)="([^"]*)"', text)}


def pull_model(name: Name, insecure: bool, out: Streamer) -> None:
    store = STATE.store
    short = name.display_shortest()
    if name.scheme == "http" and not insecure:
        out.send({"status": "pulling manifest"})
        raise PullError("insecure protocol http")
    old = store.read_manifest(name)
    out.send({"status": "pulling manifest"})
    registry = RegistryClient()
    resp = registry.open(
        _registry_url(name, insecure, f"manifests/{name.tag}"),
        {"Accept": MT_MANIFEST},
        "pull model manifest",
    )
    with resp:
        try:
            manifest = json.loads(resp.read())
        except ValueError as exc:
            raise PullError(f"pull model manifest: {exc}") from exc
    layers: list[dict[str, Any]] = list(manifest.get("layers") or [])
    config = manifest.get("config") or {}
    all_layers = layers + ([config] if config.get("digest") else [])
    STATE.event("pull_start", model=short, layers=[x["digest"] for x in all_layers])
    fresh: list[str] = []
    for layer in all_layers:
        if download_blob(name, insecure, layer, out, registry):
            fresh.append(layer["digest"])
    out.send({"status": "verifying sha256 digest"})
    for digest in fresh:
        path = store.blob_path(digest)
        got = sha256_file(path)
        if got != digest:
            # images.go: errDigestMismatch → delete the blob, return the error.
            path.unlink(missing_ok=True)
            STATE.event("digest_mismatch", model=short, digest=digest, got=got)
            raise PullError(f"digest mismatch, file must be downloaded again: want {digest}, got {got}")
    out.send({"status": "writing manifest"})
    store.write_manifest(name, config, layers)
    if old is not None and not STATE.noprune:
        new_digests = {x["digest"] for x in all_layers}
        stale = [x["digest"] for x in old.all_layers() if x["digest"] not in new_digests]
        if stale:
            out.send({"status": "removing unused layers"})
            store.remove_unreferenced(stale)
    STATE.event("pull_done", model=short)
    out.send({"status": "success"})


def download_blob(
    name: Name, insecure: bool, layer: dict[str, Any], out: Streamer, registry: RegistryClient
) -> bool:
    """Download one layer; returns True if bytes were fetched (so it must be verified).

    Simplification of server/download.go: one sequential ranged GET instead of 16 parallel
    parts with ``-partial-N`` JSON state files. Bytes go to ``blobs/sha256-<hex>-partial``; a
    later pull resumes from that file's size with ``Range: bytes=<size>-``. When the client
    hangs up the download stops and the partial file stays (download.go cancels when the last
    waiting client disconnects)."""
    store = STATE.store
    digest = layer["digest"]
    total = int(layer.get("size", 0))
    status = f"pulling {digest.split(':', 1)[-1][:12]}"
    with STATE.blob_lock(digest):
        if store.has_blob(digest):
            # download.go L476-503: cache hit reports total=completed=size.
            out.send({"status": status, "digest": digest, "total": total, "completed": total})
            return False
        partial = store.partial_path(digest)
        start = partial.stat().st_size if partial.exists() else 0
        if start > total:
            partial.unlink()
            start = 0
        first: dict[str, Any] = {"status": status, "digest": digest, "total": total}
        if start:
            first["completed"] = start
        out.send(first)
        completed = start
        if start < total:
            headers = {"Range": f"bytes={start}-"} if start else {}
            resp = registry.open(_registry_url(name, insecure, f"blobs/{digest}"), headers, "download failed")
            with resp:
                code = resp.status
                if start and code != 206:
                    start = completed = 0  # registry ignored the range: start over
                STATE.event("download", digest=digest, range_start=start, http_status=code, total=total)
                began = time.monotonic()
                fetched = 0
                with partial.open("ab" if start else "wb") as fh:
                    try:
                        while completed < total:
                            chunk = resp.read(min(CHUNK, total - completed))
                            if not chunk:
                                raise PullError("download failed: unexpected EOF")
                            fh.write(chunk)
                            completed += len(chunk)
                            fetched += len(chunk)
                            rate = STATE.pull_rate
                            if rate:
                                ahead = fetched / rate - (time.monotonic() - began)
                                if ahead > 0:
                                    time.sleep(ahead)
                            fh.flush()
                            out.send(
                                {"status": status, "digest": digest, "total": total, "completed": completed}
                            )
                    except ClientGone:
                        fh.flush()
                        os.fsync(fh.fileno())
                        STATE.event("pull_aborted", digest=digest, completed=completed, total=total)
                        raise
                    except (OSError, TimeoutError) as exc:
                        raise PullError(f"download failed: {exc}") from exc
        os.replace(partial, store.blob_path(digest))
        return True


# ----------------------------------------------------------------------------------------------
# create (server/create.go, current API: {"model","from","system","parameters","template",...})
# ----------------------------------------------------------------------------------------------
class CreateError(PullError):
    def __init__(self, text: str, status: int = 500) -> None:
        super().__init__(text)
        self.status = status


def create_model(name: Name, req: dict[str, Any], out: Streamer) -> None:
    store = STATE.store
    base_name = req.get("from") or ""
    if not base_name:
        raise CreateError("neither 'from' or 'files' was specified", 400)
    base = store.read_manifest(Name.parse(base_name)) if Name.parse(base_name).is_valid() else None
    if base is None:
        # Real Ollama would try to pull the base from its registry first; the fake refuses.
        raise CreateError(f"model '{base_name}' not found", 404)
    messages: list[str] = []
    layers: list[dict[str, Any]] = []
    for layer in base.layers:
        layers.append(dict(layer))
        messages.append(f"using existing layer {layer['digest']}")

    def replace(media_type: str, data: bytes) -> None:
        nonlocal layers
        existed = store.has_blob("sha256:" + hashlib.sha256(data).hexdigest())
        digest, size = store.write_blob(data)
        layers = [x for x in layers if x.get("mediaType") != media_type]
        layers.append({"mediaType": media_type, "digest": digest, "size": size})
        messages.append(f"{'using existing' if existed else 'creating new'} layer {digest}")

    if req.get("template"):
        # create.go setTemplate: template.Parse; errBadTemplate → 400 "template error: …"
        funcs = gotemplate.OLLAMA_FUNCS_0_32 if STATE.profile.v >= (0, 11, 0) else gotemplate.OLLAMA_FUNCS_0_6
        try:
            gotemplate.check(str(req["template"]), funcs)
        except gotemplate.TemplateError as exc:
            raise CreateError(f"template error: {exc}", 400) from exc
        replace(MT_TEMPLATE, str(req["template"]).encode())
    if req.get("system"):
        replace(MT_SYSTEM, str(req["system"]).encode())
    if req.get("license"):
        lic = req["license"]
        replace(MT_LICENSE, ("\n".join(lic) if isinstance(lic, list) else str(lic)).encode())
    params = dict(req.get("parameters") or {})
    if params:
        # create.go setParameters: keep the base's values the request does not override.
        for key, value in read_json_blob(store, base.layer(MT_PARAMS)).items():
            params.setdefault(key, value)
        replace(MT_PARAMS, go_json(params))
    base_cfg = read_json_blob(store, base.config)
    cfg = {
        **base_cfg,
        "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in layers]},
    }
    cfg_digest, cfg_size = store.write_blob(go_json(cfg))
    for msg in messages:
        out.send({"status": msg})
    out.send({"status": "writing manifest"})
    store.write_manifest(name, {"mediaType": MT_CONFIG, "digest": cfg_digest, "size": cfg_size}, layers)
    STATE.event("create", model=name.display_shortest(), base=base.name.display_shortest())
    out.send({"status": "success"})


# ----------------------------------------------------------------------------------------------
ROUTES: dict[tuple[str, str], Any] = {
    ("GET", "/"): Handler.h_root,
    ("GET", "/api/version"): Handler.h_version,
    ("GET", "/api/tags"): Handler.h_tags,
    ("POST", "/api/show"): Handler.h_show,
    ("DELETE", "/api/delete"): Handler.h_delete,
    ("GET", "/api/ps"): Handler.h_ps,
    ("POST", "/api/generate"): Handler.h_generate,
    ("POST", "/api/chat"): Handler.h_chat,
    ("POST", "/api/embed"): Handler.h_embed,
    ("POST", "/v1/chat/completions"): Handler.h_v1_chat,
    ("GET", "/v1/models"): Handler.h_v1_models,
    ("POST", "/api/pull"): Handler.h_pull,
    ("POST", "/api/create"): Handler.h_create,
    ("POST", "/api/copy"): Handler.h_copy,
    ("GET", "/__fake/events"): Handler.h_events,
    ("DELETE", "/__fake/events"): Handler.h_events,
    ("GET", "/__fake/fault"): Handler.h_fault,
    ("POST", "/__fake/fault"): Handler.h_fault,
    ("DELETE", "/__fake/fault"): Handler.h_fault,
    ("POST", "/__fake/config"): Handler.h_config,
}


def parse_host(value: str) -> tuple[str, int]:
    """envconfig Host(): ``host``, ``:port``, ``host:port``, ``scheme://host:port``."""
    value = value.strip() or "0.0.0.0:11434"
    if "://" in value:
        value = value.split("://", 1)[1]
    value = value.split("/", 1)[0]
    host, sep, port = value.rpartition(":")
    if not sep:
        return value or "0.0.0.0", 11434
    return host.strip("[]") or "0.0.0.0", int(port or 11434)


def main() -> None:
    global STATE
    STATE = State()
    if not STATE.noprune:
        removed = STATE.store.prune()
        if removed:
            print(f"[fake-ollama] pruned at startup: {removed}", flush=True)
    host, port = parse_host(os.environ.get("OLLAMA_HOST", "0.0.0.0:11434"))
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer((host, port), Handler)
    cfg = STATE.sched.cfg
    print(
        f"[fake-ollama] Listening on {host}:{port} (version {STATE.version}) models={STATE.store.root} "
        f"vram={cfg.vram} overhead={cfg.overhead} max_loaded={cfg.max_runners} "
        f"keep_alive={cfg.default_keep_alive if not math.isinf(cfg.default_keep_alive) else 'forever'} "
        f"ctx={cfg.default_ctx} pull_rate={STATE.pull_rate}",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    main()
