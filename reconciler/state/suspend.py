"""Suspension: while `suspended.json` exists under the state directory, `serve` validates and
records each commit and reports drift, but changes nothing (`reconciler suspend`/`resume`).

A file that exists but cannot be read still suspends: losing the owner's "hands off" to a
torn write must never let the reconciler act.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.errors import EXIT_RUNTIME, PermanentError
from reconciler.state.store import write_atomic

MAX_REASON = 500


class Suspended(PermanentError):
    """A change was asked for while suspended (`apply`): resume first."""

    exit_code = EXIT_RUNTIME


class Suspension(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    since: datetime
    reason: str = Field(default="", max_length=MAX_REASON)
    by: str = ""

    def describe(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        who = f" by {self.by}" if self.by else ""
        return f"suspended since {self.since.isoformat(timespec='seconds')}{who}{why}"


def suspension_path(state_dir: Path) -> Path:
    return state_dir / "suspended.json"


def load_suspension(state_dir: Path) -> Suspension | None:
    path = suspension_path(state_dir)
    try:
        return Suspension.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError, ValueError) as exc:
        at = datetime.fromtimestamp(_mtime(path), UTC)
        return Suspension(
            since=at, reason=f"{path.name} is unreadable ({type(exc).__name__}); resume clears it"
        )


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return datetime.now(UTC).timestamp()


def suspend(state_dir: Path, reason: str, at: datetime | None = None) -> Suspension:
    """Suspend (again: the reason is replaced, the start time kept)."""
    before = load_suspension(state_dir)
    since = before.since if before is not None else (at or datetime.now(UTC))
    value = Suspension(since=since, reason=" ".join(reason.split())[:MAX_REASON], by=_user())
    write_atomic(suspension_path(state_dir), value.model_dump_json())
    return value


def resume(state_dir: Path) -> Suspension | None:
    """Resume; returns the suspension that ended (None: it was not suspended)."""
    before = load_suspension(state_dir)
    suspension_path(state_dir).unlink(missing_ok=True)
    return before


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
