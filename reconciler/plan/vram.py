"""VRAM a loaded model needs, estimated the way the observed Ollama version counts it.

Ollama has counted memory three ways; `memory_model(version, family)` picks one:

- **classic** (up to 0.11.10, and up to 0.12.10 for models on the llama.cpp runner): the
  up-front estimate of v0.6.8 `llm/memory.go` EstimateGPULayers with `fs/ggml/ggml.go`
  GraphSize. `ollama ps` SIZE = the CUDA minimum (457 MiB, `discover/gpu.go`; Metal 512 MiB)
  + one layer as a buffer (`blk.0` + its KV) + the repeating layers + the output layer (the
  token embedding only when it doubles as the output) + KV + the full-offload graph (+ the
  vision projector). KV is sized for num_ctx × OLLAMA_NUM_PARALLEL tokens; gemma3's
  sliding-window layers hold parallel × window + batch tokens; a GGUF without
  head_count_kv counts one KV head; the graph is per architecture (llama, gemma*, qwen2,
  phi2, stablelm, deepseek2, command-r, chatglm), else heads/kv_heads × KV / 6.
- **engine** (0.11.11 for the Ollama engine's architectures, 0.12.11 for all, up to 0.24.x):
  what the runner really allocates (`ml/device.go` BackendMemory, `llm/server.go`
  TotalSize): the Ollama engine counts every tensor, the token embedding included (kept on
  the CPU); llama.cpp-runner models keep the classic weights, KV and graph but no minimum
  and no buffer layer. The CUDA minimum is still reserved when Ollama lays out layers
  (`llm/server.go` buildLayout) though `ollama ps` no longer shows it.
- **llama-server** (0.30.0 and later, v0.32.15 `llm/llama_server.go`): SIZE is the sum of
  llama.cpp's GPU buffers (model, KV, compute) parsed from its log; the token embedding of
  an untied model stays in a CPU buffer and is not counted. llama.cpp pads the context to
  256 cells per sequence and sizes sliding-window layers by the window
  (`llama-kv-cache-iswa.cpp`: min(ctx, window + ubatch) per sequence), deepseek2 caches one
  latent vector per token (kv_lora_rank + rope dims). The compute buffer grows with the
  vocabulary (the logits of a 512-token batch) and, without flash attention, with
  heads × context. The CUDA context is real VRAM outside those buffers (the 457 MiB
  minimum stands for it), and llama.cpp fits layers leaving LLAMA_ARG_FIT_TARGET (1 GiB)
  free on the device, so a model only loads wholly on the GPU with that much beside it.

Each estimate says what `ollama ps` would show (`reported`) and what the planner must find
free (`total` + `margin`, the margin once per GPU, see `pinned_total`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from reconciler.observed import Architecture, Blob, GpuObs, LoadedObs
from reconciler.plan.actions import VramEstimate
from reconciler.versions import parse_version

MIB = 2**20
CUDA_MINIMUM = 457 * MIB  # discover/gpu.go cudaMinimumMemory (rocm the same)
METAL_MINIMUM = 512 * MIB  # discover/gpu_darwin.go metalMinimumMemory
FIT_TARGET = 1024 * MIB  # llama.cpp common.h fit_params_target, LLAMA_ARG_FIT_TARGET
DEFAULT_NUM_CTX = 4096
NUM_BATCH = 512  # api.DefaultOptions NumBatch: the batch the graph is reserved for
DEFAULT_VOCAB = 128256  # when the vocabulary is unknown (llama3's)
_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 1.0, "q4_0": 0.5}
_OUTPUT_BITS = 6.5625  # llama.cpp quantizes the output tensor of k-quant files to q6_K


class MemoryModel(StrEnum):
    CLASSIC = "classic"
    ENGINE = "engine"
    LLAMA_SERVER = "llama-server"


ENGINE_FROM = (0, 11, 11)  # "llm: Enable new memory estimates by default" (Ollama engine models)
ALL_ENGINE_FROM = (0, 12, 11)  # "llm: Use Ollama engine memory layouts for both old and new engines"
LLAMA_SERVER_FROM = (0, 30, 0)  # "runner: Remove CGO engines, use llama-server exclusively"

# fs/ggml/ggml.go KV.OllamaEngineRequired: the architectures the Ollama engine runs, and the
# first release that listed each (read at every tag from v0.11.0 to v0.24.x).
_ENGINE_SINCE: dict[str, tuple[int, int, int]] = {
    **dict.fromkeys(
        ("gemma3", "gemma3n", "gptoss", "gpt-oss", "llama4", "mistral3", "mllama", "qwen25vl"), (0, 11, 0)
    ),
    "qwen3": (0, 12, 0),
    "qwen3moe": (0, 12, 2),
    **dict.fromkeys(("qwen3vl", "qwen3vlmoe"), (0, 12, 7)),
    **dict.fromkeys(("deepseek2", "deepseekocr"), (0, 13, 0)),
    "nomic-bert": (0, 13, 1),
    "olmo3": (0, 13, 4),
    "bert": (0, 13, 5),
    **dict.fromkeys(("glm4moelite", "lfm2"), (0, 14, 3)),
    **dict.fromkeys(("glmocr", "qwen3next"), (0, 15, 5)),
    **dict.fromkeys(("lfm2moe", "nemotron_h", "nemotron_h_moe", "qwen35", "qwen35moe"), (0, 17, 1)),
    "gemma4": (0, 20, 0),
    **dict.fromkeys(("laguna", "nemotron_h_omni"), (0, 22, 0)),
}
# fs/ggml/ggml.go GGML.FlashAttention (v0.24.0): flash attention on by default for these.
_ENGINE_FLASH_ATTENTION = frozenset(
    {"bert", "gemma3", "gemma4", "gptoss", "gpt-oss", "mistral3", "olmo3", "qwen3", "qwen3moe", "qwen3vl"}
)


def on_ollama_engine(family: str, version: tuple[int, int, int] | None) -> bool:
    """Whether Ollama (before 0.30) runs `family` on its own engine rather than llama.cpp's runner."""
    since = _ENGINE_SINCE.get(family)
    return since is not None and (version is None or version >= since)


