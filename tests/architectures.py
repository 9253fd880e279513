"""Real models' architectures, as their GGUF metadata gives them (`ollama show -v`), for the
tests and benchmarks that size weights and KV caches. Each user adds only what it measures
(`LLAMA3_8B.model_copy(update={...})`): tensor sizes of one quantization, a token count."""

from __future__ import annotations

from reconciler.observed import Architecture

# llama3:8b (every quantization): 32 blocks, GQA 32/8, 4096 wide, 8k trained context
LLAMA3_8B = Architecture(
    family="llama",
    block_count=32,
    head_count=32,
    head_count_kv=8,
    embedding_length=4096,
    context_length=8192,
)
LLAMA3_VOCAB = 128256
