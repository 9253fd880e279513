"""Read what sizes a model in VRAM from the start of its GGUF file, incrementally (pure).

Format: ggml's `docs/gguf.md` (GGUF v2/v3, little-endian): magic `GGUF`, uint32 version,
uint64 tensor_count, uint64 kv_count, then kv_count × (gguf_string key, uint32 type, value),
then tensor_count × tensor info (gguf_string name, uint32 n_dims, n_dims × uint64 dims,
uint32 ggml type, uint64 offset), then the tensor data. A gguf_string is a uint64 length and
that many UTF-8 bytes; an array is a uint32 element type, a uint64 count and the elements.

We read the `<arch>.*` keys Ollama's estimators read (`fs/ggml/ggml.go` KV.BlockCount,
HeadCountKV, EmbeddingLength, ...), count the tokenizer's tokens without materialising
them (the vocabulary), then read the tensor infos for the sizes of the token embedding, the
output layer and the vision tower, and stop before the tensor data. Multi-MB tokenizer
arrays are skipped, not kept; a header past the byte limit yields what was complete.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from reconciler.observed import Architecture, VisionTower

DEFAULT_LIMIT = 16 * 2**20

MAGIC = b"GGUF"
_FIXED: dict[int, str] = {  # GGUF value type → struct format (little-endian)
    0: "<B",  # uint8
    1: "<b",  # int8
    2: "<H",  # uint16
    3: "<h",  # int16
    4: "<I",  # uint32
    5: "<i",  # int32
    6: "<f",  # float32
    7: "<?",  # bool
    10: "<Q",  # uint64
    11: "<q",  # int64
    12: "<d",  # float64
}
_STRING = 8
_ARRAY = 9
_MAX_KEY = 65535  # the spec's limit on key length
_MAX_WANTED_STRING = 256  # general.architecture is a short identifier
_MAX_WANTED_ARRAY = 4096  # per-layer values: one per block
_MAX_DEPTH = 3
_MAX_TENSORS = 1 << 20
_MAX_DIMS = 8

# ggml type id → (elements per block, bytes per block): ggml.h ggml_type and ggml.c
# type_traits (Ollama fs/ggml/ggml.go Tensor.blockSize/typeSize).
GGML_TYPES: dict[int, tuple[int, int]] = {
    0: (1, 4),  # F32
    1: (1, 2),  # F16
    2: (32, 18),  # Q4_0
    3: (32, 20),  # Q4_1
    6: (32, 22),  # Q5_0
    7: (32, 24),  # Q5_1
    8: (32, 34),  # Q8_0
    9: (32, 36),  # Q8_1
    10: (256, 84),  # Q2_K
    11: (256, 110),  # Q3_K
    12: (256, 144),  # Q4_K
    13: (256, 176),  # Q5_K
    14: (256, 210),  # Q6_K
    15: (256, 292),  # Q8_K
    16: (256, 66),  # IQ2_XXS
    17: (256, 74),  # IQ2_XS
    18: (256, 98),  # IQ3_XXS
    19: (256, 50),  # IQ1_S
    20: (32, 18),  # IQ4_NL
    21: (256, 110),  # IQ3_S
    22: (256, 82),  # IQ2_S
    23: (256, 136),  # IQ4_XS
    24: (1, 1),  # I8
    25: (1, 2),  # I16
    26: (1, 4),  # I32
    27: (1, 8),  # I64
    28: (1, 8),  # F64
    29: (256, 56),  # IQ1_M
    30: (1, 2),  # BF16
    34: (256, 54),  # TQ1_0
    35: (256, 66),  # TQ2_0
    39: (32, 17),  # MXFP4
}

_REQUIRED = ("block_count", "attention.head_count", "embedding_length", "context_length")
_COUNTS = (
    "attention.head_count_kv",
    "attention.key_length",
    "attention.value_length",
    "vocab_size",
    "attention.sliding_window",
    "attention.kv_lora_rank",
    "rope.dimension_count",
    "expert_count",
    "expert_used_count",
    "vision.image_size",
    "vision.patch_size",
    "vision.num_channels",
    "vision.embedding_length",
    "vision.attention.head_count",
)
_PATTERN = "attention.sliding_window_pattern"
_POOLING = "pooling_type"
_TOKENS = "tokenizer.ggml.tokens"
_PARAMETERS = "general.parameter_count"


class _Truncated(Exception):
    """The stream ended (or hit the byte limit) before the parser was done."""


class _Malformed(Exception):
    """The bytes are not a GGUF header we understand."""


class _Stream:
    """Bytes from an iterable of chunks, buffered only as far as the parser needs."""

    def __init__(self, chunks: Iterable[bytes], limit: int) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buf = bytearray()
        self._pos = 0
        self._limit = limit
        self.consumed = 0

    def _more(self) -> None:
        chunk = next(self._chunks, None)
        if chunk is None:
            raise _Truncated
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise _Malformed
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += chunk

    def read(self, n: int) -> bytes:
        if self.consumed + n > self._limit:
            raise _Truncated
        while len(self._buf) - self._pos < n:
            self._more()
        data = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        self.consumed += n
        return data

    def skip(self, n: int) -> None:
        if self.consumed + n > self._limit:
            raise _Truncated
        self.consumed += n
        while n:
            available = len(self._buf) - self._pos
            if available == 0:
                self._more()
                continue
            step = min(n, available)
            self._pos += step
            n -= step

    def unpack(self, fmt: str) -> int | float | bool:
        value: int | float | bool = struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]
        return value


class _Parser:
    def __init__(self, stream: _Stream) -> None:
        self.s = stream

    def u32(self) -> int:
        return int(self.s.unpack("<I"))

    def u64(self) -> int:
        return int(self.s.unpack("<Q"))

    def string(self, max_len: int) -> str | None:
        """A gguf_string; None (skipped, not materialised) when longer than max_len."""
        length = self.u64()
        if length > max_len:
            self.s.skip(length)
            return None
        try:
            return self.s.read(length).decode("utf-8")
        except UnicodeDecodeError:
            raise _Malformed from None

    def key(self) -> str:
        length = self.u64()
        if length > _MAX_KEY:
            raise _Malformed
        try:
            return self.s.read(length).decode("utf-8")
        except UnicodeDecodeError:
            raise _Malformed from None

    def skip_value(self, vtype: int, depth: int = 0) -> None:
        if vtype in _FIXED:
            self.s.skip(struct.calcsize(_FIXED[vtype]))
        elif vtype == _STRING:
            self.s.skip(self.u64())
        elif vtype == _ARRAY:
            self.skip_array(depth + 1)
        else:
            raise _Malformed

    def skip_array(self, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise _Malformed
        etype, count = self.u32(), self.u64()
        self._skip_elements(etype, count, depth)

    def value(self, vtype: int) -> object:
        """A value we want: scalars, short strings, short arrays of scalars."""
        if vtype in _FIXED:
            return self.s.unpack(_FIXED[vtype])
        if vtype == _STRING:
            return self.string(_MAX_WANTED_STRING)
        if vtype == _ARRAY:
            etype, count = self.u32(), self.u64()
            if etype not in _FIXED or count > _MAX_WANTED_ARRAY:
                self._skip_elements(etype, count)
                return None
            return [self.s.unpack(_FIXED[etype]) for _ in range(count)]
        raise _Malformed

    def _skip_elements(self, etype: int, count: int, depth: int = 1) -> None:
        if etype in _FIXED:
            # Fixed-size elements: one skip whatever the count (the byte limit bounds it).
            self.s.skip(count * struct.calcsize(_FIXED[etype]))
        elif etype in (_STRING, _ARRAY):
            for _ in range(count):
                self.skip_value(etype, depth)
        else:
            raise _Malformed


def _as_count(value: object, limit: int = 2**31) -> int | None:
    """A non-negative integer, or the largest of a per-layer list (Ollama takes the max too)."""
    if isinstance(value, list):
        counts = [_as_count(v, limit) for v in value]
        known = [c for c in counts if c is not None]
        return max(known) if known and len(known) == len(counts) else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value < limit else None


def _bools(value: object) -> tuple[bool, ...] | None:
    if isinstance(value, list) and all(isinstance(v, bool | int) for v in value):
        return tuple(bool(v) for v in value)
    return None


@dataclass
class _Tensors:
    """What the tensor infos tell: sizes of the tensors the estimators treat apart."""

    complete: bool = False  # every tensor info was read
    names: set[str] = field(default_factory=set)
    token_embd_shape: tuple[int, ...] = ()
    sizes: dict[str, int | None] = field(default_factory=dict)  # name → bytes (None: unknown type)
    vision: int = 0
    vision_known: bool = True

    def add(self, name: str, dims: tuple[int, ...], ggml_type: int) -> None:
        self.names.add(name)
        elements = 1
        for d in dims:
            elements *= d
        block = GGML_TYPES.get(ggml_type)
        size = elements // block[0] * block[1] if block else None
        if name == "token_embd.weight":
            self.token_embd_shape = dims
        if name in ("token_embd.weight", "output.weight", "output_norm.weight"):
            self.sizes[name] = size
        if name.startswith(("v.", "mm.")):
            self.vision += size or 0
            self.vision_known = self.vision_known and size is not None

    def size(self, name: str) -> int:
        return self.sizes.get(name) or 0


class _Collector:
    """The keys we look for. `<arch>.*` keys seen before `general.architecture` are kept
    as candidates, so the order of the header does not matter."""

    def __init__(self) -> None:
        self.family: str | None = None
        self.candidates: dict[str, object] = {}
        self.tokens: int | None = None
        self.parameters: int | None = None
        self.tensors = _Tensors()

    def wants(self, key: str) -> bool:
        _, _, rest = key.partition(".")
        return (
            key in ("general.architecture", _PARAMETERS)
            or rest in _REQUIRED
            or rest in _COUNTS
            or rest in (_PATTERN, _POOLING)
        )

    def take(self, key: str, value: object) -> None:
        if key == "general.architecture":
            if isinstance(value, str) and value and value.isprintable():
                self.family = value
        elif key == _PARAMETERS:
            self.parameters = _as_count(value, limit=2**50)
        else:
            self.candidates[key] = value

    def field(self, name: str) -> object:
        return self.candidates.get(f"{self.family}.{name}")

    def count(self, name: str) -> int | None:
        return _as_count(self.field(name))

    @property
    def complete(self) -> bool:
        return self.family is not None and all(self.count(k) is not None for k in _REQUIRED)

    def vision(self) -> VisionTower | None:
        image = self.count("vision.image_size") or 0
        if not image and not self.tensors.vision:
            return None
        return VisionTower(
            weights=self.tensors.vision,
            image_size=image,
            patch_size=self.count("vision.patch_size") or 0,
            num_channels=self.count("vision.num_channels") or 3,
            embedding_length=self.count("vision.embedding_length") or 0,
            head_count=self.count("vision.attention.head_count") or 0,
        )

    def result(self) -> Architecture | None:
        if not self.complete:
            return None
        assert self.family is not None
        heads = self.count("attention.head_count") or 0
        heads_kv = self.count("attention.head_count_kv")
        t = self.tensors
        vocab = t.token_embd_shape[1] if len(t.token_embd_shape) == 2 else None
        tied = ("output.weight" not in t.names) if t.complete and "token_embd.weight" in t.names else None
        output = t.size("output.weight") + t.size("output_norm.weight")
        pattern = _bools(self.field(_PATTERN)) or ()
        return Architecture(
            family=self.family,
            block_count=self.count("block_count") or 0,
            head_count=heads,
            head_count_kv=heads if heads_kv is None else heads_kv,
            head_count_kv_given=heads_kv is not None,
            embedding_length=self.count("embedding_length") or 0,
            context_length=self.count("context_length") or 0,
            key_length=self.count("attention.key_length"),
            value_length=self.count("attention.value_length"),
            vocab_size=vocab or self.count("vocab_size") or self.tokens or 0,
            parameter_count=self.parameters or 0,
            tied_embeddings=tied,
            token_embd_bytes=t.size("token_embd.weight"),
            output_bytes=0 if tied else output,
            sliding_window=self.count("attention.sliding_window") or 0,
            sliding_window_pattern=pattern if len(pattern) == (self.count("block_count") or 0) else (),
            kv_lora_rank=self.count("attention.kv_lora_rank") or 0,
            rope_dimension=self.count("rope.dimension_count") or 0,
            expert_count=self.count("expert_count") or 0,
            expert_used_count=self.count("expert_used_count") or 0,
            embedding_model=self.field(_POOLING) is not None,
            vision=self.vision() if t.vision_known else None,
        )


def _read_kvs(p: _Parser, found: _Collector, kv_count: int) -> None:
    for _ in range(kv_count):
        key = p.key()
        vtype = p.u32()
        if key == _TOKENS and vtype == _ARRAY:
            etype, count = p.u32(), p.u64()
            found.tokens = count if count < 2**31 else None
            p._skip_elements(etype, count)
        elif found.wants(key):
            found.take(key, p.value(vtype))
        else:
            p.skip_value(vtype)


def _read_tensor_infos(p: _Parser, tensors: _Tensors, count: int) -> None:
    if count > _MAX_TENSORS:
        raise _Malformed
    for _ in range(count):
        name = p.string(_MAX_WANTED_STRING) or ""
        n_dims = p.u32()
        if n_dims > _MAX_DIMS:
            raise _Malformed
        dims = tuple(p.u64() for _ in range(n_dims))
        ggml_type = p.u32()
        p.u64()  # offset into the data section
        tensors.add(name, dims, ggml_type)
    tensors.complete = True


def parse_architecture(chunks: Iterable[bytes], *, limit: int = DEFAULT_LIMIT) -> Architecture | None:
    """The architecture from a GGUF header, or None when it cannot be read within `limit` bytes.

    Consumes `chunks` only as far as the end of the tensor infos. Never raises on bad
    bytes: truncated input returns what was complete by then (tensor sizes only once every
    tensor info was read), malformed input returns None.
    """
    stream = _Stream(chunks, limit)
    p = _Parser(stream)
    found = _Collector()
    try:
        if stream.read(4) != MAGIC or p.u32() not in (2, 3):
            return None
        tensor_count = p.u64()
        _read_kvs(p, found, p.u64())
        _read_tensor_infos(p, found.tensors, tensor_count)
    except _Truncated:
        if not found.tensors.complete:
            found.tensors = _Tensors()
    except (_Malformed, struct.error):
        return None
    return found.result()
