"""What a Kamal run leaves behind when the reconciler dies under it.

Kamal takes a deploy lock (a directory on the server) and removes it when it ends. A
`kill -9` of the reconciler, or systemd stopping its control group, can kill Kamal in between,
and the lock then stays forever: every later deploy fails with "Deploy lock found". The
executor records the Kamal process it starts (pid and kernel start time, so a reused pid is
not mistaken for it) in the project directory and clears the record when Kamal exits. The
record is written before the process starts, with a tag Kamal inherits in its environment,
so a reconciler killed between the two leaves a run that can still be found. A record
still there at the next run names a Kamal that was interrupted: while that process lives it is
waited for; once it is gone, a lock carrying its version is that run's and is released. A lock
anyone else holds is never touched.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path

RECORD = "kamal-run.json"
ENV_TAG = "RECONCILER_KAMAL_RUN"  # set in Kamal's environment: finds a run whose pid was never recorded


@dataclass(frozen=True)
class KamalRun:
    pid: int
    started: str  # field 22 of /proc/<pid>/stat: the process's start time in clock ticks
    command: str
    version: str | None
    tag: str = ""


def process_started(pid: int) -> str | None:
    """The kernel's start time of `pid`, or None when no such process runs (a zombie, killed
    and not yet reaped by its new parent, runs no more)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the command name may hold spaces
    if len(fields) <= 19 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _tagged(tag: str) -> bool:
    """Whether a process carries `ENV_TAG=tag` in its environment (ours to read: same user)."""
    wanted = f"{ENV_TAG}={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                return True
        except OSError:
            continue  # gone, or not ours
    return False


def alive(run: KamalRun) -> bool:
    if run.pid == 0:  # started, or about to be, when its reconciler died: only the tag tells
        return bool(run.tag) and _tagged(run.tag)
    return process_started(run.pid) == run.started


def _load(workdir: Path) -> list[KamalRun]:
    try:
        data = json.loads((workdir / RECORD).read_text())
        return [
            KamalRun(
                int(d["pid"]),
                str(d["started"]),
                str(d["command"]),
                d.get("version") or None,
                str(d.get("tag") or ""),
            )
            for d in data
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return []  # none, or unreadable: nothing is known to be left behind


def _save(workdir: Path, found: list[KamalRun]) -> None:
    path = workdir / RECORD
    if not found:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([asdict(r) for r in found]))
    os.replace(tmp, path)


def begin(workdir: Path, command: str, version: str | None) -> KamalRun:
    """Record a Kamal run about to start; pass `{ENV_TAG: run.tag}` in its environment."""
    run = KamalRun(0, "", command, version, uuid.uuid4().hex)
    _save(workdir, [*_load(workdir), run])
    return run


def started(workdir: Path, pending: KamalRun, pid: int) -> KamalRun:
    """The run `begin` recorded, now with the pid and start time of its process."""
    run = replace(pending, pid=pid, started=process_started(pid) or "")
    _save(workdir, [run if r == pending else r for r in _load(workdir)])
    return run


def ended(workdir: Path, *gone: KamalRun | None) -> None:
    """Forget runs seen to end (or whose lock was released)."""
    _save(workdir, [r for r in _load(workdir) if r not in gone])


def interrupted(workdir: Path) -> list[KamalRun]:
    """Runs a previous reconciler started and never saw end."""
    return _load(workdir)


def wait_gone(run: KamalRun, timeout_s: float, interval_s: float = 0.2) -> bool:
    """Wait for the interrupted Kamal to finish; False if it still runs after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while alive(run):
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
    return True


def stale_lock_owner(left: list[KamalRun], version: str | None) -> KamalRun | None:
    """The interrupted, dead run that took the lock Kamal reports held (by its version)."""
    for run in left:
        if version is not None and run.version == version and not alive(run):
            return run
    return None


def version_of(args: list[str]) -> str | None:
    for arg in args:
        if arg.startswith("--version="):
            return arg.split("=", 1)[1]
    return None
