"""The state directory: small JSON files written atomically.

What is kept here is the reconciler's memory (`reconciler.memory`), not truth. A missing,
truncated or corrupted file is rebuilt from observation with a warning — never a crash.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from reconciler.memory import Memory
from reconciler.observed import Ledger

T = TypeVar("T", bound=BaseModel)


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

    @property
    def ledger_path(self) -> Path:
        return self.root / "openwebui.json"

    def load_ledger(self) -> Ledger:
        """What the reconciler made in OpenWebUI (`reconciler.observed.Ledger`)."""
        return read_model(self.ledger_path, Ledger, self.warn) or Ledger()

    def update_ledger(self, change: Callable[[Ledger], Ledger]) -> Ledger:
        """Saved after every write to OpenWebUI: a crash leaves nothing unowned."""
        ledger = change(self.load_ledger())
        write_atomic(self.ledger_path, ledger.model_dump_json(indent=1))
        return ledger
