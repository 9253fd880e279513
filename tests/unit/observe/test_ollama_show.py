"""`/api/show` model_info and tensors → Architecture (the shapes Ollama returns: server/routes.go
GetModelInfo, non-verbose: arrays longer than 5 are emptied; tensors {name, type, shape})."""

from __future__ import annotations

from typing import Any

from reconciler.observe.ollama import parse_architecture

LLAMA3_INFO: dict[str, Any] = {
    "general.architecture": "llama",
    "general.parameter_count": 8030261248,
    "llama.block_count": 32,
    "llama.context_length": 8192,
    "llama.embedding_length": 4096,
    "llama.attention.head_count": 32,
    "llama.attention.head_count_kv": 8,
    "tokenizer.ggml.tokens": [],  # emptied by show
}
LLAMA3_TENSORS = [
    {"name": "token_embd.weight", "type": "Q4_0", "shape": [4096, 128256]},
    {"name": "blk.0.attn_q.weight", "type": "Q4_0", "shape": [4096, 4096]},
    {"name": "output_norm.weight", "type": "F32", "shape": [4096]},
    {"name": "output.weight", "type": "Q6_K", "shape": [4096, 128256]},
]


def test_vocabulary_and_untied_output_come_from_the_tensor_list() -> None:
    arch = parse_architecture(LLAMA3_INFO, LLAMA3_TENSORS)
    assert arch is not None
    assert arch.vocab_size == 128256 and arch.tied_embeddings is False
    assert arch.parameter_count == 8030261248 and arch.head_count_kv_given is True
    assert arch.token_embd_bytes == 0  # type names are not trusted: the estimator uses bits per weight


def test_without_tensors_the_vocabulary_falls_back_to_vocab_size() -> None:
    arch = parse_architecture({**LLAMA3_INFO, "llama.vocab_size": 128256})
    assert arch is not None and arch.vocab_size == 128256 and arch.tied_embeddings is None
    bare = parse_architecture(LLAMA3_INFO, [])
    assert bare is not None and bare.vocab_size == 0 and bare.tied_embeddings is None


def test_no_output_tensor_is_tied() -> None:
    tensors = [t for t in LLAMA3_TENSORS if t["name"] != "output.weight"]
    arch = parse_architecture(LLAMA3_INFO, tensors)
    assert arch is not None and arch.tied_embeddings is True


def test_gemma3_sliding_window_and_vision_tower() -> None:
    info = {
        "general.architecture": "gemma3",
        "gemma3.block_count": 48,
        "gemma3.context_length": 131072,
        "gemma3.embedding_length": 3840,
        "gemma3.attention.head_count": 16,
        "gemma3.attention.head_count_kv": 8,
        "gemma3.attention.key_length": 256,
        "gemma3.attention.value_length": 256,
        "gemma3.attention.sliding_window": 1024,
        "gemma3.attention.sliding_window_pattern": [],  # 48 values: emptied by show
        "gemma3.vision.image_size": 896,
        "gemma3.vision.patch_size": 14,
        "gemma3.vision.embedding_length": 1152,
        "gemma3.vision.attention.head_count": 16,
    }
    tensors = [
        {"name": "token_embd.weight", "type": "Q6_K", "shape": [3840, 262144]},
        {"name": "v.patch_embd.weight", "type": "F16", "shape": [14, 14, 3, 1152]},
        {"name": "v.blk.0.attn_q.bias", "type": "F32", "shape": [1152]},
    ]
    arch = parse_architecture(info, tensors)
    assert arch is not None
    assert arch.sliding_window == 1024 and arch.sliding_window_pattern == ()
    assert arch.tied_embeddings is True and arch.vocab_size == 262144
    assert arch.vision is not None
    assert arch.vision.weights == 14 * 14 * 3 * 1152 * 2 + 1152 * 4
    assert (arch.vision.image_size, arch.vision.patch_size, arch.vision.embedding_length) == (896, 14, 1152)


def test_embedding_model_without_head_count_kv() -> None:
    info = {
        "general.architecture": "nomic-bert",
        "nomic-bert.block_count": 12,
        "nomic-bert.context_length": 2048,
        "nomic-bert.embedding_length": 768,
        "nomic-bert.attention.head_count": 12,
        "nomic-bert.pooling_type": 1,
    }
    arch = parse_architecture(info)
    assert arch is not None
    assert arch.embedding_model is True
    assert arch.head_count_kv == 12 and arch.head_count_kv_given is False


def test_malformed_tensor_entries_are_skipped() -> None:
    tensors: list[Any] = ["x", {"name": 3}, {"name": "token_embd.weight", "shape": [4096, "a", 128256]}]
    arch = parse_architecture(LLAMA3_INFO, tensors)
    assert arch is not None and arch.vocab_size == 128256
