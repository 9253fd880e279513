"""What a given Ollama version does where versions differ (pure: no I/O).

The planner takes the server's defaults from here, by the version the server reports
(`/api/version`), or, before it answers, by the image tag the desired state pins; it hands
that version to the VRAM estimate (plan/vram.py), which resolves flash attention, the KV
cache type and how memory is counted for it. Each switch names the first release with the
behaviour, read from ollama/ollama's tags (`git show <tag>:<file>`); the fake Ollama's
version profiles (tests/harness/fake_ollama/versions.py) follow the same releases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.desired.schema import OllamaEnv
from reconciler.versions import Version, image_version, parse_version, show

OLDEST_SUPPORTED: Version = (0, 6, 8)
NEWEST_KNOWN: Version = (0, 32, 15)
DEFAULT_LOAD_TIMEOUT_S = 300.0  # envconfig LoadTimeout: 5m (both 0.6.8 and 0.32.15)
_GIB = 2**30


@dataclass(frozen=True)
class Support:
    supported: bool
    message: str | None = None  # why not, and what to upgrade to


def support(version: str | None) -> Support:
    """Is the server's version one the reconciler knows how to drive?"""
    parsed = parse_version(version)
    if parsed is None:
        return Support(True) if version is None else Support(False, f"Ollama reports version {version!r}")
    if parsed < OLDEST_SUPPORTED:
        return Support(
            False,
            f"Ollama {show(parsed)} is older than {show(OLDEST_SUPPORTED)}, the oldest version the "
            f"reconciler supports: upgrade container.image in ollama.yaml to ollama/ollama:"
            f"{show(NEWEST_KNOWN)} (VRAM figures and defaults are not known for it)",
        )
    return Support(True)


@dataclass(frozen=True)
class ServerDefaults:
    """The behaviour of one Ollama version where releases differ."""

    version: Version

    @property
    def ps_context_length(self) -> bool:
        """`/api/ps` reports `context_length` (api/types.go ProcessModelResponse), from 0.9.7
        (commit 34088db, first tagged v0.9.7-rc0)."""
        return self.version >= (0, 9, 7)

    @property
    def caps_num_ctx(self) -> bool:
        """A num_ctx above the model's trained context is capped to it (llm/server.go
        NewLlamaServer, "requested context size too large for model"), from 0.9.3."""
        return self.version >= (0, 9, 3)

    @property
    def num_parallel_default(self) -> int:
        """`OLLAMA_NUM_PARALLEL` unset: 1 from 0.10.0; before, auto (sched.go
        pickBestFullFitByLibrary tries defaultParallel — 2 in 0.6.7–0.9.x, 4 before — and
        falls back to 1 only when that does not fit): plan with the first try."""
        if self.version >= (0, 10, 0):
            return 1
        return 2 if self.version >= (0, 6, 7) else 4

    @property
    def vram_context_default(self) -> bool:
        """`OLLAMA_CONTEXT_LENGTH` unset: by total VRAM (routes.go Serve) from 0.15.5; 4096 before."""
        return self.version >= (0, 15, 5)

    # -- settings as the server resolves them --------------------------------------------------
    def num_parallel(self, env: OllamaEnv) -> int:
        return env.OLLAMA_NUM_PARALLEL or self.num_parallel_default

    def default_num_ctx(self, env: OllamaEnv, vram_total: int | None) -> int:
        """num_ctx when neither the request nor the model sets it (routes.go modelOptions):
        `OLLAMA_CONTEXT_LENGTH`, else 4096, else (0.15.5+) by total VRAM minus
        `OLLAMA_GPU_OVERHEAD` — 262144 from 47 GiB, 32768 from 23 GiB, 4096 below."""
        if env.OLLAMA_CONTEXT_LENGTH:
            return env.OLLAMA_CONTEXT_LENGTH
        if not self.vram_context_default or not vram_total:
            return 4096
        total = vram_total - (env.OLLAMA_GPU_OVERHEAD or 0)
        if total >= 47 * _GIB:
            return 262144
        if total >= 23 * _GIB:
            return 32768
        return 4096

    def effective_num_ctx(self, asked: int, trained: int) -> int:
        """The num_ctx a runner gets for `asked`, given the model's trained context (0 = unknown)."""
        if self.caps_num_ctx and trained > 0 and asked > trained:
            return trained
        return asked


def defaults_for(version: str | None, image: str | None = None) -> ServerDefaults:
    """The defaults of the server's version; before it answers, of the version the image pins;
    the newest known release when neither says."""
    parsed = parse_version(version) or (image_version(image) if image else None)
    return ServerDefaults(parsed or NEWEST_KNOWN)


def load_timeout_s(env: OllamaEnv) -> float | None:
    """`OLLAMA_LOAD_TIMEOUT` as the server reads it (envconfig LoadTimeout): a Go duration or
    whole seconds, default 5 min; zero or negative = no limit (None). Ollama gives up on a load
    that makes no progress for that long."""
    raw = env.OLLAMA_LOAD_TIMEOUT
    if raw is None:
        return DEFAULT_LOAD_TIMEOUT_S
    seconds = go_duration_s(str(raw)) if isinstance(raw, str) else float(raw)
    if seconds is None:
        return DEFAULT_LOAD_TIMEOUT_S
    return seconds if seconds > 0 else None


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration_s(text: str) -> float | None:
    """Go's time.ParseDuration (`5m`, `1h30m`, `-1m`), falling back to whole seconds, in seconds."""
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return float(int(text))
    m = re.fullmatch(r"(-?)((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)", text)
    if m is None:
        return None
    total = sum(
        float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", m.group(2))
    )
    return -total if m.group(1) else total
