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
  FAKE_OLLAMA_VERSION         /api/version answer (default 0.6.8)
  FAKE_OLLAMA_GPU_VRAM        bytes of the simulated GPU (default 8 GiB; 0 = no GPU)
  FAKE_OLLAMA_OVERHEAD        per-model runtime overhead on the GPU (default 457 MiB)
  FAKE_OLLAMA_GRAPH_BYTES     fixed graph size per model (default: formula in scheduler.py)
  FAKE_OLLAMA_PULL_RATE       bytes/s download throttle (default unlimited)
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

import contextlib
import hashlib
import json
import math
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The container runs this file as a script (/app/server.py) with its siblings on sys.path;
# type checkers see the same modules through the package path.
if TYPE_CHECKING:
    from tests.harness.fake_ollama import openai_compat
    from tests.harness.fake_ollama.gguf_reader import (
        GGUFError,
        file_type_name,
        human_number,
        read_gguf_metadata,
    )
    from tests.harness.fake_ollama.scheduler import (
        DurationError,
        ModelRef,
        SchedConfig,
        Scheduler,
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
else:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import openai_compat
    from gguf_reader import GGUFError, file_type_name, human_number, read_gguf_metadata
    from scheduler import (
        DurationError,
        ModelRef,
        SchedConfig,
        Scheduler,
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
        self.version = os.environ.get("FAKE_OLLAMA_VERSION", "0.6.8")
        models = os.environ.get("OLLAMA_MODELS") or str(Path.home() / ".ollama" / "models")
        self.store = Store(Path(models))
        self.events: list[dict[str, Any]] = []
        self.events_lock = threading.Lock()
        self.sched = Scheduler(SchedConfig.from_env(), self.events, self.events_lock)
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


def _path_matches(path: str, pattern: str) -> bool:
    """Exact path, or a prefix when the pattern ends with ``*``."""
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return path == pattern


# ----------------------------------------------------------------------------------------------
# model helpers
# ----------------------------------------------------------------------------------------------
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


def model_ref(store: Store, manifest: Manifest) -> ModelRef:
    meta = gguf_meta(store, manifest)
    layer = manifest.layer(MT_MODEL) or {}
    return ModelRef(
        name=manifest.name.display_shortest(),
        digest=manifest.digest,
        weights=int(layer.get("size", 0)),
        meta=meta,
        details=model_details(store, manifest, meta),
    )


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
        self.send_json(200, {"version": STATE.version})

    def h_tags(self) -> None:
        store = STATE.store
        models: list[dict[str, Any]] = []
        for m in store.list_manifests():
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
        if m is None:
            self.send_json(404, {"error": f"model '{raw}' not found"})
            return
        store = STATE.store
        meta = gguf_meta(store, m)
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
        resp: dict[str, Any] = {
            "modelfile": "\n".join(modelfile) + "\n",
            "parameters": format_parameters(params),
            "template": template,
            "details": model_details(store, m, meta),
            "model_info": info,
            "capabilities": ["completion"],
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

    def h_ps(self) -> None:
        models = []
        for r in STATE.sched.running():
            models.append(
                {
                    "name": r.name,
                    "model": r.name,
                    "size": r.size,
                    "digest": r.ref.digest,
                    "details": r.ref.details,
                    "expires_at": rfc3339(r.expires_at),
                    "size_vram": r.size_vram,
                    "context_length": r.est.num_ctx,
                }
            )
        self.send_json(200, {"models": models})

    # -- generate / chat -------------------------------------------------------------------------
    def _schedule(self, req: dict[str, Any]) -> tuple[Manifest, Any, float] | None:
        # keep_alive is decoded while binding the JSON body (api.Duration.UnmarshalJSON), so a bad
        # value is a 400 before the model is even looked up.
        try:
            keep_alive = keep_alive_seconds(req.get("keep_alive"), STATE.sched.cfg.default_keep_alive)
        except DurationError as exc:
            self.send_json(400, {"error": str(exc)})
            return None
        raw = req.get("model") or ""
        if not raw:
            self.send_json(400, {"error": "model is required"})
            return None
        m = self._lookup(raw)
        if m is None:
            self.send_json(404, {"error": f"model '{raw}' not found"})
            return None
        return m, raw, keep_alive

    def _num_ctx(self, req: dict[str, Any], m: Manifest) -> int | None:
        opts = req.get("options") or {}
        if isinstance(opts, dict) and opts.get("num_ctx"):
            return int(opts["num_ctx"])
        params = read_json_blob(STATE.store, m.layer(MT_PARAMS))
        if params.get("num_ctx"):
            return int(params["num_ctx"])
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
        # routes.go GenerateHandler/ChatHandler: empty prompt + keep_alive 0 → unload.
        if empty and req.get("keep_alive") is not None and keep_alive == 0:
            STATE.sched.unload(m.name.display_shortest(), reason="keep_alive 0")
            self.send_json(200, {**base, "done": True, "done_reason": "unload"})
            return
        started = time.monotonic_ns()
        STATE.sched.acquire(model_ref(STATE.store, m), self._num_ctx(req, m), keep_alive)
        load_ns = time.monotonic_ns() - started
        if empty:
            self.send_json(200, {**base, "done": True, "done_reason": "load"})
            return
        answer = "ok"
        stats = {
            "total_duration": time.monotonic_ns() - started,
            "load_duration": load_ns,
            "prompt_eval_count": 1,
            "prompt_eval_duration": 1000,
            "eval_count": 1,
            "eval_duration": 1000,
        }
        final: dict[str, Any] = {**base, "done": True, "done_reason": "stop", **stats}
        if not chat:
            final["context"] = [1, 2, 3]
        stream = req.get("stream")
        if stream is False:
            if chat:
                final["message"] = {"role": "assistant", "content": answer}
            else:
                final["response"] = answer
            self.send_json(200, final)
            return
        piece = dict(base)
        if chat:
            piece["message"] = {"role": "assistant", "content": answer}
        else:
            piece["response"] = answer
        piece["done"] = False
        self.start_stream()
        self.write_chunk(go_json(piece) + b"\n")
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
        """POST /api/embed {model, input: str | [str]} → {model, embeddings: [[float]]} (ref: Ollama's
        batch embed API). Vectors are deterministic bag-of-words hashes, unit length, so texts that
        share words are near each other: enough for a RAG retrieval round trip."""
        req = self._json_body()
        if req is None:
            return
        model = str(req.get("model") or "")
        if self._lookup(model) is None:
            self.send_json(404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        raw = req.get("input")
        texts = [raw] if isinstance(raw, str) else [str(t) for t in (raw or [])]
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
        self.send_json(
            200, {"model": model, "embeddings": vectors, "total_duration": 1000, "load_duration": 0}
        )

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
    before anything was written is an HTTP error, after that a final ``{"error": ...}`` line
    with HTTP 200. Non-streaming: only the last message, errors as HTTP 500."""

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


def _open(url: str, headers: dict[str, str], what: str, method: str = "GET") -> Any:
    req = urllib.request.Request(url, headers=headers, method=method)
    try:
        return urllib.request.urlopen(req, timeout=30)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise PullError(f"{what}: file does not exist") from exc
        if exc.code == 401:
            raise PullError(f"{what}: unauthorized: access denied") from exc
        body = exc.read().decode(errors="replace").strip()
        raise PullError(f"{what}: {exc.code}: {body}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PullError(f'{what}: {method.title()} "{url}": {reason}') from exc


def pull_model(name: Name, insecure: bool, out: Streamer) -> None:
    store = STATE.store
    short = name.display_shortest()
    if name.scheme == "http" and not insecure:
        out.send({"status": "pulling manifest"})
        raise PullError("insecure protocol http")
    old = store.read_manifest(name)
    out.send({"status": "pulling manifest"})
    resp = _open(
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
        if download_blob(name, insecure, layer, out):
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


def download_blob(name: Name, insecure: bool, layer: dict[str, Any], out: Streamer) -> bool:
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
            resp = _open(_registry_url(name, insecure, f"blobs/{digest}"), headers, "download failed")
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
