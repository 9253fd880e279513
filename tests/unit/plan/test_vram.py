"""Each term of the VRAM estimate, per Ollama memory model (sources in reconciler/plan/vram.py)."""

from __future__ import annotations

import pytest

from reconciler.observed import Architecture, Blob, VisionTower
from reconciler.plan import vram
from reconciler.plan.actions import VramEstimate
from reconciler.plan.vram import MemoryModel, memory_model
from tests.architectures import LLAMA3_8B, LLAMA3_VOCAB

MiB = 2**20
GiB = 2**30
CLASSIC, ENGINE, NEWEST = "0.6.8", "0.13.0", "0.32.15"

LLAMA3 = LLAMA3_8B.model_copy(
    update={
        "vocab_size": LLAMA3_VOCAB,
        "tied_embeddings": False,
        "token_embd_bytes": 295_501_824,
        "output_bytes": 430_981_120,
    }
)
FILE = 4_661_224_676  # llama3:8b Q4_0
WEIGHTS = (Blob(digest="sha256:w", size=FILE, media_type="application/vnd.ollama.image.model"),)


def est(arch: Architecture = LLAMA3, version: str | None = NEWEST, **kw: object) -> VramEstimate:
    opts: dict[str, object] = {"num_ctx": 4096} | kw
    return vram.estimate("m", WEIGHTS, arch, version=version, **opts)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("version", "family", "model"),
    [
        ("0.1.38", "llama", MemoryModel.CLASSIC),
        ("0.6.8", "gemma3", MemoryModel.CLASSIC),
        ("0.11.10", "gemma3", MemoryModel.CLASSIC),
        ("0.11.11", "gemma3", MemoryModel.ENGINE),  # new estimates on by default for the Ollama engine
        ("0.11.11", "llama", MemoryModel.CLASSIC),  # the llama.cpp runner kept the old estimate
        ("0.12.6", "deepseek2", MemoryModel.CLASSIC),  # deepseek2 joined the Ollama engine in 0.13.0
        ("0.12.11", "llama", MemoryModel.ENGINE),
        ("0.24.0", "qwen3", MemoryModel.ENGINE),
        ("0.30.0", "llama", MemoryModel.LLAMA_SERVER),
        ("0.30.0-rc21", "llama", MemoryModel.LLAMA_SERVER),
        ("0.32.15", "gemma3", MemoryModel.LLAMA_SERVER),
        ("v0.5.9-3-g2629a7a", "llama", MemoryModel.CLASSIC),
        (None, "llama", MemoryModel.LLAMA_SERVER),  # unknown: the newest
        ("not-a-version", "llama", MemoryModel.LLAMA_SERVER),
    ],
)
def test_the_memory_model_follows_the_observed_version(
    version: str | None, family: str, model: MemoryModel
) -> None:
    assert memory_model(version, family) is model


def test_kv_cache_grows_with_parallel_in_every_model() -> None:
    for version in (CLASSIC, ENGINE, NEWEST):
        one, four = est(version=version), est(version=version, num_parallel=4)
        assert one.kv_cache == 512 * MiB  # 128 KiB per token of f16 × 4096
        assert four.kv_cache == 4 * one.kv_cache


def test_llama_server_pads_the_context_per_sequence() -> None:
    assert est(num_ctx=4000).kv_cache == est(num_ctx=4096).kv_cache
    assert est(num_ctx=4000, version=CLASSIC).kv_cache < est(num_ctx=4096, version=CLASSIC).kv_cache


def test_a_quantized_kv_cache_counts_only_with_flash_attention() -> None:
    assert est(version=CLASSIC, kv_type="q8_0").kv_cache == 512 * MiB  # flash attention defaulted off
    assert est(version=CLASSIC, kv_type="q8_0", flash_attention=True).kv_cache == 256 * MiB
    assert est(kv_type="q8_0").kv_cache == 256 * MiB  # llama-server: --flash-attn auto
    assert est(kv_type="q4_0", flash_attention=False).kv_cache == 512 * MiB


GEMMA3 = Architecture(
    family="gemma3",
    block_count=48,
    head_count=16,
    head_count_kv=8,
    embedding_length=3840,
    key_length=256,
    value_length=256,
    vocab_size=262144,
    tied_embeddings=True,
    sliding_window=1024,
)
PER_TOKEN_LAYER = 8 * (256 + 256) * 2  # KV heads × (key + value) × f16


def test_classic_gemma3_sizes_its_sliding_layers_by_the_window() -> None:
    kv = est(GEMMA3, CLASSIC, num_ctx=8192).kv_cache
    assert kv == 8 * 8192 * PER_TOKEN_LAYER + 40 * (1024 + 512) * PER_TOKEN_LAYER  # 992 MiB, as PR 12000 logs
    assert kv == 992 * MiB
    two = est(GEMMA3, CLASSIC, num_ctx=8192, num_parallel=2).kv_cache
    assert two == 8 * 16384 * PER_TOKEN_LAYER + 40 * (2 * 1024 + 512) * PER_TOKEN_LAYER


