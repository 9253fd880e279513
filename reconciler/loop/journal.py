"""The action in flight, written before it starts and cleared when it ends.

After a crash (`kill -9`, power loss) the next `serve` finds the entry, reports it,
and reconciles: every action is idempotent and the reconcile observes again, so the
interrupted action is redone only as far as it had not happened (Ollama resumes a
partial pull from its `-partial` blobs; a half-recreated container is created).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from reconciler.clock import SYSTEM, Clock
from reconciler.state.store import read_model, write_atomic


class InFlight(BaseModel):
    revision: str | None
    action: str
    kind: str
    started_at: datetime


class Journal:
    def __init__(self, state_dir: Path, clock: Clock = SYSTEM) -> None:
        self.path = state_dir / "journal.json"
        self.clock = clock

    def begin(self, revision: str | None, action: str, kind: str) -> None:
        entry = InFlight(revision=revision, action=action, kind=kind, started_at=self.clock.now())
        write_atomic(self.path, entry.model_dump_json())

    def end(self) -> None:
        self.path.unlink(missing_ok=True)

    def recover(self) -> InFlight | None:
        """What was in flight when the last process died (and forget it)."""
        entry = read_model(self.path, InFlight, lambda _: None)
        self.path.unlink(missing_ok=True)
        return entry
