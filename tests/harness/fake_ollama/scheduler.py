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
* expiry is lazy: expired runners are unloaded at the start of the next request (the real
  scheduler uses timers; observed through the API the result is the same).
* every request is instantaneous, so every runner is idle (refCount 0) when a victim is chosen.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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


@dataclass(frozen=True)
class SchedConfig:
    vram: int = DEFAULT_VRAM
    gpu_overhead: int = 0
    overhead: int = DEFAULT_OVERHEAD
    graph_bytes: int | None = None
    num_parallel: int = 1
    max_loaded: int = 0
    flash_attention: bool = False
    kv_cache_type: str = "f16"
    default_ctx: int = 4096
    default_keep_alive: float = 300.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SchedConfig:
        env = dict(os.environ if environ is None else environ)
        graph = env.get("FAKE_OLLAMA_GRAPH_BYTES", "").strip()
        return cls(
            vram=_env_int(env, "FAKE_OLLAMA_GPU_VRAM", DEFAULT_VRAM),
            gpu_overhead=_env_int(env, "OLLAMA_GPU_OVERHEAD", 0),
            overhead=_env_int(env, "FAKE_OLLAMA_OVERHEAD", DEFAULT_OVERHEAD),
            graph_bytes=int(float(graph)) if graph else None,
            num_parallel=max(1, _env_int(env, "OLLAMA_NUM_PARALLEL", 1)),
            max_loaded=_env_int(env, "OLLAMA_MAX_LOADED_MODELS", 0),
            flash_attention=env.get("OLLAMA_FLASH_ATTENTION", "").strip().lower()
            in ("1", "true", "yes", "on"),
            kv_cache_type=env.get("OLLAMA_KV_CACHE_TYPE", "f16").strip().lower() or "f16",
            default_ctx=_env_int(env, "OLLAMA_CONTEXT_LENGTH", 4096) or 4096,
            default_keep_alive=env_keep_alive(env),
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
    def kv_bytes_per_element(self) -> float:
        if not self.flash_attention:
            return 2.0
        return {"f16": 2.0, "q8_0": 1.0, "q4_0": 0.5}.get(self.kv_cache_type, 2.0)


@dataclass(frozen=True)
class Estimate:
    weights: int
    kv: int
    graph: int
    overhead: int
    num_ctx: int
    block_count: int

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


def effective_ctx(meta: dict[str, Any], num_ctx: int) -> int:
    """Clamp a requested num_ctx to the model's trained context (llm/server.go warns and clamps)."""
    trained = _arch_int(meta, "context_length", 0)
    if trained > 0 and num_ctx > trained:
        return trained
    return num_ctx


def estimate(meta: dict[str, Any], weights: int, num_ctx: int, cfg: SchedConfig) -> Estimate:
    """Memory needed by one model (see the module docstring for the formula)."""
    block_count = max(1, _arch_int(meta, "block_count", 1))
    head_count = max(1, _arch_int(meta, "attention.head_count", 1))
    head_count_kv = _arch_int(meta, "attention.head_count_kv", 0) or head_count
    embedding = _arch_int(meta, "embedding_length", 0)
    head_dim_k = _arch_int(meta, "attention.key_length", 0) or (embedding // head_count)
    head_dim_v = _arch_int(meta, "attention.value_length", 0) or (embedding // head_count)
    ctx = num_ctx * cfg.num_parallel
    kv = int(block_count * head_count_kv * (head_dim_k + head_dim_v) * ctx * cfg.kv_bytes_per_element)
    if cfg.graph_bytes is not None:
        graph = cfg.graph_bytes
    else:
        batch = min(ctx, 512)
        graph = 4 * batch * (1 + 4 * embedding + ctx * (1 + head_count))
    overhead = cfg.overhead if cfg.gpu else 0
    return Estimate(weights, kv, graph, overhead, num_ctx, block_count)


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


@dataclass
class Runner:
    ref: ModelRef
    est: Estimate
    size: int
    size_vram: int
    session_s: float
    expires_at: float  # epoch seconds; math.inf = forever
    loaded_at: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        return self.ref.name


def rfc3339(ts: float) -> str:
    """RFC3339 with microseconds and Z, like Go's time.Time JSON in a UTC container."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Scheduler:
    """Loaded models, keyed by display name. All methods are thread-safe."""

    def __init__(self, cfg: SchedConfig, events: list[dict[str, Any]], events_lock: threading.Lock) -> None:
        self.cfg = cfg
        self._runners: dict[str, Runner] = {}
        self._lock = threading.RLock()
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
            for name, runner in list(self._runners.items()):
                if runner.expires_at <= now:
                    del self._runners[name]
                    self._event("expire", model=name, session_s=_json_seconds(runner.session_s))

    def _victim(self) -> Runner:
        # ByDurationAndName: shortest sessionDuration first, then name (sched.go findRunnerToUnload).
        return sorted(self._runners.values(), key=lambda r: (r.session_s, r.name))[0]

    def _evict(self, victim: Runner, by: str, reason: str) -> None:
        del self._runners[victim.name]
        self._event(
            "evict",
            model=victim.name,
            by=by,
            reason=reason,
            session_s=_json_seconds(victim.session_s),
            size=victim.size,
            size_vram=victim.size_vram,
        )

    def acquire(self, ref: ModelRef, num_ctx: int | None, keep_alive_s: float) -> Runner:
        """Load (or reuse) ``ref`` for a request, then set its keep-alive from this request."""
        with self._lock:
            now = time.time()
            self.expire(now)
            ctx = effective_ctx(ref.meta, num_ctx or self.cfg.default_ctx)
            runner = self._runners.get(ref.name)
            if runner is not None and (runner.est.num_ctx != ctx or runner.ref.digest != ref.digest):
                del self._runners[ref.name]
                self._event("reload", model=ref.name, old_num_ctx=runner.est.num_ctx, new_num_ctx=ctx)
                runner = None
            if runner is None:
                runner = self._load(ref, ctx)
            runner.session_s = keep_alive_s
            runner.expires_at = now + min(keep_alive_s, FOREVER_S)
            return runner

    def _load(self, ref: ModelRef, ctx: int) -> Runner:
        est = estimate(ref.meta, ref.weights, ctx, self.cfg)
        while True:
            if len(self._runners) >= self.cfg.max_runners:
                self._evict(self._victim(), ref.name, "max_loaded_models")
                continue
            if not self.cfg.gpu:
                size_vram = 0
                break
            free = self.cfg.usable_vram - self._used_vram()
            if est.total <= free:
                size_vram = est.total
                break
            if not self._runners:
                size_vram = split_vram(est, self.cfg.usable_vram)
                break
            self._evict(self._victim(), ref.name, "vram")
        runner = Runner(ref=ref, est=est, size=est.total, size_vram=size_vram, session_s=0.0, expires_at=0.0)
        self._runners[ref.name] = runner
        self._event("load", model=ref.name, size=runner.size, size_vram=size_vram, estimate=est.as_dict())
        return runner

    def unload(self, name: str, reason: str = "keep_alive 0") -> bool:
        with self._lock:
            runner = self._runners.pop(name, None)
            if runner is None:
                return False
            self._event("unload", model=name, reason=reason)
            return True

    def unload_digest(self, name: str) -> None:
        self.unload(name, reason="deleted")

    def running(self) -> list[Runner]:
        with self._lock:
            self.expire()
            return sorted(self._runners.values(), key=lambda r: r.expires_at, reverse=True)


def _json_seconds(value: float) -> float | str:
    return "forever" if math.isinf(value) else value
