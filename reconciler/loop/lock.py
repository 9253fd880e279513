"""One `serve` per state directory: an flock held for the life of the process.

The kernel drops the lock when the process dies, even by `kill -9`, so a stale lock
file never blocks a restart.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from reconciler.errors import ReconcilerError


class AlreadyRunning(ReconcilerError):
    """Another `serve` holds the state directory."""


def lock_path(state_dir: Path) -> Path:
    return state_dir / "serve.lock"


class ServeLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = lock_path(state_dir)
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AlreadyRunning(
                f"another `reconciler serve` (pid {holder}) is using {self.path.parent}; "
                "stop it first or use another --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def serve_running(state_dir: Path) -> int | None:
    """The pid of the `serve` holding the state dir, or None when none runs."""
    path = lock_path(state_dir)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        return int(text) if text.isdigit() else -1
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    return None
