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

from reconciler.apply.runner import Failure, Outcome
from reconciler.clock import FakeClock
from reconciler.errors import Conflict, EngineBusy, ReconcilerError
from reconciler.loop.journal import Journal
from reconciler.loop.lock import AlreadyRunning, ServeLock, serve_running
from reconciler.loop.queue import Backoff, Trigger, TriggerQueue
from reconciler.loop.serve import next_run
from reconciler.memory import Memory
from reconciler.plan.notes import RECHECK_MEMORY_S, Note, note
from reconciler.reconcile import ReconcileReport, Result, requeue_after_of
from reconciler.report.eventlog import EventLog, follow
from reconciler.report.events import EventBus
from reconciler.report.status import Condition, set_conditions
from reconciler.secrets import SecretUnavailable
from reconciler.state.store import StateStore


def test_triggers_that_arrive_together_come_out_as_one() -> None:
    clock = FakeClock()
    queue = TriggerQueue(clock)
    for trigger in [Trigger("push"), Trigger("push"), Trigger("docker", "die"), Trigger("resync")]:
        queue.put(trigger)
    assert queue.get(timeout=1) == {Trigger("push"), Trigger("docker", "die"), Trigger("resync")}
    assert queue.get(timeout=0.05) is None
    assert clock.monotonic() == 0.05  # waited out the timeout on fake time, not real time


def test_a_scheduled_retry_fires_exactly_when_due_and_drain_does_not_wait() -> None:
    clock = FakeClock()
    queue = TriggerQueue(clock)
    queue.put_later("retry", 120.0)
    assert queue.drain() == set()
    assert queue.get(timeout=60) is None and clock.monotonic() == 60
    assert queue.get(timeout=600) == {Trigger("retry")}
    assert clock.monotonic() == 120  # the two-minute backoff took no real time


def test_two_scheduled_triggers_fire_each_at_its_own_time() -> None:
    clock = FakeClock()
    queue = TriggerQueue(clock)
    queue.put_later("requeue", 30.0)
    queue.put_later("retry", 10.0)
    queue.put_later("retry", 50.0)  # the sooner time of a trigger scheduled twice wins
    assert queue.get(timeout=100) == {Trigger("retry")} and clock.monotonic() == 10
    assert queue.get(timeout=100) == {Trigger("requeue")} and clock.monotonic() == 30
    assert queue.get(timeout=5) is None


def test_close_wakes_a_waiting_consumer() -> None:
    queue = TriggerQueue(FakeClock())
    threading.Timer(0.05, queue.close).start()
    assert queue.get() is None  # no timeout: a real wait, ended by close()


def test_the_fake_clock_moves_the_events_and_the_journal_too(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 3, 1, tzinfo=UTC))
    seen: list[dict[str, object]] = []
    bus = EventBus(seen.append, clock=clock).bind(revision="abc")
    bus.emit("serve.started")
    clock.advance(90)
    bus.emit("serve.stopped")
    assert [e["ts"] for e in seen] == ["2026-03-01T00:00:00+00:00", "2026-03-01T00:01:30+00:00"]
    Journal(tmp_path, clock).begin("abc", "pull phi3:mini", "pull")
    entry = Journal(tmp_path).recover()
    assert entry is not None and entry.started_at == datetime(2026, 3, 1, 0, 1, 30, tzinfo=UTC)


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


def _report(result: Result, *errors: ReconcilerError, notes: tuple[Note, ...] = ()) -> ReconcileReport:
    outcome = Outcome(failed=[Failure(f"action {i}", e) for i, e in enumerate(errors)])
    report = ReconcileReport(result=result, revision="abc", outcomes=[outcome], notes=notes)
    report.requeue_after = requeue_after_of(report)
    return report


class _Zero(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def test_serve_comes_back_by_the_typed_result_alone() -> None:
    backoff = Backoff(base=2, cap=300, rng=_Zero())
    waiting = (note("no_room", "phi3:mini waits for 3 GiB another process holds"),)
    assert next_run(_report("degraded", notes=waiting), backoff) == ("requeue", RECHECK_MEMORY_S)
    assert next_run(_report("converged"), backoff) is None  # at the next trigger or resync
    assert next_run(_report("preempted"), backoff) == ("preempted", 0.0)
    blip = EngineBusy("the engine is busy")
    assert next_run(_report("failed", blip), backoff) == ("retry", 2.0)
    assert next_run(_report("failed", blip), backoff) == ("retry", 4.0)  # backoff grows
    assert next_run(_report("failed", Conflict("the row changed")), backoff) == ("retry", 0.0)
    missing = SecretUnavailable("OPENWEBUI_SECRET_KEY is not set: add it to /etc/reconciler/secrets.env")
    stalled = _report("failed", missing)
    assert stalled.stalled and next_run(stalled, backoff) is None  # Stalled: a new commit, SIGHUP
    assert next_run(_report("failed", blip), backoff) == ("retry", 2.0)  # reset by the stall


def test_a_failed_reconcile_never_asks_for_a_requeue_from_its_notes() -> None:
    waiting = (note("no_room", "waits for memory"),)
    assert _report("failed", SecretUnavailable("x"), notes=waiting).requeue_after is None
    assert _report("refused", notes=waiting).requeue_after == RECHECK_MEMORY_S


def test_serve_schedules_the_next_reconcile_by_the_report_on_fake_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model waiting for memory another process holds is looked at again in 30 s (not at the
    five-minute resync), and a blip is retried with backoff: each asserted to the second."""
    from reconciler.desired.load import load_desired
    from reconciler.desired.source import DirSource
    from reconciler.loop import serve
    from reconciler.report.status import load_status
    from reconciler.runtime import Runtime

    clock = FakeClock()
    runtime = Runtime(docker=None, state=StateStore(tmp_path / "state"), clock=clock)  # type: ignore[arg-type]
    server = serve.Server(serve.ServeConfig(repo=tmp_path / "repo"), runtime, EventBus(clock=clock))
    server.backoff = Backoff(base=2, cap=300, rng=_Zero())
    desired = load_desired(DirSource(Path(__file__).resolve().parents[3] / "desired_state"))
    waiting = (note("no_room", "phi3:mini waits for 3 GiB another process holds"),)
    reports = iter([_report("degraded", notes=waiting), _report("failed", EngineBusy("busy"))])
    monkeypatch.setattr(serve, "reconcile", lambda *args, **kwargs: next(reports))

    server._reconcile("a" * 40, desired)
    assert server.queue.get(timeout=600) == {Trigger("requeue")} and clock.monotonic() == RECHECK_MEMORY_S
    degraded = load_status(runtime.state.root).condition("Degraded")
    assert degraded is not None and degraded.status and degraded.reason == "Warnings"

    server._reconcile("a" * 40, desired)
    assert server.queue.get(timeout=600) == {Trigger("retry")} and clock.monotonic() == RECHECK_MEMORY_S + 2
    status = load_status(runtime.state.root)
    reconciling = status.condition("Reconciling")
    assert reconciling is not None and reconciling.reason == "RetryScheduled"
    assert status.updated_at == clock.now() - timedelta(seconds=2)  # written when the run ended
