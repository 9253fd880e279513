"""The fake Ollama's performance model: how long prompts, tokens and loads take (stdlib only).

Real Ollama reports what its runner measured (api/types.go ``Metrics`` at v0.32.15:
``total_duration``, ``load_duration``, ``prompt_eval_count``/``_duration``,
``eval_count``/``_duration``, nanoseconds). routes.go GenerateHandler/ChatHandler fill
``load_duration`` = checkpointLoaded − checkpointStart (scheduling and loading) and
``total_duration`` = time since checkpointStart; the other four come from the runner:
v0.32.15 llm/llama_server.go reads llama-server's ``timings`` (``prompt_eval_count`` =
cache_n + prompt_n — the cached prefix counts, ``prompt_eval_duration`` = prompt_ms, which
covers only the prompt_n tokens evaluated; ``eval_count`` = predicted_n, ``eval_duration`` =
predicted_ms); v0.6.8 runner/llamarunner/runner.go counts every prompt input the same way
(``numPromptInputs`` is set before the cache prefix is skipped) and times prompt processing
from the sequence's start to its first generated token.

The fake computes those durations from a model of the hardware, documented here and
configured by the environment, and sleeps until each is due, so a client timing the stream
sees them too:

* **Generation is bound by memory bandwidth.** Each token reads the weights once (a mixture
  of experts only the experts it uses: ``expert_used_count / expert_count`` of them) and the
  KV cache of every position so far. Bytes on the GPU move at ``FAKE_OLLAMA_GPU_BANDWIDTH``,
  bytes of layers left on the CPU (``size_vram < size``, or no GPU) at
  ``FAKE_OLLAMA_CPU_BANDWIDTH``; the share on the GPU is ``size_vram / size``.
  seconds per token = bytes on GPU / GPU bandwidth + bytes on CPU / CPU bandwidth.
* **Prompt evaluation is bound by compute.** 2 × parameters FLOPs per prompt token plus the
  attention: 4 × layers × heads × head_dim FLOPs per (query, key) pair, causal, so n new
  tokens after c cached ones cost n × (c + n/2) pairs. GPU FLOP/s ``FAKE_OLLAMA_GPU_FLOPS``,
  CPU ``FAKE_OLLAMA_CPU_FLOPS``, split like the bandwidth.
* **Loading** reads the weights from disk at ``FAKE_OLLAMA_LOAD_RATE`` bytes/s (the
  scheduler's load latency since issue 11: ``scheduler.Scheduler._wait_loaded``).
* **Tokens** are 4 bytes of UTF-8 text each (llama3's tokenizer averages about 4 characters
  of English per token); a token's id is its 4 bytes, so two prompts share a cached prefix
  exactly as far as their texts agree. llama-server keeps the last prompt of its slot:
  a prompt that starts like the previous one evaluates only the rest, and at least its last
  token (llama.cpp re-evaluates one token to get logits).
* **Replies** are ``num_predict`` tokens when the request sets it (``done_reason: length``),
  else ``FAKE_OLLAMA_REPLY_TOKENS`` (default 64, ``done_reason: stop``), never past num_ctx;
  a prompt longer than num_ctx − 1 tokens is cut to that (llm/llama_server.go
  completionPromptForRequest truncates, keeping num_keep tokens at the front).

Defaults are an RTX 3070 (448 GB/s GDDR6, ~40 TFLOP/s of fp16 tensor throughput llama.cpp
reaches) in a desktop with dual-channel DDR4-3200 (51.2 GB/s, ~1 TFLOP/s on 16 cores).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_GPU_BANDWIDTH = 448e9
DEFAULT_CPU_BANDWIDTH = 51.2e9
DEFAULT_GPU_FLOPS = 40e12
DEFAULT_CPU_FLOPS = 1e12
DEFAULT_REPLY_TOKENS = 64
TOKEN_BYTES = 4


def _env_float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if value > 0 else default


@dataclass(frozen=True)
class Hardware:
    gpu_bandwidth: float = DEFAULT_GPU_BANDWIDTH  # bytes/s
    cpu_bandwidth: float = DEFAULT_CPU_BANDWIDTH
    gpu_flops: float = DEFAULT_GPU_FLOPS  # FLOP/s
    cpu_flops: float = DEFAULT_CPU_FLOPS
    reply_tokens: int = DEFAULT_REPLY_TOKENS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Hardware:
        env = os.environ if environ is None else environ
        return cls(
            gpu_bandwidth=_env_float(env, "FAKE_OLLAMA_GPU_BANDWIDTH", DEFAULT_GPU_BANDWIDTH),
            cpu_bandwidth=_env_float(env, "FAKE_OLLAMA_CPU_BANDWIDTH", DEFAULT_CPU_BANDWIDTH),
            gpu_flops=_env_float(env, "FAKE_OLLAMA_GPU_FLOPS", DEFAULT_GPU_FLOPS),
            cpu_flops=_env_float(env, "FAKE_OLLAMA_CPU_FLOPS", DEFAULT_CPU_FLOPS),
            reply_tokens=int(_env_float(env, "FAKE_OLLAMA_REPLY_TOKENS", DEFAULT_REPLY_TOKENS)),
        )

    def describe(self) -> str:
        """What `/api/version` says about the simulation (see server.py h_version)."""
        return (
            "fake-ollama performance model (tests/harness/fake_ollama/perf.py): "
            f"GPU {self.gpu_bandwidth / 1e9:g} GB/s, CPU {self.cpu_bandwidth / 1e9:g} GB/s, "
            f"GPU {self.gpu_flops / 1e12:g} TFLOP/s, CPU {self.cpu_flops / 1e12:g} TFLOP/s"
        )


@dataclass(frozen=True)
class Shape:
    """What the model costs per token, from its GGUF and where the scheduler placed it."""

    weights: int  # bytes of the weights file
    params: int  # parameters (general.parameter_count, else weights × 2: ~4 bits each)
    kv_per_position: float  # KV cache bytes per context position, all layers
    attention_flops: float  # FLOPs per (query, key) pair: 4 × layers × heads × head_dim
    gpu_share: float  # size_vram / size: the share of layers on the GPU
    active: float = 1.0  # experts used / experts (1 for a dense model)


def _arch_int(meta: Mapping[str, object], key: str) -> int:
    arch = str(meta.get("general.architecture", ""))
    value = meta.get(f"{arch}.{key}", 0)
    if isinstance(value, list):
        value = max((v for v in value if isinstance(v, int)), default=0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def shape_of(
    meta: Mapping[str, object], weights: int, kv_bytes: int, kv_positions: int, gpu_share: float
) -> Shape:
    params = meta.get("general.parameter_count")
    count = params if isinstance(params, int) and params > 0 else weights * 2
    blocks = max(_arch_int(meta, "block_count"), 1)
    heads = max(_arch_int(meta, "attention.head_count"), 1)
    head_dim = _arch_int(meta, "attention.key_length") or _arch_int(meta, "embedding_length") // heads
    experts, used = _arch_int(meta, "expert_count"), _arch_int(meta, "expert_used_count")
    return Shape(
        weights=weights,
        params=count,
        kv_per_position=kv_bytes / max(kv_positions, 1),
        attention_flops=4.0 * blocks * heads * head_dim,
        gpu_share=min(max(gpu_share, 0.0), 1.0),
        active=used / experts if experts and used else 1.0,
    )


def prompt_seconds(shape: Shape, hw: Hardware, new: int, cached: int) -> float:
    """Time to evaluate `new` prompt tokens after `cached` ones already in the KV cache."""
    if new <= 0:
        return 0.0
    flops = 2.0 * shape.params * shape.active * new + shape.attention_flops * new * (cached + new / 2)
    g = shape.gpu_share
    return flops * (g / hw.gpu_flops + (1 - g) / hw.cpu_flops)


def token_seconds(shape: Shape, hw: Hardware, position: int) -> float:
    """Time to generate one token with `position` tokens already in the context."""
    moved = shape.weights * shape.active + shape.kv_per_position * position
    g = shape.gpu_share
    return moved * (g / hw.gpu_bandwidth + (1 - g) / hw.cpu_bandwidth)


def tokenize(text: str) -> list[int]:
    """4 bytes of UTF-8 per token; the id is those bytes (so equal prefixes share tokens)."""
    raw = text.encode()
    return [int.from_bytes(raw[i : i + TOKEN_BYTES], "big") for i in range(0, len(raw), TOKEN_BYTES)]


def cached_prefix(previous: Sequence[int], prompt: Sequence[int]) -> int:
    """Tokens of `prompt` the slot's cache already holds: the common prefix, but never the
    whole prompt (llama.cpp re-evaluates the last token to get its logits)."""
    common = 0
    for a, b in zip(previous, prompt, strict=False):
        if a != b:
            break
        common += 1
    return min(common, max(len(prompt) - 1, 0))


def reply_length(hw: Hardware, num_predict: int | None, prompt_tokens: int, num_ctx: int) -> tuple[int, str]:
    """(tokens to generate, done_reason)."""
    room = max(num_ctx - prompt_tokens, 1)
    if num_predict is not None and num_predict > 0:
        return min(num_predict, room), "length"
    return min(hw.reply_tokens, room), "stop"


def truncate(prompt: list[int], num_ctx: int) -> list[int]:
    """A prompt longer than num_ctx − 1 tokens keeps its last num_ctx − 1 (num_keep 0)."""
    limit = max(num_ctx - 1, 1)
    return prompt if len(prompt) <= limit else prompt[len(prompt) - limit :]


WORDS = ("the", "model", "answers", "with", "tokens", "at", "a", "steady", "rate", "of", "bytes", "moved")


def piece(index: int) -> str:
    return WORDS[index % len(WORDS)] + " "


def ns(seconds: float) -> int:
    return max(math.ceil(seconds * 1e9), 1)