def memory_model(version: str | None, family: str = "") -> MemoryModel:
    """How the Ollama at `version` counts a model of architecture `family`; unknown → newest."""
    v = parse_version(version)
    if v is None or v >= LLAMA_SERVER_FROM:
        return MemoryModel.LLAMA_SERVER
    if v >= ALL_ENGINE_FROM or (v >= ENGINE_FROM and on_ollama_engine(family, v)):
        return MemoryModel.ENGINE
    return MemoryModel.CLASSIC


@dataclass(frozen=True)
class Load:
    """How a model is loaded: the request and the server's settings."""

    num_ctx: int
    num_parallel: int = 1
    kv_type: str = "f16"
    flash_attention: bool | None = None  # None: the server's default
    version: tuple[int, int, int] | None = None
    library: str = "cuda"

    @property
    def minimum(self) -> int:
        return METAL_MINIMUM if self.library == "metal" else CUDA_MINIMUM


@dataclass(frozen=True)
class Weights:
    """The model file split the way Ollama and llama.cpp place it."""

    file: int  # the model layer (GGUF) plus projector layers
    token_embd: int  # bytes of token_embd.weight
    output: int  # bytes of the output layer (the token embedding when tied)
    tied: bool
    vision: int  # vision tower bytes (inline v.*/mm.* tensors or a projector layer)

    @property
    def repeating(self) -> int:
        kept_apart = self.token_embd + (0 if self.tied else self.output)
        return max(self.file - self.vision - kept_apart, 0)

    @property
    def on_gpu(self) -> int:
        """Repeating layers + output layer: everything but an untied token embedding."""
        return self.repeating + self.output


