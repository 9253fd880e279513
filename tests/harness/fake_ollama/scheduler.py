"""Simulated Ollama scheduler: memory estimate, fit, eviction, keep-alive (stdlib only).

Follows /work/shared/reference/ollama.md §4 "Scheduler: fit / eviction" (Ollama server/sched.go
``processPending`` L225-365, ``findRunnerToUnload``; classic estimator llm/memory.go
``EstimateGPULayers`` at v0.6.8) with these documented simplifications:

* memory of one model = weights + KV cache + graph + runtime overhead, where
  - weights  = bytes of the ``application/vnd.ollama.image.model`` layer (the GGUF file);
  - KV       = 2 × block_count × head_count_kv × head_dim × num_ctx × num_parallel × bytes/elt,
               head_dim = ``<arch>.attention.key_length`` or embedding_length / head_count,
               bytes/elt = 2 (f16) unless ``OLLAMA_FLASH_ATTENTION=1``, then from
               ``OLLAMA_KV_CACHE_TYPE`` (f16=2, q8_0=1, q4_0=0.5; v0.6.8 fs/ggml/ggml.go
               ``kvCacheBytesPerElement`` L670-679);
  - graph    = ``FAKE_OLLAMA_GRAPH_BYTES`` if set, else the first term of Ollama's llama
               ``GraphSize`` full-offload formula (fs/ggml/ggml.go L414+):
               4 × b × (1 + 4·embedding_length + ctx·(1 + head_count)), b = min(ctx, 512),
               ctx = num_ctx × num_parallel (the vocabulary term is dropped: no tokenizer here);
  - overhead = ``FAKE_OLLAMA_OVERHEAD`` (default 457 MiB, CUDA ``MinimumMemory`` discover/gpu.go L41),
               only counted when a GPU is configured.
* one GPU of ``FAKE_OLLAMA_GPU_VRAM`` bytes (minus ``OLLAMA_GPU_OVERHEAD``); 0 = CPU only, where
  nothing is evicted for memory (system RAM is not simulated), only for ``OLLAMA_MAX_LOADED_MODELS``.
* a model loads fully when ``size`` fits in the free VRAM beside the loaded ones; otherwise idle
  runners are evicted, shortest session (keep_alive) first, then by name — keep_alive -1 is NOT
  protected, just chosen last (sched.go L337-343) — and the fit is retried. A model alone that
  still does not fit is split: whole layers of (weights+KV)/block_count go to the GPU while
  they fit beside overhead+graph, the rest stay on CPU (``size_vram < size``; 0 layers → 0).
* one runner per weights blob: runners are keyed by the model file (v0.6.8 sched.go
  ``s.loaded[req.model.ModelPath]`` L145/L451; v0.32.15 ``schedulerModelKey`` L110-127), so two
  names on one blob share one loaded copy, listed once under the name that loaded it first;
  a request reuses it unless a runner option (num_ctx, num_batch, num_gpu, ...) differs
  (``needsReload``).
* loading takes time: weights / ``FAKE_OLLAMA_LOAD_RATE`` seconds, during which the runner is
  already listed by ``/api/ps`` (it is in ``s.loaded`` before ``WaitUntilRunning``); loads are
  one at a time (``processPending``) while requests to loaded models go on; a client that
  hangs up aborts the load (llm/server.go ``WaitUntilRunning``: "client connection closed
  before server finished loading, aborting load").
* num_ctx: v0.32.15 caps it at the trained context and ``/api/ps`` reports the capped value;
  v0.6.8 loads what was asked (see versions.py); with ``OLLAMA_CONTEXT_LENGTH`` unset v0.32.15
  picks it by VRAM and does not reload between two automatic requests.
* ``OLLAMA_NUM_PARALLEL`` unset: 1 from v0.10.0; v0.6.8 tries 2, then 1 if the model does not
  fully fit (``pickBestFullFitByLibrary``); embedding models always 1.
* expiry is lazy: expired runners are unloaded at the start of the next request (the real
  scheduler uses timers; observed through the API the result is the same).
* requests take time (perf.py) and hold their runner (``refCount``, sched.go
  useLoadedRunner/finishedReqCh at v0.32.15): a runner in use never expires; a request to a
  loaded runner stops its timer without touching ``expiresAt`` (so ``/api/ps`` keeps showing
  the expiry of the last idle moment, even once it is past); when the last request ends,
  ``expiresAt`` = now + sessionDuration. A runner still on its first request has no
  ``expiresAt`` yet and ``/api/ps`` shows now + sessionDuration (sched.go loadedModels).
  Victims are idle runners first; with none idle, the one with the shortest session is
  marked to unload (sessionDuration 0) and the load waits until its requests end
  (findRunnerToUnload, processPending). keep_alive 0 on a runner in use unloads it once its
  requests end (expireRunner).
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

if __package__:  # imported from the tests on the host
    from .versions import NEWEST, Profile
else:  # the container runs /app/server.py with its siblings on sys.path
    from versions import NEWEST, Profile  # type: ignore[no-redef]

MIB = 1024 * 1024
# Go's time.Duration max (MaxInt64 ns) — keep_alive < 0 means "forever" (api/types.go L1232-1270).
FOREVER_S = (2**63 - 1) / 1e9
DEFAULT_OVERHEAD = 457 * MIB
DEFAULT_VRAM = 8 * 1024 * MIB

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DUR_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    pass


def parse_go_duration(text: str) -> float:
    """Go ``time.ParseDuration`` → seconds. Raises with Go's error text ("missing unit"...)."""
    orig = text
    if text in ("0", "+0", "-0"):
        return 0.0
    sign = 1.0
    if text[:1] in "+-" and text:
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if not text:
        raise DurationError(f'time: invalid duration "{orig}"')
    total = 0.0
    pos = 0
    while pos < len(text):
        m = _DUR_RE.match(text, pos)
        if m is None:
            if re.match(r"(\d+(?:\.\d*)?|\.\d+)$", text[pos:]):
                raise DurationError(f'time: missing unit in duration "{orig}"')
            unit = re.match(r"[\d.]*([^\d.]*)", text[pos:])
            if unit and unit.group(1):
                raise DurationError(f'time: unknown unit "{unit.group(1)}" in duration "{orig}"')
            raise DurationError(f'time: invalid duration "{orig}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def keep_alive_seconds(value: Any, default: float) -> float:
    """An API ``keep_alive`` (api.Duration.UnmarshalJSON): number = seconds, string = Go duration,
    negative = forever (``math.inf``), None = ``default``."""
    if value is None:
        return default
    if isinstance(value, bool):
        raise DurationError("json: cannot unmarshal bool into Go value of type api.Duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = parse_go_duration(value)
    else:
        raise DurationError(f"Unsupported type: '{type(value).__name__}'")
    return math.inf if seconds < 0 else seconds


def env_keep_alive(environ: dict[str, str] | None = None) -> float:
    """``OLLAMA_KEEP_ALIVE`` (envconfig/config.go L126-144): Go duration or integer seconds, default 5m."""
    raw = (environ if environ is not None else os.environ).get("OLLAMA_KEEP_ALIVE", "").strip()
    if not raw:
        return 300.0
    try:
        seconds = parse_go_duration(raw)
    except DurationError:
        try:
            seconds = float(int(raw))
        except ValueError:
            return 300.0
    return math.inf if seconds < 0 else seconds


def _env_int(environ: dict[str, str], key: str, default: int) -> int:
    raw = environ.get(key, "").strip()
    if not raw:
        return default
    try:
        return int(float(raw))
    except ValueError:
        return default


GIB = 1024 * MIB
DEFAULT_LOAD_RATE = 2 * GIB  # bytes/s read into memory: tiny test models load in a blink


Options = tuple[tuple[str, Any], ...]  # runner options other than num_ctx, sorted


class LoadAborted(Exception):
    """The client hung up before the model finished loading; the load was abandoned."""


@dataclass(frozen=True)
class SchedConfig:
    vram: int = DEFAULT_VRAM
    gpu_overhead: int = 0
    overhead: int = DEFAULT_OVERHEAD
    graph_bytes: int | None = None
    num_parallel: int = 0  # 0 = the version's default (see Profile.default_num_parallel)
    max_loaded: int = 0
    flash_attention: bool | None = None  # None = unset (the version's default)
    kv_cache_type: str = "f16"
    context_length: int = 0  # OLLAMA_CONTEXT_LENGTH; 0 = unset
    default_keep_alive: float = 300.0
    load_rate: float = DEFAULT_LOAD_RATE
    profile: Profile = field(default_factory=lambda: Profile(NEWEST))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SchedConfig:
        env = dict(os.environ if environ is None else environ)
        graph = env.get("FAKE_OLLAMA_GRAPH_BYTES", "").strip()
        fa = env.get("OLLAMA_FLASH_ATTENTION", "").strip().lower()
        rate = env.get("FAKE_OLLAMA_LOAD_RATE", "").strip()
        return cls(
            vram=_env_int(env, "FAKE_OLLAMA_GPU_VRAM", DEFAULT_VRAM),
            gpu_overhead=_env_int(env, "OLLAMA_GPU_OVERHEAD", 0),
            overhead=_env_int(env, "FAKE_OLLAMA_OVERHEAD", DEFAULT_OVERHEAD),
            graph_bytes=int(float(graph)) if graph else None,
            num_parallel=max(0, _env_int(env, "OLLAMA_NUM_PARALLEL", 0)),
            max_loaded=_env_int(env, "OLLAMA_MAX_LOADED_MODELS", 0),
            flash_attention=(fa in ("1", "true", "yes", "on")) if fa else None,
            kv_cache_type=env.get("OLLAMA_KV_CACHE_TYPE", "f16").strip().lower() or "f16",
            context_length=max(0, _env_int(env, "OLLAMA_CONTEXT_LENGTH", 0)),
            default_keep_alive=env_keep_alive(env),
            load_rate=float(rate) if rate else DEFAULT_LOAD_RATE,
            profile=Profile(env.get("FAKE_OLLAMA_VERSION", "").strip() or NEWEST),
        )

    @property
    def gpu(self) -> bool:
        return self.vram > 0

    @property
    def usable_vram(self) -> int:
        return max(0, self.vram - self.gpu_overhead)

    @property
    def max_runners(self) -> int:
        # sched.go L86 defaultModelsPerGPU = 3; 0 = auto = 3 × #GPUs (3 for CPU).
        return self.max_loaded if self.max_loaded > 0 else 3

    @property
    def default_ctx(self) -> int:
        """num_ctx when neither the request nor the model sets it (routes.go modelOptions:
        ``s.defaultNumCtx``): OLLAMA_CONTEXT_LENGTH, else 4096, else (v0.15.5+) by VRAM tier
        (routes.go Serve: total VRAM minus OLLAMA_GPU_OVERHEAD ≥ 47 GiB → 262144, ≥ 23 GiB
        → 32768, else 4096)."""
        if self.context_length:
            return self.context_length
        if not self.profile.vram_default_ctx:
            return 4096
        total = self.usable_vram
        if total >= 47 * GIB:
            return 262144
        if total >= 23 * GIB:
            return 32768
        return 4096

    @property
    def auto_ctx(self) -> bool:
        """v0.32.15 routes.go usesAutomaticNumCtx: OLLAMA_CONTEXT_LENGTH unset (0)."""
        return self.profile.vram_default_ctx and not self.context_length

    def parallel_to_try(self, embedding: bool) -> list[int]:
        if embedding:  # sched.go: "Embedding models should always be loaded with parallel=1"
            return [1]
        if self.num_parallel:
            return [self.num_parallel]
        if self.profile.default_num_parallel:
            return [self.profile.default_num_parallel]
        return [self.profile.auto_parallel, 1]

    def kv_bytes_per_element(self, meta: dict[str, Any] | None = None) -> float:
        """A quantized KV cache needs flash attention. v0.6.8 (llm/memory.go L129-136,
        fs/ggml/ggml.go SupportsFlashAttention): flash attention switched on, a model that is
        not an embedding model and whose key and value head sizes are equal. v0.32.15: the
        cache type is passed to llama-server whenever flash attention is not switched off
        (auto = on where supported; the fake's GPU supports it)."""
        meta = meta or {}
        if is_embedding(meta):
            return 2.0
        if self.profile.flash_attention_auto:
            enabled = self.flash_attention is not False
        else:
            enabled = bool(self.flash_attention) and _arch_int(meta, "attention.key_length", 0) == _arch_int(
                meta, "attention.value_length", 0
            )
        if not enabled:
            return 2.0
        return {"f16": 2.0, "q8_0": 1.0, "q4_0": 0.5}.get(self.kv_cache_type, 2.0)


def is_embedding(meta: dict[str, Any]) -> bool:
    """images.go Capabilities: ``<arch>.pooling_type`` in the GGUF makes an embedding model."""
    arch = str(meta.get("general.architecture", ""))
    return bool(arch) and f"{arch}.pooling_type" in meta


@dataclass(frozen=True)
class Estimate:
    weights: int
    kv: int
    graph: int
    overhead: int
    num_ctx: int
    block_count: int
    num_parallel: int = 1

    @property
    def total(self) -> int:
        return self.weights + self.kv + self.graph + self.overhead

    def as_dict(self) -> dict[str, int]:
        return {
            "weights": self.weights,
            "kv": self.kv,
            "graph": self.graph,
            "overhead": self.overhead,
            "total": self.total,
            "num_ctx": self.num_ctx,
            "num_parallel": self.num_parallel,
        }


def _arch_int(meta: dict[str, Any], key: str, default: int = 0) -> int:
    arch = str(meta.get("general.architecture", "llama"))
    value = meta.get(f"{arch}.{key}", default)
    if isinstance(value, list):  # per-layer arrays (e.g. head_count_kv) → take the max
        value = max(value) if value else default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def trained_ctx(meta: dict[str, Any]) -> int:
    return _arch_int(meta, "context_length", 0)


def effective_ctx(meta: dict[str, Any], num_ctx: int, cfg: SchedConfig | None = None) -> int:
    """The num_ctx a runner gets: capped at the trained context from v0.9.3 (llm/server.go
    NewLlamaServer), as asked before."""
    profile = cfg.profile if cfg is not None else Profile(NEWEST)
    trained = trained_ctx(meta)
    if profile.caps_num_ctx and trained > 0 and num_ctx > trained:
        return trained
    return num_ctx


def estimate(
    meta: dict[str, Any], weights: int, num_ctx: int, cfg: SchedConfig, num_parallel: int | None = None
) -> Estimate:
    """Memory needed by one model (see the module docstring for the formula)."""
    parallel = num_parallel or cfg.parallel_to_try(is_embedding(meta))[-1]
    block_count = max(1, _arch_int(meta, "block_count", 1))
    head_count = max(1, _arch_int(meta, "attention.head_count", 1))
    head_count_kv = _arch_int(meta, "attention.head_count_kv", 0) or head_count
    embedding = _arch_int(meta, "embedding_length", 0)
    head_dim_k = _arch_int(meta, "attention.key_length", 0) or (embedding // head_count)
    head_dim_v = _arch_int(meta, "attention.value_length", 0) or (embedding // head_count)
    ctx = num_ctx * parallel
    kv = int(block_count * head_count_kv * (head_dim_k + head_dim_v) * ctx * cfg.kv_bytes_per_element(meta))
    if cfg.graph_bytes is not None:
        graph = cfg.graph_bytes
    else:
        batch = min(ctx, 512)
        graph = 4 * batch * (1 + 4 * embedding + ctx * (1 + head_count))
    overhead = cfg.overhead if cfg.gpu else 0
    return Estimate(weights, kv, graph, overhead, num_ctx, block_count, parallel)


def split_vram(est: Estimate, available: int) -> int:
    """VRAM used when a model that does not fit is split layer by layer (0 = all on CPU)."""
    per_layer = (est.weights + est.kv) / est.block_count
    room = available - est.overhead - est.graph
    if room <= 0 or per_layer <= 0:
        return 0
    layers = min(est.block_count, int(room // per_layer))
    if layers <= 0:
        return 0
    if layers >= est.block_count:
        return est.total
    return int(est.overhead + est.graph + layers * per_layer)


@dataclass
class ModelRef:
    """What the scheduler needs to know about a model on disk."""

    name: str  # display name, e.g. "tiny:v1" or "registry.test:5000/library/tiny:v1"
    digest: str  # manifest sha256 hex
    weights: int
    meta: dict[str, Any]
    details: dict[str, Any]
    weights_digest: str = ""  # the model layer's digest: what runners are keyed by

    @property
    def key(self) -> str:
        return self.weights_digest or f"name:{self.name}"


@dataclass
class Runner:
    ref: ModelRef
    est: Estimate
    size: int
    size_vram: int
    session_s: float
    expires_at: float  # epoch seconds; math.inf = forever
    asked_ctx: int = 0  # num_ctx asked for (before the cap)
    ctx_auto: bool = False
    other_opts: Options = ()
    loading: bool = False
    loaded_at: float = field(default_factory=time.time)
    ref_count: int = 0  # requests holding it (sched.go runnerRef.refCount)
    expiry_set: bool = False  # False until its first request ends (expiresAt zero in sched.go)
    retiring: bool = False  # evicted or reloaded: leaves once its requests end
    cached: list[int] = field(default_factory=list)  # the slot's last prompt (perf.py tokens)

    def shown_expiry(self, now: float) -> float:
        """``expires_at`` as /api/ps shows it (sched.go loadedModels: a zero expiresAt is
        estimated as now + sessionDuration)."""
        return self.expires_at if self.expiry_set else now + min(self.session_s, FOREVER_S)

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def context_length(self) -> int:
        return self.est.num_ctx


def rfc3339(ts: float) -> str:
    """RFC3339 with microseconds and Z, like Go's time.Time JSON in a UTC container."""
    return datetime.fromtimestamp(min(ts, 253402300799.0), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Scheduler:
    """Loaded runners, keyed by the weights blob. All methods are thread-safe."""

    def __init__(self, cfg: SchedConfig, events: list[dict[str, Any]], events_lock: threading.Lock) -> None:
        self.cfg = cfg
        self._runners: dict[str, Runner] = {}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # a request ended or a runner went away
        self._load_lock = threading.Lock()  # processPending: one load at a time
        self._events = events
        self._events_lock = events_lock

    def _event(self, kind: str, **fields: Any) -> None:
        with self._events_lock:
            self._events.append({"time": rfc3339(time.time()), "type": kind, **fields})

    def _used_vram(self) -> int:
        return sum(r.size_vram for r in self._runners.values())

    def expire(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            for key, runner in list(self._runners.items()):
                idle = not runner.loading and runner.ref_count == 0 and runner.expiry_set
                if idle and runner.expires_at <= now:
                    del self._runners[key]
                    self._event("expire", model=runner.name, session_s=_json_seconds(runner.session_s))

    def _victim(self) -> Runner | None:
        """sched.go findRunnerToUnload: sorted ByDurationAndName (shortest sessionDuration
        first, then name), an idle one first, else the first in that order."""
        ordered = sorted(
            (r for r in self._runners.values() if not r.loading), key=lambda r: (r.session_s, r.name)
        )
        idle = [r for r in ordered if r.ref_count == 0]
        return (idle or ordered)[0] if ordered else None

    def _evict(self, victim: Runner, by: str, reason: str) -> None:
        busy, session = victim.ref_count > 0, victim.session_s
        self._retire(victim)
        self._event(
            "evict",
            model=victim.name,
            by=by,
            reason=reason,
            session_s=_json_seconds(session),
            size=victim.size,
            size_vram=victim.size_vram,
            waited_for_requests=busy,
        )

    def _needs_reload(self, runner: Runner, asked: int, auto: bool, other: Options) -> bool:
        """sched.go needsReload: the runner options differ. v0.32.15 compares the asked num_ctx
        capped at the trained context, and two automatic contexts are equal."""
        if runner.other_opts != other:
            return True
        if self.cfg.profile.caps_num_ctx:
            if runner.ctx_auto and auto:
                return False
            return runner.est.num_ctx != effective_ctx(runner.ref.meta, asked, self.cfg)
        return runner.asked_ctx != asked

    def lookup(self, ref: ModelRef) -> Runner | None:
        with self._lock:
            return self._runners.get(ref.key)

    def acquire(
        self,
        ref: ModelRef,
        num_ctx: int | None,
        keep_alive_s: float | None,
        other: Options = (),
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Runner:
        """Load (or reuse) the runner of ``ref``'s weights for a request, then set its
        keep-alive from this request. Raises LoadAborted when ``cancelled()`` turns true
        while the model is loading. ``keep_alive_s`` None: the request did not say, so a new
        runner gets OLLAMA_KEEP_ALIVE and a loaded one keeps its own (sched.go
        useLoadedRunner changes sessionDuration only when the request sets it)."""
        asked = num_ctx or self.cfg.default_ctx
        auto = num_ctx is None and self.cfg.auto_ctx
        with self._lock:
            self.expire()
            runner = self._runners.get(ref.key)
            reuse = runner is not None and not runner.loading
            if runner is not None and reuse and not self._needs_reload(runner, asked, auto, other):
                return self._touch(runner, keep_alive_s)
        with self._load_lock:
            with self._lock:
                self.expire()
                runner = self._runners.get(ref.key)
                if runner is not None and self._needs_reload(runner, asked, auto, other):
                    self._event(
                        "reload", model=runner.name, old_num_ctx=runner.est.num_ctx,
                        new_num_ctx=effective_ctx(ref.meta, asked, self.cfg),
                    )  # fmt: skip
                    self._retire(runner)
                    runner = None
                if runner is None:
                    runner = self._place(ref, asked, auto, other, keep_alive_s)
            if runner.loading:
                self._wait_loaded(runner, cancelled)
            with self._lock:  # still holding the load lock: no other load can evict it first
                return self._touch(runner, keep_alive_s)

    def _retire(self, runner: Runner) -> None:
        """Take a runner out of service: at once when idle, else once its requests end
        (sessionDuration 0, as processPending does before a reload or an eviction)."""
        if runner.ref_count > 0:
            runner.session_s, runner.retiring = 0, True
            while self._runners.get(runner.ref.key) is runner:
                self._changed.wait(timeout=1.0)
            return
        del self._runners[runner.ref.key]
        self._changed.notify_all()

    def _touch(self, runner: Runner, keep_alive_s: float | None) -> Runner:
        """sched.go useLoadedRunner: refCount++, the timer stopped (expiresAt left as it is),
        sessionDuration from the request when it sets one."""
        if keep_alive_s is not None:
            runner.session_s = keep_alive_s
        runner.ref_count += 1
        return runner

    def release(self, runner: Runner) -> None:
        """The request ended (sched.go finishedReqCh): with no request left the runner expires
        at now + sessionDuration, or at once when that is 0."""
        with self._lock:
            runner.ref_count = max(runner.ref_count - 1, 0)
            if runner.ref_count == 0 and self._runners.get(runner.ref.key) is runner:
                if runner.session_s <= 0:
                    del self._runners[runner.ref.key]
                    if not runner.retiring:  # an eviction or a reload reports itself
                        name = runner.name
                        self._event("unload", model=name, reason="keep_alive 0", requested_as=name)
                else:
                    runner.expires_at = time.time() + min(runner.session_s, FOREVER_S)
                    runner.expiry_set = True
            self._changed.notify_all()

    def _wait_loaded(self, runner: Runner, cancelled: Callable[[], bool]) -> None:
        """llm/server.go WaitUntilRunning: the load takes weights / load_rate seconds and is
        abandoned when the client hangs up."""
        began = time.monotonic()
        duration = runner.ref.weights / self.cfg.load_rate if self.cfg.load_rate > 0 else 0.0
        while time.monotonic() - began < duration:
            if cancelled():
                with self._lock:
                    if self._runners.get(runner.ref.key) is runner:
                        del self._runners[runner.ref.key]
                self._event("load_aborted", model=runner.name, after_s=round(time.monotonic() - began, 3))
                raise LoadAborted(runner.name)
            time.sleep(min(0.05, max(0.0, duration - (time.monotonic() - began))))
        with self._lock:
            runner.loading = False
            runner.loaded_at = time.time()
        self._event(
            "load", model=runner.name, size=runner.size, size_vram=runner.size_vram,
            estimate=runner.est.as_dict(), load_s=round(time.monotonic() - began, 3),
        )  # fmt: skip

    def _place(
        self, ref: ModelRef, asked: int, auto: bool, other: Options, keep_alive_s: float | None
    ) -> Runner:
        """Evict until the model fits (or split it when alone), then list it as loading."""
        session = self.cfg.default_keep_alive if keep_alive_s is None else keep_alive_s
        ctx = effective_ctx(ref.meta, asked, self.cfg)
        tries = self.cfg.parallel_to_try(is_embedding(ref.meta))
        while True:
            if len(self._runners) >= self.cfg.max_runners:
                victim = self._victim()
                if victim is None:
                    break
                self._evict(victim, ref.name, "max_loaded_models")
                continue
            if not self.cfg.gpu:
                est = estimate(ref.meta, ref.weights, ctx, self.cfg, tries[0])
                size_vram = 0
                break
            free = self.cfg.usable_vram - self._used_vram()
            options = [estimate(ref.meta, ref.weights, ctx, self.cfg, p) for p in tries]
            fits = [e for e in options if e.total <= free]
            if fits:
                est, size_vram = fits[0], fits[0].total
                break
            victim = self._victim()
            if victim is None:
                est = estimate(ref.meta, ref.weights, ctx, self.cfg, tries[-1])
                size_vram = split_vram(est, max(0, free))
                break
            self._evict(victim, ref.name, "vram")
        now = time.time()
        runner = Runner(
            ref=ref, est=est, size=est.total, size_vram=size_vram, session_s=session,
            expires_at=now + min(session, FOREVER_S), asked_ctx=asked, ctx_auto=auto,
            other_opts=other, loading=True,
        )  # fmt: skip
        self._runners[ref.key] = runner
        return runner

    def unload(self, ref: ModelRef, reason: str = "keep_alive 0") -> bool:
        """sched.go expireRunner: keyed by the model file, so it unloads the shared runner; one
        in use is unloaded when its requests end."""
        with self._lock:
            runner = self._runners.get(ref.key)
            if runner is None or runner.loading:
                return False
            if runner.ref_count > 0:
                runner.session_s = 0
                return True
            del self._runners[ref.key]
            self._changed.notify_all()
            self._event("unload", model=runner.name, reason=reason, requested_as=ref.name)
            return True

    def running(self) -> list[Runner]:
        now = time.time()
        with self._lock:
            self.expire(now)
            return sorted(self._runners.values(), key=lambda r: r.shown_expiry(now), reverse=True)


def _json_seconds(value: float) -> float | str:
    return "forever" if math.isinf(value) else value
