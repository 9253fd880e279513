"""The fake Ollama's performance model (tests/harness/fake_ollama/perf.py), without a server."""

from __future__ import annotations

import pytest

from tests.harness.fake_ollama import perf

GB = 1e9
HW = perf.Hardware(gpu_bandwidth=448 * GB, cpu_bandwidth=51.2 * GB, gpu_flops=40e12, cpu_flops=1e12)
LLAMA3 = {
    "general.architecture": "llama",
    "general.parameter_count": 8_030_261_248,
    "llama.block_count": 32,
    "llama.attention.head_count": 32,
    "llama.embedding_length": 4096,
}


def _shape(
    weights: float = 4.92 * GB, share: float = 1.0, meta: dict[str, object] | None = None
) -> perf.Shape:
    kv = 32 * 8 * 256 * 8192  # q8_0 KV of llama3 at num_ctx 8192: 64 KiB a position
    return perf.shape_of(meta or LLAMA3, int(weights), kv, 8192, share)


def test_generation_is_bound_by_memory_bandwidth() -> None:
    q4, q8 = _shape(4.92 * GB), _shape(8.54 * GB)
    rate_q4 = 1 / perf.token_seconds(q4, HW, 0)
    assert rate_q4 == pytest.approx(448 / 4.92, rel=1e-6)  # ~91 tokens/s: an RTX 3070 on Q4_K_M
    assert perf.token_seconds(q8, HW, 0) / perf.token_seconds(q4, HW, 0) == pytest.approx(8.54 / 4.92)
    # every position so far is read from the KV cache too: slower late in a long context
    assert perf.token_seconds(q4, HW, 8000) == pytest.approx((4.92e9 + 65536 * 8000) / 448e9)


def test_layers_left_on_the_cpu_move_at_the_cpu_bandwidth() -> None:
    half = _shape(share=0.5)
    expected = 0.5 * 4.92e9 / 448e9 + 0.5 * 4.92e9 / 51.2e9
    assert perf.token_seconds(half, HW, 0) == pytest.approx(expected)
    assert perf.token_seconds(_shape(share=0.0), HW, 0) == pytest.approx(4.92e9 / 51.2e9)


def test_a_mixture_of_experts_reads_only_the_experts_it_uses() -> None:
    moe = {**LLAMA3, "llama.expert_count": 8, "llama.expert_used_count": 2}
    assert perf.token_seconds(_shape(meta=moe), HW, 0) == pytest.approx(
        perf.token_seconds(_shape(), HW, 0) / 4
    )


def test_prompt_evaluation_is_bound_by_compute_with_causal_attention() -> None:
    shape = _shape()
    dense = 2 * 8_030_261_248 * 1000
    attention = 4 * 32 * 32 * 128 * 1000 * (0 + 500)
    assert perf.prompt_seconds(shape, HW, 1000, 0) == pytest.approx((dense + attention) / 40e12)
    assert perf.prompt_seconds(shape, HW, 0, 1000) == 0.0
    after = 4 * 32 * 32 * 128 * 10 * (1000 + 5)
    assert perf.prompt_seconds(shape, HW, 10, 1000) == pytest.approx((2 * 8_030_261_248 * 10 + after) / 40e12)


def test_tokens_cache_prefix_truncation_and_reply_length() -> None:
    assert perf.tokenize("abcdefgh") == [int.from_bytes(b"abcd", "big"), int.from_bytes(b"efgh", "big")]
    assert len(perf.tokenize("x" * 9)) == 3
    first = perf.tokenize("same start, then one way")
    second = perf.tokenize("same start, then another")
    assert perf.cached_prefix(first, second) == 4  # "same", " sta", "rt, ", "then"
    assert perf.cached_prefix(first, first) == len(first) - 1  # the last token is evaluated again
    assert perf.cached_prefix([], first) == 0
    assert perf.truncate(list(range(10)), 5) == [6, 7, 8, 9]
    assert perf.reply_length(HW, 20, 10, 256) == (20, "length")
    assert perf.reply_length(HW, None, 10, 256) == (64, "stop")
    assert perf.reply_length(HW, 500, 250, 256) == (6, "length")


def test_hardware_from_the_environment() -> None:
    hw = perf.Hardware.from_env({"FAKE_OLLAMA_GPU_BANDWIDTH": "1e9", "FAKE_OLLAMA_CPU_FLOPS": "bogus"})
    assert hw.gpu_bandwidth == 1e9 and hw.cpu_flops == perf.DEFAULT_CPU_FLOPS
    assert "1 GB/s" in hw.describe() and "perf.py" in hw.describe()
