"""GGUF header reader (stdlib only; runs inside the fake-ollama container).

Format: GGUF v2/v3 as written by llama.cpp (ggml/docs gguf.md; Ollama's reader is fs/ggml/gguf.go):
little-endian ``magic "GGUF"``, ``uint32 version``, ``uint64 tensor_count``, ``uint64 kv_count``,
then ``kv_count`` entries of ``(gguf_string key, uint32 type, value)``; a gguf_string is
``uint64 length + UTF-8 bytes``. Only the metadata is read; tensor infos and data are skipped.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

GGUF_MAGIC = b"GGUF"

# gguf_type ids (gguf.md "gguf_metadata_value_type")
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL = range(8)
T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = 8, 9, 10, 11, 12

_SCALARS: dict[int, str] = {
    T_UINT8: "<B",
    T_INT8: "<b",
    T_UINT16: "<H",
    T_INT16: "<h",
    T_UINT32: "<I",
    T_INT32: "<i",
    T_FLOAT32: "<f",
    T_BOOL: "<?",
    T_UINT64: "<Q",
    T_INT64: "<q",
    T_FLOAT64: "<d",
}

# llama.cpp ``llama_ftype`` -> the name Ollama prints as quantization_level
# (Ollama fs/ggml/type.go ``FileType.String``).
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    32: "BF16",
}


class GGUFError(ValueError):
    pass


def _read(fh: BinaryIO, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise GGUFError("unexpected end of GGUF header")
    return data


def _read_string(fh: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", _read(fh, 8))
    if length > 1 << 24:
        raise GGUFError(f"implausible GGUF string length {length}")
    return _read(fh, length).decode("utf-8", errors="replace")


def _read_value(fh: BinaryIO, vtype: int) -> Any:
    fmt = _SCALARS.get(vtype)
    if fmt is not None:
        return struct.unpack(fmt, _read(fh, struct.calcsize(fmt)))[0]
    if vtype == T_STRING:
        return _read_string(fh)
    if vtype == T_ARRAY:
        (etype,) = struct.unpack("<I", _read(fh, 4))
        (count,) = struct.unpack("<Q", _read(fh, 8))
        if count > 1 << 24:
            raise GGUFError(f"implausible GGUF array length {count}")
        return [_read_value(fh, etype) for _ in range(count)]
    raise GGUFError(f"unknown GGUF value type {vtype}")


def read_gguf_stream(fh: BinaryIO) -> dict[str, Any]:
    """Metadata of the GGUF file open in ``fh`` (positioned at its start)."""
    if _read(fh, 4) != GGUF_MAGIC:
        raise GGUFError("not a GGUF file (bad magic)")
    (version,) = struct.unpack("<I", _read(fh, 4))
    if version not in (2, 3):
        raise GGUFError(f"unsupported GGUF version {version}")
    tensor_count, kv_count = struct.unpack("<QQ", _read(fh, 16))
    meta: dict[str, Any] = {}
    for _ in range(kv_count):
        key = _read_string(fh)
        (vtype,) = struct.unpack("<I", _read(fh, 4))
        meta[key] = _read_value(fh, vtype)
    meta["__gguf_version__"] = version
    meta["__tensor_count__"] = tensor_count
    return meta


def read_gguf_metadata(source: str | Path | bytes) -> dict[str, Any]:
    """Metadata of a GGUF file given as a path or as its bytes (at least the header)."""
    if isinstance(source, bytes | bytearray):
        import io

        return read_gguf_stream(io.BytesIO(bytes(source)))
    with open(source, "rb") as fh:
        return read_gguf_stream(fh)


def human_number(n: int) -> str:
    """Ollama's ``format.HumanNumber`` (format/format.go, v0.6.x): 8030261248 -> "8.0B", 7e9 -> "7B",
    1.5e6 -> "1.50M", 1500 -> "2K"."""
    if n >= 1_000_000_000:
        value = n / 1_000_000_000
        return f"{value:.0f}B" if value == int(value) else f"{value:.1f}B"
    if n >= 1_000_000:
        value = n / 1_000_000
        return f"{value:.0f}M" if value == int(value) else f"{value:.2f}M"
    if n >= 1_000:
        return f"{n / 1_000:.0f}K"
    return str(n)


def file_type_name(ftype: int | None) -> str:
    if ftype is None:
        return ""
    return FILE_TYPES.get(int(ftype), f"unknown({ftype})")
