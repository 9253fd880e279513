"""VRAM a loaded model needs, estimated the way Ollama's scheduler does.

total = weights + KV cache + compute graph + runtime overhead, where (sources:
Ollama v0.6.8 `llm/memory.go` EstimateGPULayers and `fs/ggml/ggml.go` GraphSize /
kvCacheBytesPerElement; HEAD `llm/llama_server.go` PredictServerVRAM):

- weights: bytes of the GGUF model layer (plus projector/adapter layers);
- KV cache: num_ctx × num_parallel × block_count × head_count_kv × (key_len + value_len)
  × bytes/element, with key_len = value_len = embedding_length / head_count unless the
  GGUF says otherwise; bytes/element is 2 (f16), 1 (q8_0) or 0.5 (q4_0) — quantized
  types only count with flash attention on, as in Ollama;
- graph (llama-style full offload): 4 × batch × (1 + 4·embedding + ctx·(1 + heads)) bytes,
  batch = min(num_ctx, 512), a conservative upper bound (flash attention needs less);
- overhead: 457 MiB CUDA minimum per runner (`discover/gpu.go`) + OLLAMA_GPU_OVERHEAD.

Worked example (ollama.md §Scheduler): llama3 8B, 32 layers, 8 KV heads, head dim 128:
128 KiB of f16 KV per token, so num_ctx 4096 → 512 MiB.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reconciler.observed import Architecture, Blob, GpuObs, LoadedObs
from reconciler.plan.actions import VramEstimate

CUDA_MINIMUM = 457 * 2**20
DEFAULT_NUM_CTX = 4096
_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 1.0, "q4_0": 0.5}


def weights_bytes(blobs: tuple[Blob, ...]) -> int:
    weights = sum(b.size for b in blobs if b.is_weights)
    return weights if weights else max((b.size for b in blobs), default=0)


def kv_cache_bytes(
    arch: Architecture, num_ctx: int, num_parallel: int, kv_type: str, flash_attention: bool
) -> int:
    if arch.head_count == 0 or arch.block_count == 0:
        return 0
    head_dim = arch.embedding_length // arch.head_count
    key_len = arch.key_length or head_dim
    value_len = arch.value_length or head_dim
    per_element = _BYTES_PER_ELEMENT[kv_type] if flash_attention else 2.0
    elements = num_ctx * num_parallel * arch.block_count * arch.head_count_kv * (key_len + value_len)
    return int(elements * per_element)


def graph_bytes(arch: Architecture, num_ctx: int) -> int:
    batch = min(num_ctx, 512)
    return 4 * batch * (1 + 4 * arch.embedding_length + num_ctx * (1 + arch.head_count))


def estimate(
    model: str,
    blobs: tuple[Blob, ...],
    arch: Architecture | None,
    *,
    num_ctx: int,
    num_parallel: int = 1,
    kv_type: str = "f16",
    flash_attention: bool = False,
    gpu_overhead: int = 0,
) -> VramEstimate:
    kv = graph = 0
    if arch is not None:
        kv = kv_cache_bytes(arch, num_ctx, num_parallel, kv_type, flash_attention)
        graph = graph_bytes(arch, num_ctx)
    return VramEstimate(
        model=model,
        weights=weights_bytes(blobs),
        kv_cache=kv,
        graph=graph,
        overhead=CUDA_MINIMUM + gpu_overhead,
        architecture_known=arch is not None,
    )


@dataclass(frozen=True)
class GpuRoom:
    """GPU memory as NVML sees it now, split between Ollama's loaded models and the rest."""

    total: int
    others: int  # not free and not Ollama's models: desktop, games, training jobs, the driver's reserve
    holders: tuple[tuple[int, int], ...]  # the largest GPU processes NVML lists, (pid, bytes)

    def left_for(self, staying: int) -> int:
        """What Ollama can load into beside `staying` bytes of models that stay loaded
        (Ollama unloads its idle models itself to make room)."""
        return max(self.total - self.others - staying, 0)


def gpu_room(gpus: Sequence[GpuObs], loaded: Iterable[LoadedObs]) -> GpuRoom | None:
    """None when NVML saw no GPU: then only the budget check stands."""
    if not gpus:
        return None
    ollama = sum(m.size_vram for m in loaded)
    others = max(sum(g.total - g.free for g in gpus) - ollama, 0)
    holders = sorted((p for g in gpus for p in g.processes), key=lambda p: -p[1])[:3]
    return GpuRoom(total=sum(g.total for g in gpus), others=others, holders=tuple(holders))