def test_llama_server_sliding_layers_stop_growing_with_the_context() -> None:
    short, long = est(GEMMA3, num_ctx=8192).kv_cache, est(GEMMA3, num_ctx=32768).kv_cache
    window = vram._pad(1024 + 512)  # min(ctx, window + ubatch), padded to 256 cells
    assert short == 8 * 8192 * PER_TOKEN_LAYER + 40 * window * PER_TOKEN_LAYER
    assert long - short == 8 * (32768 - 8192) * PER_TOKEN_LAYER  # only the 8 global layers grow


def test_gemma2_is_sliding_only_from_the_llama_server_on() -> None:
    gemma2 = GEMMA3.model_copy(update={"family": "gemma2", "block_count": 42, "sliding_window": 4096})
    full = 42 * 16384 * PER_TOKEN_LAYER
    assert est(gemma2, CLASSIC, num_ctx=16384).kv_cache == full
    assert est(gemma2, num_ctx=16384).kv_cache == 21 * 16384 * PER_TOKEN_LAYER + 21 * 4608 * PER_TOKEN_LAYER


def test_an_explicit_sliding_window_pattern_wins() -> None:
    pattern = tuple(i % 4 != 3 for i in range(48))  # one global layer in four
    arch = GEMMA3.model_copy(update={"family": "gemma4", "sliding_window_pattern": pattern})
    assert est(arch, num_ctx=8192).kv_cache == 12 * 8192 * PER_TOKEN_LAYER + 36 * 1536 * PER_TOKEN_LAYER


def test_the_untied_token_embedding_stays_off_the_gpu() -> None:
    untied = est()
    assert untied.weights == FILE - LLAMA3.token_embd_bytes
    tied = est(LLAMA3.model_copy(update={"tied_embeddings": True, "output_bytes": 0}))
    assert tied.weights == FILE  # the embedding doubles as the output layer on the GPU
    assert est(version=CLASSIC).weights == untied.weights  # llm/memory.go counted the same
    engine = est(LLAMA3.model_copy(update={"family": "qwen3"}), ENGINE)
    assert engine.weights == FILE  # the Ollama engine counts every tensor, the embedding too


def test_without_tensor_sizes_the_embedding_is_estimated_from_bits_per_weight() -> None:
    arch = LLAMA3.model_copy(
        update={"token_embd_bytes": 0, "output_bytes": 0, "parameter_count": 8_030_261_248}
    )
    bits = FILE * 8 / 8_030_261_248
    assert est(arch).weights == FILE - int(128256 * 4096 * bits / 8)
    unknown = LLAMA3.model_copy(update={"token_embd_bytes": 0, "output_bytes": 0, "vocab_size": 0})
    assert est(unknown).weights == FILE  # no vocabulary: nothing left out


def test_the_graph_grows_with_the_vocabulary() -> None:
    logits = 4 * 512 * (4096 + 128256)  # 258.5 MiB: larger than llama's attention term at 2048
    assert est(version=CLASSIC, num_ctx=2048).graph == logits
    assert est(version="0.3.6", num_ctx=2048).graph == 4 * 512 * (1 + 4 * 4096 + 2048 * 33)  # before 0.3.10
    small = LLAMA3.model_copy(update={"vocab_size": 32768})
    assert est(small, num_ctx=2048).graph < est(num_ctx=2048).graph
    assert est(num_ctx=2048).graph >= logits


def test_the_graph_grows_with_parallel() -> None:
    classic = [est(version=CLASSIC, num_parallel=p).graph for p in (1, 4)]
    assert classic[1] == 4 * 512 * (1 + 4 * 4096 + 4 * 4096 * 33)  # attention over all 16384 cells
    assert classic[1] > classic[0]
    newest = [est(num_parallel=p).graph for p in (1, 4)]
    assert newest[1] > newest[0]
    no_fa = [est(num_parallel=p, flash_attention=False).graph for p in (1, 4)]
    assert no_fa[1] - no_fa[0] >= 4 * 512 * 32 * 3 * 4096  # every head's scores over the extra cells


def test_per_architecture_graph_terms() -> None:
    qwen2 = LLAMA3.model_copy(
        update={
            "family": "qwen2",
            "head_count": 28,
            "head_count_kv": 4,
            "embedding_length": 3584,
            "vocab_size": 152064,
        }
    )
    assert est(qwen2, CLASSIC, num_ctx=12288).graph == 4 * 512 * (
        1 + 2 * 3584 + 12288 * 29
    )  # 710 MiB, issue 8509
    ds2 = Architecture(
        family="deepseek2", block_count=27, head_count=16, head_count_kv=16, embedding_length=2048,
        key_length=192, value_length=128, vocab_size=102400,
    )  # fmt: skip
    context = 8164 * 4
    assert est(ds2, "0.12.6", num_ctx=8164, num_parallel=4).graph == 4 * 512 * (
        3 * 2048 + 2 + context * 17 + 2 * 192 * 16
    )
    qwen3 = LLAMA3.model_copy(update={"family": "qwen3", "head_count": 64, "head_count_kv": 8})
    e = est(qwen3, CLASSIC)
    assert e.graph == 8 * e.kv_cache // 6  # no formula in GraphSize: heads/KV heads × KV / 6