def weights_bytes(blobs: tuple[Blob, ...]) -> int:
    weights = sum(b.size for b in blobs if b.is_weights)
    return weights if weights else max((b.size for b in blobs), default=0)


def split_weights(blobs: tuple[Blob, ...], arch: Architecture) -> Weights:
    """Token embedding and output from the tensor sizes when known, else from the vocabulary
    at the file's average bits per weight (output at q6_K) — never more than the file."""
    file = weights_bytes(blobs)
    projector = sum(b.size for b in blobs if b.media_type.endswith(".projector"))
    vision = projector or (arch.vision.weights if arch.vision else 0)
    vocab, embd = arch.vocab_size, arch.embedding_length
    params = arch.parameter_count
    bits = (file - vision) * 8 / params if params else 4.5
    token_embd = arch.token_embd_bytes or int(vocab * embd * bits / 8)
    tied = bool(arch.tied_embeddings)
    output = token_embd if tied else (arch.output_bytes or int(vocab * embd * _OUTPUT_BITS / 8))
    if token_embd + output > file:
        token_embd = output = 0
    return Weights(file=file, token_embd=token_embd, output=output, tied=tied, vision=vision)


def _head_dims(arch: Architecture) -> tuple[int, int]:
    head_dim = arch.embedding_length // arch.head_count if arch.head_count else 0
    return arch.key_length or head_dim, arch.value_length or head_dim


def _supports_flash_attention(arch: Architecture) -> bool:
    """fs/ggml/ggml.go SupportsFlashAttention: not embedding models, equal K/V head sizes."""
    key, value = _head_dims(arch)
    return not arch.embedding_model and key != 0 and key == value


def _flash_attention(arch: Architecture, load: Load, model: MemoryModel) -> bool:
    if load.flash_attention is not None:
        return load.flash_attention and _supports_flash_attention(arch)
    if model is MemoryModel.LLAMA_SERVER:  # Ollama passes --flash-attn auto: on where CUDA has kernels
        return _supports_flash_attention(arch)
    if model is MemoryModel.ENGINE:
        return arch.family in _ENGINE_FLASH_ATTENTION and _supports_flash_attention(arch)
    return False  # classic: OLLAMA_FLASH_ATTENTION defaulted to off


def _bytes_per_element(arch: Architecture, load: Load, model: MemoryModel) -> float:
    """A quantized KV cache only counts with flash attention on (llm/memory.go ~128-136)."""
    if load.kv_type in _BYTES_PER_ELEMENT and _flash_attention(arch, load, model):
        return _BYTES_PER_ELEMENT[load.kv_type]
    return 2.0


def swa_layers(arch: Architecture, model: MemoryModel) -> tuple[bool, ...]:
    """Which layers use sliding-window attention, as this memory model sizes them."""
    n = arch.block_count
    if arch.sliding_window == 0 and arch.family not in ("gemma3",):
        return (False,) * n
    if model is MemoryModel.CLASSIC:  # GraphSize: only gemma3, every 6th layer global
        return tuple(arch.family == "gemma3" and (i + 1) % 6 != 0 for i in range(n))
    if len(arch.sliding_window_pattern) == n:
        return arch.sliding_window_pattern
    if arch.family == "gemma3":  # llama.cpp set_swa_pattern(6)
        return tuple(i % 6 < 5 for i in range(n))
    if arch.family in ("gemma2", "gptoss", "gpt-oss", "cohere2"):  # set_swa_pattern(2)
        return tuple(i % 2 == 0 for i in range(n))
    return (False,) * n


