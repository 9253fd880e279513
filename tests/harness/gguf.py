"""Write tiny but valid GGUF v3 files for tests; read them back.

Layout (llama.cpp gguf.md; Ollama fs/ggml/gguf.go): magic ``GGUF``, ``uint32 version=3``,
``uint64 tensor_count=0``, ``uint64 kv_count``, the metadata KVs, then zero padding to
``general.alignment`` (32) and deterministic pseudo-random filler up to the requested size.
The reader is the fake server's own stdlib copy (it runs inside the container).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.fake_ollama.gguf_reader import (
    FILE_TYPES,
    T_FLOAT32,
    T_STRING,
    T_UINT32,
    T_UINT64,
    file_type_name,
    human_number,
    read_gguf_metadata,
)

__all__ = [
    "FILE_TYPES",
    "GGUFSpec",
    "file_type_name",
    "human_number",
    "make_gguf",
    "read_gguf_metadata",
    "write_gguf",
]

ALIGNMENT = 32


def _string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: str, vtype: int, value: Any) -> bytes:
    out = _string(key) + struct.pack("<I", vtype)
    if vtype == T_STRING:
        return out + _string(str(value))
    if vtype == T_UINT32:
        return out + struct.pack("<I", int(value))
    if vtype == T_UINT64:
        return out + struct.pack("<Q", int(value))
    if vtype == T_FLOAT32:
        return out + struct.pack("<f", float(value))
    raise ValueError(f"unsupported type {vtype}")


@dataclass(frozen=True)
class GGUFSpec:
    """The metadata the fake (and Ollama's estimator) reads from a model GGUF."""

    arch: str = "llama"
    name: str = "tiny"
    parameter_count: int = 8_030_261_248
    file_type: int = 15  # llama.cpp ftype: 15 Q4_K_M, 2 Q4_0, 7 Q8_0, 1 F16
    block_count: int = 4
    context_length: int = 8192
    embedding_length: int = 64
    head_count: int = 4
    head_count_kv: int = 2
    size_bytes: int = 256 * 1024
    seed: str = ""
    pooling_type: int | None = None  # set: an embedding model (`<arch>.pooling_type`, e.g. 1 = mean)

    def metadata(self) -> list[tuple[str, int, Any]]:
        a = self.arch
        pooling = [] if self.pooling_type is None else [(f"{a}.pooling_type", T_UINT32, self.pooling_type)]
        return [
            ("general.architecture", T_STRING, a),
            ("general.name", T_STRING, self.name),
            ("general.parameter_count", T_UINT64, self.parameter_count),
            ("general.file_type", T_UINT32, self.file_type),
            ("general.alignment", T_UINT32, ALIGNMENT),
            (f"{a}.block_count", T_UINT32, self.block_count),
            (f"{a}.context_length", T_UINT32, self.context_length),
            (f"{a}.embedding_length", T_UINT32, self.embedding_length),
            (f"{a}.attention.head_count", T_UINT32, self.head_count),
            (f"{a}.attention.head_count_kv", T_UINT32, self.head_count_kv),
            *pooling,
        ]


def _filler(seed: bytes, n: int) -> bytes:
    """Deterministic pseudo-random bytes: sha256 in counter mode (fast enough for a few MB)."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        block = hashlib.sha256(seed + counter.to_bytes(8, "little")).digest()
        out += block * 64  # 2 KiB per hash: plenty random for a digest, cheap to make
        counter += 1
    return bytes(out[:n])


def make_gguf(spec: GGUFSpec) -> bytes:
    """Bytes of a GGUF v3 file for ``spec`` (exactly ``spec.size_bytes`` long when that is larger
    than the header). Same spec → same bytes → same digest, so two tags can share a blob."""
    meta = spec.metadata()
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, len(meta))
    header += b"".join(_kv(k, t, v) for k, t, v in meta)
    header += b"\0" * (-len(header) % ALIGNMENT)
    seed = repr(spec).encode()
    return header + _filler(seed, max(0, spec.size_bytes - len(header)))


def write_gguf(path: str | Path, spec: GGUFSpec) -> Path:
    path = Path(path)
    path.write_bytes(make_gguf(spec))
    return path
