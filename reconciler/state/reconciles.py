"""The reconcile history behind `reconciler history`: one row per reconcile, with its events,
in an embedded SQLite file under the state directory (`reconciles.sqlite3`), bounded.

`Recorder` subscribes to the event bus of `serve` (and of `apply`): a reconcile opens on
serve's `trigger` (or on `reconcile.start` when nothing triggered it) and is written when
it ends (`reconcile.done`, `reconcile.rejected`). Only the newest MAX_RECONCILES are kept,
each with at most MAX_EVENTS events; progress ticks are not kept. Events carry references,
never secret values, as everywhere else.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_RECONCILES = 1000
MAX_EVENTS = 400
_SKIPPED = {"pull.progress", "load.progress"}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS reconciles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    trigger TEXT NOT NULL,
    revision TEXT NOT NULL,
    result TEXT NOT NULL,
    duration_s REAL NOT NULL,
    actions INTEGER NOT NULL,
    error TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    reconcile_id INTEGER NOT NULL REFERENCES reconciles(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (reconcile_id, seq)
);
"""


def history_path(state_dir: Path) -> Path:
    return state_dir / "reconciles.sqlite3"


@dataclass(frozen=True)
class Reconcile:
    id: int
    started_at: str
    trigger: str
    revision: str  # the first 12 characters, as the events name commits
    result: str
    duration_s: float
    actions: int
    error: str

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with closing(sqlite3.connect(path, timeout=10)) as db:
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA journal_mode = WAL")  # `history` reads while serve writes
        db.executescript(_SCHEMA)
        with db:
            yield db
    path.chmod(0o600)


def record(path: Path, row: Reconcile, events: list[dict[str, Any]], keep: int = MAX_RECONCILES) -> int:
    with _connect(path) as db:
        cursor = db.execute(
            "INSERT INTO reconciles (started_at, trigger, revision, result, duration_s, actions, error)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row.started_at, row.trigger, row.revision, row.result, row.duration_s, row.actions, row.error),
        )
        rid = int(cursor.lastrowid or 0)
        db.executemany(
            "INSERT INTO events (reconcile_id, seq, event) VALUES (?, ?, ?)",
            [(rid, seq, json.dumps(e, default=str)) for seq, e in enumerate(events[:MAX_EVENTS])],
        )
        db.execute("DELETE FROM reconciles WHERE id <= ?", (rid - keep,))
    return rid


def recent(path: Path, limit: int) -> list[Reconcile]:
    """The newest `limit` reconciles, newest first."""
    if not path.exists():
        return []
    with _connect(path) as db:
        rows = db.execute(
            "SELECT id, started_at, trigger, revision, result, duration_s, actions, error"
            " FROM reconciles ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
    return [Reconcile(*row) for row in rows]


def of_commit(path: Path, commit: str) -> tuple[Reconcile, list[dict[str, Any]]] | None:
    """The newest reconcile of `commit` (a prefix, or the full sha) that did something (ran
    actions, or did not converge), else its newest: a later no-op resync hides nothing."""
    if not path.exists():
        return None
    prefix = commit[:12].lower()
    with _connect(path) as db:
        row = db.execute(
            "SELECT id, started_at, trigger, revision, result, duration_s, actions, error FROM reconciles"
            " WHERE substr(revision, 1, ?) = ?"
            " ORDER BY (actions > 0 OR result != 'converged') DESC, id DESC LIMIT 1",
            (len(prefix), prefix),
        ).fetchone()
        if row is None:
            return None
        events = db.execute(
            "SELECT event FROM events WHERE reconcile_id = ? ORDER BY seq", (row[0],)
        ).fetchall()
    return Reconcile(*row), [json.loads(e[0]) for e in events]


@dataclass
class _Open:
    started_at: str
    trigger: str
    revision: str
    began: float
    events: list[dict[str, Any]] = field(default_factory=list)
    suspended: bool = False


class Recorder:
    """An event-bus subscriber that writes one row per reconcile when it ends."""

    def __init__(self, path: Path, default_trigger: str = "apply") -> None:
        self.path, self.default_trigger = path, default_trigger
        self._open: _Open | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        name = event["event"]
        if name == "trigger" or (name == "reconcile.start" and self._open is None):
            if name == "trigger" and self._open is not None:
                self._close("incomplete", 0, "ended without a result (see the events)")
            reasons = event.get("reasons")
            trigger = ",".join(map(str, reasons)) if isinstance(reasons, list) else self.default_trigger
            revision = str(event.get("head") or event.get("revision") or "")
            self._open = _Open(str(event.get("ts", "")), trigger, revision, time.monotonic())
        current = self._open
        if current is None or name in _SKIPPED:
            return
        current.revision = str(event.get("revision") or current.revision)
        current.suspended = current.suspended or name == "reconcile.suspended"
        current.events.append(event)
        if name == "reconcile.rejected":
            self._close("rejected", 0, "; ".join(map(str, event.get("problems") or [])))
        elif name == "reconcile.done":
            self._done(event)

    def _done(self, event: dict[str, Any]) -> None:
        result = str(event.get("result") or "preempted")
        assert self._open is not None
        if result == "planned" and self._open.suspended:
            result = "suspended"
        why = [str(v) for e in self._open.events if e["event"] == "plan" for v in e.get("violations") or []]
        why += [_note(n) for n in event.get("notes") or []] if result == "failed" else []
        self._close(result, int(event.get("actions") or 0), "; ".join(why) if result != "converged" else "")

    def _close(self, result: str, actions: int, error: str) -> None:
        current, self._open = self._open, None
        if current is None:
            return
        row = Reconcile(0, current.started_at, current.trigger, current.revision[:12], result,
                        round(time.monotonic() - current.began, 3), actions, error[:2000])  # fmt: skip
        with suppress(sqlite3.Error, OSError):  # a convenience: a full disk must not stop a reconcile
            record(self.path, row, current.events)


def _note(value: object) -> str:
    """A note of an event: `{"kind", "message"}` (a plain string in logs of older versions)."""
    return str(value.get("message", "")) if isinstance(value, dict) else str(value)