def test_deepseek2_caches_its_latent_vector_in_llama_server() -> None:
    ds2 = Architecture(
        family="deepseek2", block_count=27, head_count=16, head_count_kv=16, embedding_length=2048,
        key_length=192, value_length=128, vocab_size=102400, kv_lora_rank=512, rope_dimension=64,
    )  # fmt: skip
    assert est(ds2, num_ctx=8192).kv_cache == 27 * 8192 * (2 * 512 + 64) * 2
    assert est(ds2, "0.12.6", num_ctx=8192).kv_cache == 27 * 8192 * 16 * (192 + 128) * 2  # 4.8× more


def test_a_gguf_without_head_count_kv_counts_one_kv_head_in_the_classic_estimate() -> None:
    bert = Architecture(
        family="nomic-bert", block_count=12, head_count=12, head_count_kv=12, head_count_kv_given=False,
        embedding_length=768, vocab_size=30522, tied_embeddings=True, embedding_model=True,
    )  # fmt: skip
    assert est(bert, "0.5.4", num_ctx=8192).kv_cache == 24 * MiB  # issue 8425's log
    assert est(bert, "0.5.4", num_ctx=8192, num_parallel=4).kv_cache == 24 * MiB  # embeddings: parallel 1
    assert est(bert, num_ctx=8192).kv_cache == 12 * 8192 * 12 * 128 * 2  # llama.cpp caches every head


def _shown_overhead(e: VramEstimate) -> int:
    return e.reported - e.weights - e.kv_cache - e.graph


def test_the_cuda_minimum_is_counted_where_ollama_ps_no_longer_shows_it() -> None:
    classic, newest = est(version=CLASSIC), est()
    assert _shown_overhead(classic) > vram.CUDA_MINIMUM  # ps SIZE includes it (and a buffer layer)
    assert newest.reported == newest.weights + newest.kv_cache + newest.graph
    assert newest.total - newest.reported == vram.CUDA_MINIMUM  # real VRAM, not in ps SIZE
    metal = est(version=CLASSIC, library="metal")
    assert _shown_overhead(metal) - _shown_overhead(classic) == vram.METAL_MINIMUM - vram.CUDA_MINIMUM
    assert est(gpu_overhead=GiB).total == newest.total + GiB  # OLLAMA_GPU_OVERHEAD


def test_the_classic_estimate_buffers_one_layer() -> None:
    repeating = FILE - LLAMA3.token_embd_bytes - LLAMA3.output_bytes
    assert (
        _shown_overhead(est(version=CLASSIC)) == vram.CUDA_MINIMUM + repeating // 32 + 16 * MiB
    )  # blk.0 + KV
    assert (
        _shown_overhead(est(version="0.1.38")) == vram.CUDA_MINIMUM + repeating // 32
    )  # before 0.2.0: no KV
    largest = vram.CUDA_MINIMUM + LLAMA3.output_bytes + 16 * MiB
    assert _shown_overhead(est(version="0.7.0")) == largest  # 0.7.0 buffered the largest layer


def test_a_classic_fit_needs_room_for_the_partial_offload_graph() -> None:
    e = est(GEMMA3, CLASSIC, num_ctx=8192)
    partial = vram.classic_partial_graph_bytes(GEMMA3, 8192, e.kv_cache)
    assert partial > e.graph  # the logits of a partly offloaded gemma3 (1.3 GiB in PR 12000's log)
    assert e.total - e.reported == partial - e.graph  # not in ps SIZE, but held free while placing layers
    metal = est(GEMMA3, CLASSIC, num_ctx=8192, library="metal")
    assert metal.total == metal.reported  # Metal has no partial-offload graph


def test_llama_servers_fit_target_is_counted_once_per_gpu() -> None:
    a, b = est(), est(num_ctx=8192)
    assert a.margin == b.margin == vram.FIT_TARGET
    assert vram.pinned_total([a, b]) == a.total + b.total + vram.FIT_TARGET
    assert vram.pinned_total([est(version=CLASSIC)]) == est(version=CLASSIC).total
    assert vram.pinned_total([]) == 0


def test_vision_tower_weights_and_graph() -> None:
    tower = VisionTower(
        weights=834_560_000, image_size=896, patch_size=14, embedding_length=1152, head_count=16
    )
    with_vision = est(GEMMA3.model_copy(update={"vision": tower}), CLASSIC, num_ctx=2048)
    without = est(GEMMA3, CLASSIC, num_ctx=2048)
    assert with_vision.graph - without.graph == 4 * (896 * 896 * 3 + 1152 * 14 + 4096**2 * 16)  # 1.0 GiB
    assert with_vision.weights == without.weights  # the tower is part of the same file


def test_unknown_architecture_counts_the_weights_and_the_runtime() -> None:
    e = vram.estimate("m", WEIGHTS, None, num_ctx=4096)
    assert not e.architecture_known and e.kv_cache == e.graph == 0
    assert e.total == FILE + vram.CUDA_MINIMUM and e.margin == vram.FIT_TARGET
