"""The structured event log: JSON lines under the state directory, rotated by size.

`serve` appends every event; `reconciler logs -f` and the post-receive hook follow it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from reconciler.report.events import Event

MAX_BYTES = 10 * 2**20
KEEP = 5


def log_path(state_dir: Path) -> Path:
    return state_dir / "events.jsonl"


class EventLog:
    """A subscriber that appends events; rotates events.jsonl → .1 … .KEEP."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> None:
        self.path, self.max_bytes, self.keep = path, max_bytes, keep
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def __call__(self, event: Event) -> None:
        line = json.dumps(event, default=str, ensure_ascii=False) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size > self.max_bytes:
                self._rotate()

    def _rotate(self) -> None:
        for index in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None  # a torn or corrupted line is skipped, never fatal
    if not isinstance(value, dict) or not isinstance(value.get("event"), str):
        return None  # not an event (a stray or hand-edited line): skipped like a torn one
    return value


def _open_at(path: Path, from_offset: int | None) -> tuple[BinaryIO, int] | None:
    """`path` open at a whole line at or after `from_offset` (None: its end), and its inode."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    stat = os.fstat(handle.fileno())
    offset = stat.st_size if from_offset is None else min(max(from_offset, 0), stat.st_size)
    if offset > 0:
        handle.seek(offset - 1)
        if handle.read(1) != b"\n":
            handle.readline()  # start at a whole line
    return handle, stat.st_ino


def _rotated(path: Path, inode: int) -> bool:
    try:
        return os.stat(path).st_ino != inode
    except FileNotFoundError:
        return True


def follow(
    path: Path,
    *,
    from_offset: int | None = 0,
    stop: Callable[[], bool] = lambda: False,
    poll: float = 0.05,
    forever: bool = True,
) -> Iterator[dict[str, Any]]:
    """Yield events from `path` (from a byte offset; None = its current end), following
    appends and rotations until `stop()` (or the end of the file, when not `forever`)."""
    handle: BinaryIO | None = None
    inode = 0
    buffer = b""
    while not stop():
        if handle is None:
            opened = _open_at(path, from_offset)
            if opened is None:
                if not forever:
                    return
                time.sleep(poll)
                continue
            handle, inode = opened
            from_offset = 0  # after a rotation, read the new file from its start
        chunk = handle.read()
        if chunk:
            *lines, buffer = (buffer + chunk).split(b"\n")
            yield from (event for event in map(_parse, lines) if event is not None)
            continue
        if not forever:
            break
        if _rotated(path, inode):
            handle.close()
            handle = None
            continue
        time.sleep(poll)
    if handle is not None:
        handle.close()


def end_offset(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
