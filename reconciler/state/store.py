"""The state directory: small JSON files written atomically.

What is kept here is memory, not truth: the inventory of models the reconciler pulled
(so it never touches models pulled by hand, and knows the LRU order of its rollback
cache), what was last deployed, and the eviction history of pinned models. A missing,
truncated or corrupted file is rebuilt from observation with a warning — never a crash.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.observed import AppliedUpdate, DeployedObs, ImageTagsObs, InventoryEntry, UpstreamObs

T = TypeVar("T", bound=BaseModel)
EVICTION_WINDOW = timedelta(hours=1)


class Eviction(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    at: datetime
    suspects: tuple[str, ...] = ()  # models loaded when the pinned one was found gone


class Memory(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    inventory: tuple[InventoryEntry, ...] = ()
    deployed: DeployedObs = Field(default_factory=DeployedObs)
    warmed: dict[str, str] = Field(default_factory=dict)  # pinned model → container id it was loaded in
    evictions: dict[str, tuple[Eviction, ...]] = Field(default_factory=dict)
    last_applied: str | None = None
    upstream: dict[str, UpstreamObs] = Field(default_factory=dict)  # model → its last registry check
    notified: dict[str, str] = Field(default_factory=dict)  # notice key → the state last told
    recorded: dict[str, str] = Field(default_factory=dict)  # model → digest committed by record: commit
    image_tags: dict[str, ImageTagsObs] = Field(default_factory=dict)  # image → its last tag-list check
    applied_updates: dict[str, AppliedUpdate] = Field(default_factory=dict)  # model → its last update


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_model(path: Path, model: type[T], warn: Callable[[str], None]) -> T | None:
    try:
        return model.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError, ValueError) as exc:
        warn(f"{path} is unreadable ({type(exc).__name__}); rebuilding it from observation")
        return None


class StateStore:
    def __init__(self, root: Path, warn: Callable[[str], None] = lambda _: None) -> None:
        self.root = root
        self.warn = warn
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    @property
    def memory_path(self) -> Path:
        return self.root / "memory.json"

    def load(self) -> Memory:
        return read_model(self.memory_path, Memory, self.warn) or Memory()

    def save(self, memory: Memory) -> None:
        write_atomic(self.memory_path, memory.model_dump_json(indent=1))

    def update(self, change: Callable[[Memory], Memory]) -> Memory:
        memory = change(self.load())
        self.save(memory)
        return memory


def recent(evictions: tuple[Eviction, ...], at: datetime) -> tuple[Eviction, ...]:
    return tuple(e for e in evictions if at - e.at <= EVICTION_WINDOW)
