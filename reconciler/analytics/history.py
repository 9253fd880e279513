"""The benchmark history: an SQLite database under the state directory (no server to run).

`<state>/bench/history.sqlite3` (0600) holds one row per benchmark run — when, the
desired-state commit, the Ollama version, whether the server said its figures are simulated,
the GPU's name and driver — and one row per model measured in it, with the figures the
report and the advisor read as columns and the whole `ModelResult` as JSON. A file SQLite
cannot read is moved aside (`history.sqlite3.unreadable-<time>`) with a warning and a new
history is started, so a damaged file never stops a benchmark.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from reconciler.analytics.results import BenchRun, Machine, ModelResult, settings_key
from reconciler.desired.schema import DesiredState
from reconciler.observed import BenchObs, Observed

SCHEMA_VERSION = 2  # 2: runs.models (what a run was to measure: a busy or interrupted run defers them)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    revision TEXT,
    ollama_version TEXT,
    simulated TEXT,
    gpu_name TEXT,
    gpu_driver TEXT,
    gpu_total INTEGER,
    gpu_note TEXT,
    status TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    models TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    digest TEXT NOT NULL,
    quantization TEXT NOT NULL,
    settings_key TEXT NOT NULL,
    num_ctx INTEGER NOT NULL,
    kv_type TEXT NOT NULL,
    eval_tps REAL,
    prompt_tps REAL,
    ttft_s REAL,
    load_s REAL,
    size INTEGER NOT NULL,
    size_vram INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_by_model ON results (model, run_id);
CREATE INDEX IF NOT EXISTS results_by_key ON results (settings_key);
"""


def history_path(state_dir: Path) -> Path:
    return state_dir / "bench" / "history.sqlite3"


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at is not None else None


class History:
    def __init__(self, path: Path, warn: Callable[[str], None] = lambda _: None) -> None:
        self.path = path
        self.warn = warn

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fresh = not self.path.exists()
        conn = self._open()
        if fresh:
            os.chmod(self.path, 0o600)
        try:
            with conn:  # one transaction: committed on success, rolled back on error
                yield conn
        finally:
            conn.close()

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.unreadable-{datetime.now(UTC):%Y%m%dT%H%M%S}")
            self.path.replace(aside)
            self.warn(f"{self.path} could not be read ({exc}); moved to {aside.name}, starting a new history")
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {version} is newer than this reconciler's")
            conn.executescript(_SCHEMA)
            if 0 < version < 2:
                conn.execute("ALTER TABLE runs ADD COLUMN models TEXT NOT NULL DEFAULT '[]'")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    # -- writing ------------------------------------------------------------------------------
    def record(self, run: BenchRun) -> int:
        """Store a run and its results; returns the run's id."""
        m = run.machine
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO runs (started_at, finished_at, revision, ollama_version, simulated, gpu_name,"
                " gpu_driver, gpu_total, gpu_note, status, note, models)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_iso(run.started_at), _iso(run.finished_at), run.revision, m.ollama_version, m.simulated,
                 m.gpu_name, m.gpu_driver, m.gpu_total, m.gpu_note, run.status, run.note,
                 json.dumps(list(run.models))),
            )  # fmt: skip
            run_id = int(cursor.lastrowid or 0)
            for r in run.results:
                db.execute(
                    "INSERT INTO results (run_id, model, digest, quantization, settings_key, num_ctx,"
                    " kv_type, eval_tps, prompt_tps, ttft_s, load_s, size, size_vram, detail)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, r.model, r.digest, r.quantization,
                     settings_key(r.model, r.digest, r.setting, m.ollama_version), r.setting.num_ctx,
                     r.setting.kv_type, _median(r.eval_tps), _median(r.prompt_tps), _median(r.ttft_s),
                     _median(r.load_s), r.size, r.size_vram, r.model_dump_json()),
                )  # fmt: skip
        return run_id

    # -- reading ------------------------------------------------------------------------------
    def runs(self, limit: int | None = None) -> list[BenchRun]:
        """Every run, oldest first (the newest `limit` when given), with its results."""
        if not self.path.exists():
            return []
        with self._db() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit or -1,)).fetchall()
            names = [d[0] for d in db.execute("SELECT * FROM runs LIMIT 0").description]
            found = []
            for row in reversed(rows):
                data = dict(zip(names, row, strict=True))
                details = db.execute(
                    "SELECT detail FROM results WHERE run_id = ? ORDER BY id", (data["id"],)
                ).fetchall()
                found.append(_run(data, tuple(ModelResult.model_validate_json(d[0]) for d in details)))
            return found

    def latest(self) -> dict[str, tuple[BenchRun, ModelResult]]:
        """The newest result of each model (from runs that completed or measured it before stopping)."""
        newest: dict[str, tuple[BenchRun, ModelResult]] = {}
        for run in self.runs():
            for result in run.results:
                newest[result.model] = (run, result)
        return newest

    def deferred(self) -> dict[str, datetime]:
        """Models whose latest benchmark attempt did not complete (people used Ollama), and when."""
        found: dict[str, datetime] = {}
        for run in self.runs():
            for name in run.models:
                if run.status in ("busy", "interrupted") and name not in {r.model for r in run.results}:
                    found[name] = run.started_at
                elif name in {r.model for r in run.results}:
                    found.pop(name, None)
        return found

    def benchmarked(self) -> set[str]:
        """Settings keys already measured (a model is benchmarked again when its key changes)."""
        if not self.path.exists():
            return set()
        with self._db() as db:
            return {row[0] for row in db.execute("SELECT DISTINCT settings_key FROM results")}


def _median(stat: object) -> float | None:
    return getattr(stat, "median", None)


def _run(data: dict[str, object], results: tuple[ModelResult, ...]) -> BenchRun:
    def text(key: str) -> str | None:
        value = data.get(key)
        return str(value) if value is not None else None

    total = data.get("gpu_total")
    return BenchRun(
        id=int(str(data["id"])),
        started_at=datetime.fromisoformat(str(data["started_at"])),
        finished_at=datetime.fromisoformat(str(data["finished_at"])) if data.get("finished_at") else None,
        revision=text("revision"),
        machine=Machine(
            ollama_version=text("ollama_version"),
            simulated=text("simulated"),
            gpu_name=text("gpu_name"),
            gpu_driver=text("gpu_driver"),
            gpu_total=int(str(total)) if total is not None else None,
            gpu_note=text("gpu_note"),
        ),
        status=str(data["status"]),
        note=str(data.get("note") or ""),
        models=tuple(json.loads(str(data.get("models") or "[]"))),
        results=results,
    )


def with_benchmarks(observed: Observed, desired: DesiredState, state_dir: Path, at: datetime) -> Observed:
    """What the history says, for the planner's `benchmarks.on_change` (read only when it is on,
    so a reconcile without it does not touch the database)."""
    if not desired.ollama.benchmarks.on_change:
        return observed
    history = History(history_path(state_dir))
    seen = BenchObs(
        benchmarked=tuple(sorted(history.benchmarked())),
        deferred=tuple(sorted(history.deferred().items())),
        clock=at.astimezone(),  # the server's local time: benchmarks.window is written in it
    )
    return observed.model_copy(update={"bench": seen})