def _pad(n: int, to: int = 256) -> int:
    return -(-n // to) * to


def kv_cache_layers(arch: Architecture, load: Load, model: MemoryModel) -> list[int]:
    """Bytes of KV cache per layer."""
    if arch.head_count == 0 or arch.block_count == 0:
        return []
    parallel = 1 if arch.embedding_model else max(load.num_parallel, 1)
    per_element = _bytes_per_element(arch, load, model)
    key, value = _head_dims(arch)
    window = arch.sliding_window or 1024
    batch = min(load.num_ctx * parallel, NUM_BATCH)
    if model is MemoryModel.CLASSIC or (
        model is MemoryModel.ENGINE and not on_ollama_engine(arch.family, load.version)
    ):
        heads_kv = arch.head_count_kv if arch.head_count_kv_given else 1
        per_token = (key + value) * heads_kv * per_element
        full = load.num_ctx * parallel
        swa = parallel * window + batch
        return [int((swa if s else full) * per_token) for s in swa_layers(arch, model)]
    if arch.family == "deepseek2" and arch.kv_lora_rank:  # one latent K (+ V view) per token
        per_token = (2 * arch.kv_lora_rank + arch.rope_dimension) * per_element
    else:
        per_token = (key + value) * arch.head_count_kv * per_element
    ctx = _pad(load.num_ctx)
    full = ctx * parallel
    swa = parallel * _pad(min(ctx, window + batch))
    return [int((swa if s else full) * per_token) for s in swa_layers(arch, model)]


def classic_graph_bytes(
    arch: Architecture, context: int, kv_total: int, version: tuple[int, int, int] | None
) -> int:
    """fs/ggml/ggml.go GraphSize, full offload (v0.6.8), for `context` = num_ctx × parallel."""
    batch = min(context, NUM_BATCH)
    emb, heads = arch.embedding_length, arch.head_count
    heads_kv = arch.head_count_kv if arch.head_count_kv_given else 1
    vocab = arch.vocab_size or DEFAULT_VOCAB
    key, _ = _head_dims(arch)
    family = arch.family
    logits = 4 * batch * (emb + vocab)
    if family in ("llama", "llama4"):
        attention = 4 * batch * (1 + 4 * emb + context * (1 + heads))
        old = version is not None and version < (0, 3, 10)  # the vocabulary term came in 0.3.10
        return attention if old else max(attention, logits)
    if family in ("gemma", "gemma2", "gemma3"):
        return max(logits, 4 * batch * (2 + context + context * heads + 2 * emb + 2 * key * heads))
    if family == "command-r":
        return max(logits, 4 * batch * (2 + 4 * emb + context * (1 + heads)))
    if family == "qwen2":
        return max(logits, 4 * batch * (1 + 2 * emb + context + context * heads))
    if family == "phi2":
        return max(logits, 4 * batch * (1 + 4 * emb + context + context * heads))
    if family == "stablelm":
        return 4 * batch * (context * (1 + heads) + 3 * emb + 2)
    if family == "deepseek2":
        return max(
            4 * batch * (3 * emb + vocab),
            4 * batch * (3 * emb + 2 + context * (1 + heads_kv) + 2 * key * heads_kv),
        )
    if family == "chatglm":
        return logits
    return (heads // heads_kv if heads_kv else 1) * kv_total // 6  # llm/memory.go: GQA × KV / 6


def classic_partial_graph_bytes(arch: Architecture, context: int, kv_total: int) -> int:
    """fs/ggml/ggml.go GraphSize, partial offload (v0.6.8). llm/memory.go places layers while
    max(partial, full) fits beside them, so a model only loads wholly when both do."""
    batch = min(context, NUM_BATCH)
    emb, heads = arch.embedding_length, arch.head_count
    heads_kv = arch.head_count_kv if arch.head_count_kv_given else 1
    vocab = arch.vocab_size or DEFAULT_VOCAB
    key, _ = _head_dims(arch)
    head_dim = emb // heads if heads else 0
    logits = 4 * batch * (emb + vocab) + emb * vocab * 105 // 128
    family = arch.family
    if family in ("llama", "llama4"):
        attention = (
            4 * batch * (1 + emb + max(context, emb))
            + emb * emb * 9 // 16
            + 4 * context * (batch * heads + head_dim * heads_kv)
        )
        return 4 * batch * emb + max(attention, logits)
    if family in ("gemma", "gemma2", "gemma3"):
        return max(
            4 * emb * batch + emb * vocab * 105 // 128 + 4 * vocab * batch,
            4 * batch * (2 * emb + 1 + 2 * key * heads + context + context * heads)
            + 4 * key * context * 8
            + emb * key * heads * 9 // 16,
        )
    if family == "command-r":
        return max(
            logits,
            4 * batch * (1 + 2 * emb + context * (1 + heads)) + 4 * emb * context + emb * emb * 9 // 16,
        )
    if family == "qwen2":
        return max(logits, 4 * (batch * (1 + 2 * emb + context * (1 + heads)) + emb * (1 + context)))
    if family == "phi2":
        return max(logits + 4 * batch * emb, 4 * batch * (2 + 3 * emb + context + context * heads))
    if family == "stablelm":
        return max(4 * batch * (vocab + 2 * emb), classic_graph_bytes(arch, context, kv_total, None))
    if family == "deepseek2":
        return max(
            4 * batch * (3 * emb + vocab) + emb * vocab * 105 // 128,
            4 * batch * (2 * emb + 1 + 2 * key * heads_kv + context + context * heads_kv)
            + 4 * key * context * heads_kv
            + emb * key * heads_kv * 9 // 16,
        )
    if family == "chatglm":
        return logits
    return (heads // heads_kv if heads_kv else 1) * kv_total // 6


def compute_buffer_bytes(arch: Architecture, load: Load, model: MemoryModel, kv_layers: list[int]) -> int:
    """llama.cpp's (and the Ollama engine's) compute buffer for a 512-token batch: the logits
    (vocabulary), the activations, the attention mask, and without flash attention the
    attention scores of every head over the whole cache."""
    parallel = 1 if arch.embedding_model else max(load.num_parallel, 1)
    batch = min(load.num_ctx * parallel, NUM_BATCH)
    vocab = 0 if arch.embedding_model else (arch.vocab_size or DEFAULT_VOCAB)
    cells = _pad(load.num_ctx) * parallel
    base = 4 * batch * (arch.embedding_length + vocab) + 2 * batch * cells
    if _flash_attention(arch, load, model):
        return base
    return base + 4 * batch * arch.head_count * cells


def vision_graph_bytes(arch: Architecture) -> int:
    """fs/ggml/ggml.go VisionGraphSize for gemma3/mistral3-style towers (v0.6.8)."""
    v = arch.vision
    if v is None or v.patch_size == 0:
        return 0
    patches = (v.image_size // v.patch_size) ** 2
    return 4 * (
        v.image_size**2 * v.num_channels + v.embedding_length * v.patch_size + patches**2 * v.head_count
    )


@dataclass(frozen=True)
class _Parts:
    weights: int
    kv: int
    graph: int
    shown_overhead: int  # counted in `ollama ps` SIZE beyond weights, KV and graph
    hidden_overhead: int  # real or reserved VRAM that `ollama ps` does not show
    margin: int = 0


def _classic(w: Weights, arch: Architecture, load: Load) -> _Parts:
    layers = kv_cache_layers(arch, load, MemoryModel.CLASSIC)
    kv = sum(layers)
    context = load.num_ctx * (1 if arch.embedding_model else max(load.num_parallel, 1))
    graph = classic_graph_bytes(arch, context, kv, load.version)
    blk = w.repeating // max(arch.block_count, 1)
    if load.version is not None and load.version[:2] == (0, 7) and load.version[2] == 0:
        blk = max(blk, w.output, w.token_embd)  # 0.7.0 buffered the largest layer
    buffer = blk + (layers[0] if layers and (load.version is None or load.version >= (0, 2, 0)) else 0)
    partial = graph if load.library == "metal" else classic_partial_graph_bytes(arch, context, kv)
    return _Parts(
        weights=w.on_gpu + w.vision,
        kv=kv,
        graph=graph + vision_graph_bytes(arch),
        shown_overhead=load.minimum + buffer,
        hidden_overhead=max(partial - graph, 0),  # room held for the partial-offload graph
    )


def _engine(w: Weights, arch: Architecture, load: Load) -> _Parts:
    if not on_ollama_engine(
        arch.family, load.version
    ):  # llama.cpp runner: classic estimate, no minimum/buffer
        layers = kv_cache_layers(arch, load, MemoryModel.ENGINE)
        context = load.num_ctx * (1 if arch.embedding_model else max(load.num_parallel, 1))
        graph = classic_graph_bytes(arch, context, sum(layers), load.version)
        return _Parts(w.on_gpu, sum(layers), graph, 0, load.minimum)
    layers = kv_cache_layers(arch, load, MemoryModel.ENGINE)
    graph = compute_buffer_bytes(arch, load, MemoryModel.ENGINE, layers) + vision_graph_bytes(arch)
    return _Parts(w.file, sum(layers), graph, 0, load.minimum)  # every tensor, token embedding too


def _llama_server(w: Weights, arch: Architecture, load: Load) -> _Parts:
    layers = kv_cache_layers(arch, load, MemoryModel.LLAMA_SERVER)
    graph = compute_buffer_bytes(arch, load, MemoryModel.LLAMA_SERVER, layers) + vision_graph_bytes(arch)
    return _Parts(w.on_gpu + w.vision, sum(layers), graph, 0, load.minimum, FIT_TARGET)


_MODELS = {
    MemoryModel.CLASSIC: _classic,
    MemoryModel.ENGINE: _engine,
    MemoryModel.LLAMA_SERVER: _llama_server,
}


def estimate(
    model: str,
    blobs: tuple[Blob, ...],
    arch: Architecture | None,
    *,
    num_ctx: int,
    num_parallel: int = 1,
    kv_type: str = "f16",
    flash_attention: bool | None = None,
    gpu_overhead: int = 0,
    version: str | None = None,
    library: str = "cuda",
) -> VramEstimate:
    """The estimate for `model` loaded with `num_ctx` on the Ollama at `version` (None: newest)."""
    mem = memory_model(version, arch.family if arch else "")
    load = Load(num_ctx, num_parallel, kv_type, flash_attention, parse_version(version), library)
    if arch is None:  # weights only, and what the runtime keeps beside them
        weights = weights_bytes(blobs)
        shown = load.minimum if mem is MemoryModel.CLASSIC else 0
        margin = FIT_TARGET if mem is MemoryModel.LLAMA_SERVER else 0
        return VramEstimate(
            model=model,
            weights=weights,
            kv_cache=0,
            graph=0,
            overhead=load.minimum + gpu_overhead,
            reported=weights + shown,
            margin=margin,
            memory_model=mem.value,
            architecture_known=False,
        )
    parts = _MODELS[mem](split_weights(blobs, arch), arch, load)
    return VramEstimate(
        model=model,
        weights=parts.weights,
        kv_cache=parts.kv,
        graph=parts.graph,
        overhead=parts.shown_overhead + parts.hidden_overhead + gpu_overhead,
        reported=parts.weights + parts.kv + parts.graph + parts.shown_overhead,
        margin=parts.margin,
        memory_model=mem.value,
        architecture_known=True,
    )


def pinned_total(estimates: Iterable[VramEstimate]) -> int:
    """VRAM a set of models needs together: each one's total, plus the largest margin once
    (llama.cpp leaves its fit target free per device, not per model)."""
    listed = list(estimates)
    return sum(e.total for e in listed) + max((e.margin for e in listed), default=0)


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
