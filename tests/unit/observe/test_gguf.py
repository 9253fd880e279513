"""GGUF header parsing from hand-built bytes (layout: ggml docs/gguf.md)."""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator

import pytest

from reconciler.observe.gguf import parse_architecture
from reconciler.observed import Architecture
from tests.architectures import LLAMA3_8B

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?"}
_FMT |= {U64: "<Q", I64: "<q", F64: "<d"}


def gstr(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def value(vtype: int, v: object) -> bytes:
    if vtype == STR:
        assert isinstance(v, str | bytes)
        return gstr(v)
    if vtype == ARR:
        assert isinstance(v, tuple)
        etype, items = v
        return struct.pack("<IQ", etype, len(items)) + b"".join(value(etype, i) for i in items)
    return struct.pack(_FMT[vtype], v)


Tensor = tuple[str, tuple[int, ...], int]  # name, dims, ggml type
F32_T, F16_T, Q4_0_T, Q4_K_T, Q6_K_T = 0, 1, 2, 12, 14


def tensor_info(name: str, dims: tuple[int, ...], ggml_type: int, offset: int = 0) -> bytes:
    return (
        gstr(name)
        + struct.pack("<I", len(dims))
        + struct.pack(f"<{len(dims)}Q", *dims)
        + struct.pack("<IQ", ggml_type, offset)
    )


def gguf(
    kvs: list[tuple[str, int, object]],
    *,
    version: int = 3,
    magic: bytes = b"GGUF",
    tensors: list[Tensor] | None = None,
    tensor_count: int | None = None,
) -> bytes:
    infos = tensors or []
    count = tensor_count if tensor_count is not None else (len(infos) if tensors is not None else 291)
    head = magic + struct.pack("<IQQ", version, count, len(kvs))
    body = b"".join(gstr(k) + struct.pack("<I", t) + value(t, v) for k, t, v in kvs)
    return head + body + b"".join(tensor_info(n, d, t) for n, d, t in infos)


LLAMA = [
    ("general.architecture", STR, "llama"),
    ("general.name", STR, "Meta Llama 3 8B"),
    ("llama.block_count", U32, 32),
    ("llama.context_length", U32, 8192),
    ("llama.embedding_length", U32, 4096),
    ("llama.feed_forward_length", U32, 14336),
    ("llama.attention.head_count", U32, 32),
    ("llama.attention.head_count_kv", U32, 8),
    ("llama.rope.freq_base", F32, 500000.0),
    ("general.file_type", U32, 2),
    ("tokenizer.ggml.model", STR, "gpt2"),
    ("tokenizer.ggml.tokens", ARR, (STR, [f"tok{i}" for i in range(2000)])),
    ("tokenizer.ggml.scores", ARR, (F32, [0.0] * 2000)),
]
LLAMA_ARCH = LLAMA3_8B.model_copy(update={"vocab_size": 2000})  # the length of tokenizer.ggml.tokens


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


class Counting:
    """Chunks, counting how many bytes the parser pulled."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size, self.pulled = data, size, 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in chunked(self.data, self.size):
            self.pulled += len(chunk)
            yield chunk


def test_llama_header() -> None:
    assert parse_architecture([gguf(LLAMA)]) == LLAMA_ARCH


@pytest.mark.parametrize("size", [1, 3, 7, 64, 4096])
def test_any_chunking(size: int) -> None:
    assert parse_architecture(chunked(gguf(LLAMA), size)) == LLAMA_ARCH


def test_version_2() -> None:
    assert parse_architecture([gguf(LLAMA, version=2)]) == LLAMA_ARCH


def test_reads_the_tensor_infos_and_stops_before_the_tensor_data() -> None:
    tensors: list[Tensor] = [
        ("token_embd.weight", (4096, 2000), Q4_0_T),
        ("blk.0.attn_q.weight", (4096, 4096), Q4_K_T),
    ]
    header = gguf(LLAMA, tensors=tensors)
    source = Counting(header + b"\0" * 1_000_000, 4096)
    arch = parse_architecture(source)
    assert arch is not None and arch.token_embd_bytes == 2000 * 4096 * 18 // 32
    assert source.pulled <= len(header) + 4096


def test_head_count_kv_missing_defaults_to_head_count() -> None:
    kvs = [kv for kv in LLAMA if kv[0] != "llama.attention.head_count_kv"]
    arch = parse_architecture([gguf(kvs)])
    assert arch is not None
    assert arch.head_count_kv == arch.head_count == 32
    assert arch.head_count_kv_given is False  # Ollama's classic estimate then counts one KV head


def test_key_and_value_length_and_other_int_types() -> None:
    kvs = [
        ("general.architecture", STR, "gemma2"),
        ("gemma2.context_length", U64, 8192),
        ("gemma2.embedding_length", I32, 3584),
        ("gemma2.block_count", U16, 42),
        ("gemma2.attention.head_count", U8, 16),
        ("gemma2.attention.head_count_kv", I64, 8),
        ("gemma2.attention.key_length", U32, 256),
        ("gemma2.attention.value_length", U32, 256),
        ("tokenizer.ggml.tokens", ARR, (STR, ["a"] * 10)),
    ]
    arch = parse_architecture([gguf(kvs)])
    assert arch == Architecture(
        family="gemma2",
        block_count=42,
        head_count=16,
        head_count_kv=8,
        embedding_length=3584,
        context_length=8192,
        key_length=256,
        value_length=256,
        vocab_size=10,
    )


def test_per_layer_head_count_kv_takes_the_largest() -> None:
    kvs = [kv for kv in LLAMA if kv[0] != "llama.attention.head_count_kv"]
    kvs.insert(3, ("llama.attention.head_count_kv", ARR, (I32, [0, 8, 4] * 10)))
    arch = parse_architecture([gguf(kvs)])
    assert arch is not None
    assert arch.head_count_kv == 8


def test_arrays_of_every_kind_before_the_arch_keys() -> None:
    arrays = [
        ("x.strings", ARR, (STR, ["α", "", "b" * 300])),
        ("x.nested", ARR, (ARR, [(U8, [1, 2, 3]), (STR, ["a", "b"]), (ARR, [(F64, [1.5])])])),
        ("x.u64", ARR, (U64, list(range(100)))),
        ("x.bools", ARR, (BOOL, [True, False])),
        ("x.empty", ARR, (I16, [])),
        ("x.f64", F64, 2.5),
        ("x.i8", I8, -3),
        ("x.long", STR, "z" * 10_000),
    ]
    assert parse_architecture([gguf(arrays + LLAMA)]) == LLAMA_ARCH


def test_arch_keys_before_general_architecture() -> None:
    kvs = [*LLAMA[2:8], *LLAMA[:2], *LLAMA[8:]]
    assert parse_architecture([gguf(kvs)]) == LLAMA_ARCH


def test_other_architectures_keys_are_ignored() -> None:
    kvs = [("qwen2.block_count", U32, 99), *LLAMA]
    assert parse_architecture([gguf(kvs)]) == LLAMA_ARCH


def test_missing_required_key_is_none() -> None:
    kvs = [kv for kv in LLAMA if kv[0] != "llama.block_count"]
    assert parse_architecture([gguf(kvs)]) is None


def test_wrong_type_for_a_count_is_none() -> None:
    kvs = [(k, STR, "32") if k == "llama.block_count" else (k, t, v) for k, t, v in LLAMA]
    assert parse_architecture([gguf(kvs)]) is None


def test_truncated_inside_the_arch_keys_is_none() -> None:
    data = gguf(LLAMA)
    cut = data.index(b"llama.attention.head_count")
    assert parse_architecture([data[:cut]]) is None


def test_truncated_after_the_arch_keys_still_answers() -> None:
    data = gguf(LLAMA)
    cut = data.index(b"tokenizer.ggml.tokens") + 5
    assert parse_architecture(chunked(data[:cut], 10)) == LLAMA_ARCH.model_copy(update={"vocab_size": 0})


def test_empty_input() -> None:
    assert parse_architecture([]) is None
    assert parse_architecture([b""]) is None


@pytest.mark.parametrize("magic", [b"GGML", b"\x00\x00\x00\x00", b"FUGG"])
def test_bad_magic(magic: bytes) -> None:
    assert parse_architecture([gguf(LLAMA, magic=magic)]) is None


@pytest.mark.parametrize("version", [1, 4, 0x03000000])  # 0x03000000: a big-endian file
def test_unsupported_version(version: int) -> None:
    assert parse_architecture([gguf(LLAMA, version=version)]) is None


def test_unknown_value_type_is_none() -> None:
    raw = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gstr("general.foo") + struct.pack("<I", 99) + b"\0" * 16
    assert parse_architecture([raw]) is None


def test_huge_lengths_hit_the_byte_limit_not_memory() -> None:
    key = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**63) + b"x" * 100
    assert parse_architecture([key]) is None
    array = b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + gstr("a") + struct.pack("<IIQ", ARR, U64, 2**62)
    assert parse_architecture([array, b"\0" * 1000]) is None
    strings = b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + gstr("a") + struct.pack("<IIQ", ARR, STR, 2**62)
    assert parse_architecture(chunked(strings + b"\0" * 100_000, 4096), limit=50_000) is None


def test_byte_limit_stops_reading() -> None:
    kvs = [("pad", ARR, (U8, [0] * 5000)), *LLAMA]
    source = Counting(gguf(kvs), 512)
    assert parse_architecture(source, limit=4000) is None
    assert source.pulled <= 4000 + 512
    assert parse_architecture([gguf(kvs)], limit=20_000) == LLAMA_ARCH


def test_deep_nesting_is_refused() -> None:
    inner: tuple[int, list[object]] = (U8, [1])
    for _ in range(6):
        inner = (ARR, [inner])
    assert parse_architecture([gguf([("deep", ARR, inner), *LLAMA])]) is None


def test_bad_architecture_name_is_none() -> None:
    kvs = [("general.architecture", STR, b"\xff\xfe"), *LLAMA[1:]]
    assert parse_architecture([gguf(kvs)]) is None


def test_random_garbage_never_raises() -> None:
    rng = random.Random(1234)
    good = gguf(LLAMA)
    for _ in range(300):
        n = rng.randrange(0, 600)
        blob = bytes(rng.randrange(256) for _ in range(n))
        parse_architecture([b"GGUF" + blob])
        mutated = bytearray(good)
        for _ in range(rng.randrange(1, 8)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        parse_architecture(chunked(bytes(mutated), rng.randrange(1, 300)), limit=200_000)


def test_non_bytes_chunks_are_malformed() -> None:
    assert parse_architecture(["GGUF"]) is None  # type: ignore[list-item]


UNTIED: list[Tensor] = [
    ("token_embd.weight", (4096, 2000), Q4_0_T),
    ("blk.0.attn_q.weight", (4096, 4096), Q4_K_T),
    ("output_norm.weight", (4096,), F32_T),
    ("output.weight", (4096, 2000), Q6_K_T),
]


def test_untied_output_and_token_embedding_sizes_come_from_the_tensor_infos() -> None:
    arch = parse_architecture([gguf(LLAMA, tensors=UNTIED)])
    assert arch is not None
    assert arch.tied_embeddings is False
    assert arch.token_embd_bytes == 2000 * 4096 * 18 // 32  # q4_0: 18 bytes per 32
    assert arch.output_bytes == 2000 * 4096 * 210 // 256 + 4096 * 4  # q6_K output + f32 norm
    assert arch.vocab_size == 2000


def test_no_output_tensor_means_tied_embeddings() -> None:
    arch = parse_architecture([gguf(LLAMA, tensors=[t for t in UNTIED if t[0] != "output.weight"])])
    assert arch is not None and arch.tied_embeddings is True and arch.output_bytes == 0


def test_vocabulary_from_the_token_embedding_shape_over_the_tokenizer() -> None:
    tensors: list[Tensor] = [("token_embd.weight", (4096, 2048), Q4_0_T)]  # padded vocabulary
    arch = parse_architecture([gguf(LLAMA, tensors=tensors)])
    assert arch is not None and arch.vocab_size == 2048


def test_header_cut_inside_the_tensor_infos_keeps_the_keys_but_no_sizes() -> None:
    data = gguf(LLAMA, tensors=UNTIED)
    cut = data.index(b"output.weight")
    arch = parse_architecture([data[:cut]])
    assert arch is not None and arch.vocab_size == 2000  # from the tokenizer
    assert arch.tied_embeddings is None and arch.token_embd_bytes == 0


def test_unknown_tensor_type_leaves_its_size_unknown() -> None:
    tensors: list[Tensor] = [("token_embd.weight", (4096, 2000), 250)]
    arch = parse_architecture([gguf(LLAMA, tensors=tensors)])
    assert arch is not None and arch.token_embd_bytes == 0 and arch.vocab_size == 2000


GEMMA3 = [
    ("general.architecture", STR, "gemma3"),
    ("general.parameter_count", U64, 12_187_325_040),
    ("gemma3.block_count", U32, 6),
    ("gemma3.context_length", U32, 131072),
    ("gemma3.embedding_length", U32, 3840),
    ("gemma3.attention.head_count", U32, 16),
    ("gemma3.attention.head_count_kv", U32, 8),
    ("gemma3.attention.key_length", U32, 256),
    ("gemma3.attention.value_length", U32, 256),
    ("gemma3.attention.sliding_window", U32, 1024),
    ("gemma3.attention.sliding_window_pattern", ARR, (BOOL, [True] * 5 + [False])),
    ("gemma3.vision.image_size", U32, 896),
    ("gemma3.vision.patch_size", U32, 14),
    ("gemma3.vision.embedding_length", U32, 1152),
    ("gemma3.vision.attention.head_count", U32, 16),
    ("tokenizer.ggml.tokens", ARR, (STR, ["t"] * 300)),
]


def test_sliding_window_vision_tower_and_parameter_count() -> None:
    tensors: list[Tensor] = [
        ("token_embd.weight", (3840, 300), Q6_K_T),
        ("v.patch_embd.weight", (14, 14, 3, 1152), F16_T),
        ("mm.mm_input_projection.weight", (1152, 3840), F16_T),
    ]
    arch = parse_architecture([gguf(GEMMA3, tensors=tensors)])
    assert arch is not None
    assert arch.sliding_window == 1024 and arch.sliding_window_pattern == (True,) * 5 + (False,)
    assert arch.parameter_count == 12_187_325_040 and arch.tied_embeddings is True
    assert arch.vision is not None
    assert arch.vision.weights == (14 * 14 * 3 * 1152 + 1152 * 3840) * 2
    assert (arch.vision.image_size, arch.vision.patch_size, arch.vision.head_count) == (896, 14, 16)


def test_a_pattern_of_the_wrong_length_is_dropped() -> None:
    kvs = [(k, t, (BOOL, [True, False]) if k.endswith("pattern") else v) for k, t, v in GEMMA3]
    arch = parse_architecture([gguf(kvs)])
    assert arch is not None and arch.sliding_window_pattern == ()


def test_deepseek2_latent_attention_and_experts() -> None:
    kvs = [
        ("general.architecture", STR, "deepseek2"),
        ("deepseek2.block_count", U32, 27),
        ("deepseek2.context_length", U32, 163840),
        ("deepseek2.embedding_length", U32, 2048),
        ("deepseek2.attention.head_count", U32, 16),
        ("deepseek2.attention.head_count_kv", U32, 16),
        ("deepseek2.attention.key_length", U32, 192),
        ("deepseek2.attention.value_length", U32, 128),
        ("deepseek2.attention.kv_lora_rank", U32, 512),
        ("deepseek2.rope.dimension_count", U32, 64),
        ("deepseek2.expert_count", U32, 64),
        ("deepseek2.expert_used_count", U32, 6),
        ("deepseek2.vocab_size", U32, 102400),
    ]
    arch = parse_architecture([gguf(kvs)])
    assert arch is not None
    assert (arch.kv_lora_rank, arch.rope_dimension, arch.expert_count, arch.expert_used_count) == (
        512,
        64,
        64,
        6,
    )
    assert arch.vocab_size == 102400  # <arch>.vocab_size when there is no tokenizer array


def test_pooling_type_marks_an_embedding_model() -> None:
    kvs = [*LLAMA, ("llama.pooling_type", U32, 1)]
    arch = parse_architecture([gguf(kvs)])
    assert arch is not None and arch.embedding_model is True
    plain = parse_architecture([gguf(LLAMA)])
    assert plain is not None and plain.embedding_model is False


def test_absurd_tensor_counts_and_dims_are_malformed() -> None:
    assert parse_architecture([gguf(LLAMA, tensor_count=2**40)]) is None
    bad = gguf(LLAMA, tensors=[]) + gstr("t") + struct.pack("<I", 99)
    raw = bytearray(bad)
    raw[8:16] = struct.pack("<Q", 1)
    assert parse_architecture([bytes(raw)]) is None
