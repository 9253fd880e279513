"""Read a model's architecture from the start of its GGUF file, incrementally (pure).

Format: ggml's `docs/gguf.md` (GGUF v2/v3, little-endian): magic `GGUF`, uint32 version,
uint64 tensor_count, uint64 kv_count, then kv_count × (gguf_string key, uint32 type, value).
A gguf_string is a uint64 length and that many UTF-8 bytes; an array is a uint32 element
type, a uint64 count and the elements. llama.cpp writes `general.*` first, then the
`<arch>.*` keys together, then the tokenizer (multi-MB arrays), so we stop once the
`<arch>.*` block has given us what sizes the KV cache (Ollama reads the same keys in
`fs/ggml/ggml.go` `KV.BlockCount/HeadCountKV/EmbeddingLength`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from reconciler.observed import Architecture

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
_MAX_WANTED_ARRAY = 4096  # per-layer head counts: one value per block
_MAX_DEPTH = 3

_REQUIRED = ("block_count", "attention.head_count", "embedding_length", "context_length")
# pooling_type: only embedding models have it (Ollama server/images.go Capabilities), so for the
# others the parser reads on to the end of the `<arch>.*` block.
_OPTIONAL = ("attention.head_count_kv", "attention.key_length", "attention.value_length", "pooling_type")


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


def _as_count(value: object) -> int | None:
    """A non-negative integer, or the largest of a per-layer list (Ollama takes the max too)."""
    if isinstance(value, list):
        counts = [_as_count(v) for v in value]
        known = [c for c in counts if c is not None]
        return max(known) if known and len(known) == len(counts) else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value < 2**31 else None


class _Collector:
    """The keys we look for. `<arch>.*` keys seen before `general.architecture` are kept
    as candidates, so the order of the header does not matter."""

    def __init__(self) -> None:
        self.family: str | None = None
        self.candidates: dict[str, int] = {}

    def wants(self, key: str) -> bool:
        _, _, field = key.partition(".")
        return key == "general.architecture" or field in _REQUIRED or field in _OPTIONAL

    def take(self, key: str, value: object) -> None:
        if key == "general.architecture":
            if isinstance(value, str) and value and value.isprintable():
                self.family = value
            return
        count = _as_count(value)
        if count is not None:
            self.candidates[key] = count

    @property
    def fields(self) -> dict[str, int]:
        if self.family is None:
            return {}
        prefix = f"{self.family}."
        return {k.removeprefix(prefix): v for k, v in self.candidates.items() if k.startswith(prefix)}

    @property
    def complete(self) -> bool:
        fields = self.fields
        return self.family is not None and all(k in fields for k in _REQUIRED)

    @property
    def all_found(self) -> bool:
        fields = self.fields
        return self.complete and all(k in fields for k in _OPTIONAL)

    def done_before(self, key: str) -> bool:
        """Enough read: every key we look for is in, or the `<arch>.*` block has ended."""
        return self.complete and (self.all_found or not key.startswith(f"{self.family}."))

    def result(self) -> Architecture | None:
        if not self.complete:
            return None
        assert self.family is not None
        f = self.fields
        return Architecture(
            family=self.family,
            block_count=f["block_count"],
            head_count=f["attention.head_count"],
            head_count_kv=f.get("attention.head_count_kv", f["attention.head_count"]),
            embedding_length=f["embedding_length"],
            context_length=f["context_length"],
            key_length=f.get("attention.key_length"),
            value_length=f.get("attention.value_length"),
            embedding_model="pooling_type" in f,
        )


def parse_architecture(chunks: Iterable[bytes], *, limit: int = DEFAULT_LIMIT) -> Architecture | None:
    """The architecture from a GGUF header, or None when it cannot be read within `limit` bytes.

    Consumes `chunks` only as far as needed. Never raises on bad bytes: truncated input
    returns what was complete by then, malformed input returns None.
    """
    stream = _Stream(chunks, limit)
    p = _Parser(stream)
    found = _Collector()
    try:
        if stream.read(4) != MAGIC or p.u32() not in (2, 3):
            return None
        p.u64()  # tensor_count
        kv_count = p.u64()
        for _ in range(kv_count):
            key = p.key()
            if found.done_before(key):
                break
            vtype = p.u32()
            if found.wants(key):
                found.take(key, p.value(vtype))
            else:
                p.skip_value(vtype)
            if found.all_found:
                break
    except _Truncated:
        pass
    except (_Malformed, struct.error):
        return None
    return found.result()
