"""Stable short hashes of specs: what a container label or a deploy version records."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel


def spec_hash(value: BaseModel | dict[str, Any] | list[Any]) -> str:
    data = value.model_dump(mode="json", by_alias=True) if isinstance(value, BaseModel) else value
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
