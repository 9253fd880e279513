"""The serve loop's parts, without Docker: queue, backoff, lock, journal, event log, status."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.loop.journal import Journal
from reconciler.loop.lock import AlreadyRunning, ServeLock, serve_running
from reconciler.loop.queue import Backoff, TriggerQueue
from reconciler.memory import Memory
from reconciler.report.eventlog import EventLog, follow
from reconciler.report.status import Condition, set_conditions
from reconciler.state.store import StateStore


def test_triggers_that_arrive_together_come_out_as_one() -> None:
    queue = TriggerQueue()
    for reason in ["push", "push", "docker:die", "resync"]:
        queue.put(reason)
    assert queue.get(timeout=1) == {"push", "docker:die", "resync"}
    assert queue.get(timeout=0.05) is None


def test_a_scheduled_retry_fires_when_due_and_drain_does_not_wait() -> None:
    queue = TriggerQueue()
    queue.put_later("retry", 0.1)
    assert queue.drain() == set()
    start = time.monotonic()
    assert queue.get(timeout=2) == {"retry"}
    assert 0.08 <= time.monotonic() - start < 1.0


def test_close_wakes_a_waiting_consumer() -> None:
    queue = TriggerQueue()
    threading.Timer(0.05, queue.close).start()
    assert queue.get(timeout=5) is None


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    backoff = Backoff(base=2, cap=30, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [min(30, 2 * 2**i) for i in range(8)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 30
    backoff.reset()
    assert backoff.next_delay() <= 2


def test_a_second_serve_cannot_take_the_lock_and_status_sees_the_holder(tmp_path: Path) -> None:
    first = ServeLock(tmp_path)
    first.acquire()
    assert serve_running(tmp_path) == os.getpid()
    with pytest.raises(AlreadyRunning, match=r"another `reconciler serve` \(pid"):
        ServeLock(tmp_path).acquire()
    first.release()
    assert serve_running(tmp_path) is None


def test_an_apply_holds_the_state_dir_too_but_is_not_a_serve(tmp_path: Path) -> None:
    apply = ServeLock(tmp_path, role="apply")
    apply.acquire()
    assert serve_running(tmp_path) is None  # a push is not told a serve will apply it
    with pytest.raises(AlreadyRunning, match=r"another `reconciler apply` \(pid \d+\).*wait for it"):
        ServeLock(tmp_path).acquire()
    apply.release()
    ServeLock(tmp_path).acquire()


def test_the_journal_reports_the_action_that_was_in_flight_once(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.begin("abc123", "pull phi3:mini", "pull")
    entry = Journal(tmp_path).recover()
    assert entry is not None and entry.action == "pull phi3:mini" and entry.kind == "pull"
    assert Journal(tmp_path).recover() is None
    journal.begin("abc123", "x", "load")
    journal.end()
    assert journal.recover() is None


def test_corrupt_state_files_are_rebuilt_not_fatal(tmp_path: Path) -> None:
    warnings: list[str] = []
    store = StateStore(tmp_path, warnings.append)
    store.memory_path.write_text('{"inventory": [trunc')
    assert store.load() == Memory()
    assert warnings and "rebuilding" in warnings[0]
    (tmp_path / "journal.json").write_bytes(b"\x00\xff")
    assert Journal(tmp_path).recover() is None


def test_event_log_rotates_and_follow_skips_torn_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_bytes=400, keep=2)
    for index in range(30):
        log({"event": "e", "n": index})
    assert path.with_name("events.jsonl.1").exists() and not path.with_name("events.jsonl.3").exists()
    with path.open("a") as handle:
        handle.write('{"event": "torn"\n')
    log({"event": "after"})
    names = [e["event"] for e in follow(path, forever=False)]
    assert names[-1] == "after" and "torn" not in names
    for line in path.read_text().splitlines()[:-2]:
        json.loads(line)


def test_follow_sees_appends_across_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_bytes=300, keep=3)
    log({"event": "first"})
    seen: list[str] = []
    done = threading.Event()

    def reader() -> None:
        for event in follow(path, from_offset=None, stop=done.is_set, poll=0.01):
            seen.append(event["event"])
            if event["event"] == "last":
                done.set()

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.1)
    for index in range(20):
        log({"event": f"e{index}", "pad": "x" * 40})
    log({"event": "last"})
    thread.join(timeout=5)
    assert done.is_set() and seen[-1] == "last" and "first" not in seen


def test_conditions_keep_their_transition_time_until_they_flip() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    first = set_conditions([], {"Ready": (True, "Converged", "")}, t0)
    same = set_conditions(first, {"Ready": (True, "Converged", "again")}, t0 + timedelta(minutes=5))
    flipped = set_conditions(same, {"Ready": (False, "ActionFailed", "boom")}, t0 + timedelta(minutes=9))
    assert same[0].last_transition == t0 and same[0].message == "again"
    assert flipped[0] == Condition(
        type="Ready",
        status=False,
        reason="ActionFailed",
        message="boom",
        last_transition=t0 + timedelta(minutes=9),
    )


def test_memory_written_by_an_older_version_still_loads(tmp_path: Path) -> None:
    """Older versions kept `deployed.running_versions` (never read): the rest must survive."""
    store = StateStore(tmp_path)
    store.memory_path.write_text(
        '{"inventory": [{"name": "registry.ollama.ai/library/phi3:mini"}], '
        '"deployed": {"openwebui_spec_hash": "abc", "running_versions": ["abc"]}}'
    )
    memory = store.load()
    assert memory.deployed.openwebui_spec_hash == "abc" and len(memory.inventory) == 1
