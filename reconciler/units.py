"""Byte sizes as users write them ("120GiB", "7.5 GB", 4096) and as we print them."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE_RE = re.compile(r"[ \t]*([0-9]{1,30}(?:\.[0-9]{1,30})?)[ \t]*([a-zA-Z]*)[ \t]*", re.ASCII)
MAX_BYTES = 2**62  # far beyond any disk; keeps arithmetic in int64 for JSON consumers


def parse_bytes(value: object) -> int:
    """Parse an int or a string such as "120GiB" / "7.5 GB" into bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 120GiB or a number of bytes, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("a size must be a finite number of bytes")
        number = int(value) if abs(value) <= MAX_BYTES else MAX_BYTES + 1
    elif isinstance(value, str):
        match = _SIZE_RE.fullmatch(value)
        if match is None or match.group(2).lower() not in _UNITS:
            raise ValueError(
                "not a size: write a number of bytes or a number with a unit "
                "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 120GiB"
            )
        number = int(Decimal(match.group(1)) * _UNITS[match.group(2).lower()])
    else:
        raise ValueError("expected a size such as 120GiB or a number of bytes")
    if number < 0:
        raise ValueError("a size cannot be negative")
    if number > MAX_BYTES:
        raise ValueError(f"larger than any disk or GPU (max {format_bytes(MAX_BYTES)})")
    return number


def format_bytes(n: int) -> str:
    """Binary units with one decimal: 4.7 GiB, 512.0 MiB, 900 B."""
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor:
            return f"{sign}{n / factor:.1f} {unit}"
    return f"{sign}{n} B"


def _validate(value: Any) -> int:
    return parse_bytes(value)


ByteSize = Annotated[
    int,
    BeforeValidator(_validate),
    PlainSerializer(lambda v: v, return_type=int),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([KMGT]i?B|B)?\s*$"},
            ],
            "description": "bytes, or a number with a unit: 120GiB, 7.5GB, 512MiB",
        }
    ),
]
