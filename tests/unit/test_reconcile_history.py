"""The reconcile history: rows from the event stream, bounded, read back by commit."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from reconciler.state.reconciles import Reconcile, Recorder, history_path, of_commit, recent, record

A, B = "a1" * 20, "b2" * 20


def feed(recorder: Recorder, *events: dict[str, Any]) -> None:
    for event in events:
        recorder({"ts": "2026-12-02T00:10:00+00:00", **event})


def test_each_reconcile_is_one_row_with_its_trigger_result_actions_and_error(tmp_path: Path) -> None:
    path = history_path(tmp_path)
    rec = Recorder(path, default_trigger="serve")
    feed(
        rec,
        {"event": "trigger", "reasons": ["push"], "head": A[:12]},
        {"event": "reconcile.start", "revision": A[:12]},
        {"event": "plan", "revision": A[:12], "actions": ["pull x — not present"], "violations": []},
        {"event": "pull.progress", "revision": A[:12], "percent": 50},
        {"event": "reconcile.done", "revision": A[:12], "result": "converged", "actions": 1, "notes": []},
    )
    feed(
        rec,
        {"event": "trigger", "reasons": ["resync"], "head": B[:12]},
        {"event": "reconcile.start", "revision": B[:12]},
        {"event": "plan", "revision": B[:12], "actions": [], "violations": ["disk: 2 GiB over budget 1 GiB"]},
        {"event": "reconcile.done", "revision": B[:12], "result": "refused", "actions": 0, "notes": []},
    )
    feed(
        rec,
        {"event": "trigger", "reasons": ["push"], "head": B[:12]},
        {"event": "reconcile.rejected", "revision": B[:12], "problems": ["ollama.yaml:5:9: container.gpus"]},
    )
    rows = recent(path, 10)
    assert [(r.trigger, r.revision, r.result, r.actions) for r in rows] == [
        ("push", B[:12], "rejected", 0),
        ("resync", B[:12], "refused", 0),
        ("push", A[:12], "converged", 1),
    ]
    assert rows[1].error == "disk: 2 GiB over budget 1 GiB" and "container.gpus" in rows[0].error
    found = of_commit(path, A)
    assert found is not None
    row, events = found
    assert row.result == "converged" and [e["event"] for e in events] == [
        "trigger",
        "reconcile.start",
        "plan",
        "reconcile.done",
    ]  # progress ticks are not kept
    assert of_commit(path, "ffff") is None and recent(tmp_path / "none.sqlite3", 5) == []


def test_a_suspended_reconcile_and_apply_without_a_trigger_are_recorded(tmp_path: Path) -> None:
    path = history_path(tmp_path)
    feed(
        Recorder(path),
        {"event": "reconcile.start", "revision": A[:12]},
        {"event": "reconcile.done", "revision": A[:12], "result": "converged", "actions": 0},
    )
    feed(
        Recorder(path, "serve"),
        {"event": "trigger", "reasons": ["push"], "head": B[:12]},
        {"event": "reconcile.suspended", "revision": B[:12], "reason": "tuning"},
        {"event": "reconcile.start", "revision": B[:12]},
        {"event": "reconcile.done", "revision": B[:12], "result": "planned", "actions": 0},
    )
    assert [(r.trigger, r.result) for r in recent(path, 5)] == [("push", "suspended"), ("apply", "converged")]


def test_the_store_keeps_only_the_newest_reconciles_and_their_events(tmp_path: Path) -> None:
    path = history_path(tmp_path)
    for i in range(30):
        row = Reconcile(0, f"2026-12-02T00:{i:02}:00", "push", f"{i:012}", "converged", 0.1, 0, "")
        record(path, row, [{"event": "reconcile.done", "n": i}], keep=10)
    rows = recent(path, 100)
    assert len(rows) == 10 and rows[0].revision == f"{29:012}" and rows[-1].revision == f"{20:012}"
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone() == (10,)
    assert path.stat().st_mode & 0o777 == 0o600
