"""The record of running Kamal processes: which deploy lock is a dead run's, safe to release."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from reconciler.kamal import runs
from reconciler.kamal.output import lock_version

# What kamal 2.11.0 prints when `mkdir .kamal/lock-<service>` finds the lock (captured here).
LOCK_FOUND = [
    "Acquiring the deploy lock...",
    "Deploy lock already in place!",
    "Locked by: Owner at 2026-11-25T10:59:04Z",
    "Version: 6b917d28aa4826a4",
    "Message: Automatic deploy lock",
    "  ERROR (Kamal::Cli::LockError): Deploy lock found. Run 'kamal lock help' for more information",
]


def _dead_run(version: str | None = "6b917d28aa4826a4") -> runs.KamalRun:
    proc = subprocess.Popen(["sleep", "30"])
    run = runs.KamalRun(proc.pid, runs.process_started(proc.pid) or "", "kamal deploy", version)
    proc.kill()
    proc.wait()
    return run


def test_a_live_process_has_a_start_time_and_a_dead_or_zombie_one_has_none() -> None:
    assert runs.process_started(os.getpid()) is not None
    proc = subprocess.Popen(["sleep", "30"])
    live = runs.KamalRun(proc.pid, runs.process_started(proc.pid) or "", "kamal deploy", "v1")
    assert runs.alive(live)
    os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while runs.alive(live) and time.monotonic() < deadline:  # killed, not yet reaped: a zombie
        time.sleep(0.01)
    assert Path(f"/proc/{proc.pid}").exists()  # still a zombie here: only wait() reaps it
    assert not runs.alive(live)
    proc.wait()
    assert runs.process_started(proc.pid) is None


def test_a_reused_pid_is_not_the_recorded_run() -> None:
    run = runs.KamalRun(os.getpid(), "1", "kamal deploy", "v1")  # same pid, another start time
    assert not runs.alive(run)


def test_runs_are_recorded_while_they_run_and_forgotten_when_they_end(tmp_path: Path) -> None:
    pending = runs.begin(tmp_path, "kamal deploy --version=v2", "v2")
    assert runs.interrupted(tmp_path) == [pending] and pending.pid == 0 and pending.tag
    proc = subprocess.Popen(["sleep", "30"])
    try:
        run = runs.started(tmp_path, pending, proc.pid)
        assert runs.interrupted(tmp_path) == [run] and run.tag == pending.tag and runs.alive(run)
        other = _dead_run("v1")
        runs.ended(tmp_path, other)  # not recorded: nothing changes
        assert runs.interrupted(tmp_path) == [run]
        runs.ended(tmp_path, run)
        assert runs.interrupted(tmp_path) == [] and not (tmp_path / runs.RECORD).exists()
    finally:
        proc.kill()
        proc.wait()


def test_an_unreadable_record_means_nothing_is_left(tmp_path: Path) -> None:
    (tmp_path / runs.RECORD).write_text('{"pid": "x"')
    assert runs.interrupted(tmp_path) == []
    (tmp_path / runs.RECORD).write_text('[{"pid": 1}]')
    assert runs.interrupted(tmp_path) == []


def test_only_a_dead_runs_own_lock_is_stale() -> None:
    dead = _dead_run("6b917d28aa4826a4")
    assert lock_version(LOCK_FOUND) == "6b917d28aa4826a4"
    assert runs.stale_lock_owner([dead], lock_version(LOCK_FOUND)) == dead
    assert (
        runs.stale_lock_owner([_dead_run("another")], lock_version(LOCK_FOUND)) is None
    )  # someone else's lock
    assert (
        runs.stale_lock_owner([dead], lock_version([ln for ln in LOCK_FOUND if "Version" not in ln])) is None
    )
    assert runs.stale_lock_owner([], lock_version(LOCK_FOUND)) is None
    started = runs.process_started(os.getpid()) or ""
    me = runs.KamalRun(os.getpid(), started, "kamal deploy", "6b917d28aa4826a4")
    assert runs.stale_lock_owner([me], lock_version(LOCK_FOUND)) is None  # alive: wait, never release


def test_the_version_comes_from_the_arguments() -> None:
    assert runs.version_of(["deploy", "--skip-push", "--version=abc"]) == "abc"
    assert runs.version_of(["lock", "release"]) is None


def test_a_run_whose_pid_was_never_recorded_is_found_by_its_tag(tmp_path: Path) -> None:
    """The reconciler died between recording the run and starting Kamal, or just after."""
    pending = runs.begin(tmp_path, "kamal deploy --version=6b917d28aa4826a4", "6b917d28aa4826a4")
    assert not runs.alive(pending)  # nothing carries its tag: Kamal never started, or is gone
    kamal = subprocess.Popen(["sleep", "30"], env={**os.environ, runs.ENV_TAG: pending.tag})
    try:
        assert runs.alive(pending)  # an orphaned Kamal still running: waited for, never released
        assert runs.stale_lock_owner(runs.interrupted(tmp_path), lock_version(LOCK_FOUND)) is None
    finally:
        kamal.kill()
        kamal.wait()
    assert not runs.alive(pending)
    assert runs.stale_lock_owner(runs.interrupted(tmp_path), lock_version(LOCK_FOUND)) == pending
    other = runs.KamalRun(0, "", "kamal deploy", "6b917d28aa4826a4", tag="")
    assert not runs.alive(other)  # an old record without a tag: nothing to find, nothing runs
