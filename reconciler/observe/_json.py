"""Reading the loosely typed JSON Docker and OpenWebUI answer with (one helper, not one per reader)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def as_mapping(value: object) -> Mapping[str, Any]:
    """`value` when it is a JSON object, else an empty one (a field missing or of the wrong type)."""
    return value if isinstance(value, Mapping) else {}
