"""One reconciler changing the server per state directory: an flock held for the life of
`serve`, or for one `apply`.

The kernel drops the lock when the process dies, even by `kill -9`, so a stale lock
file never blocks a restart.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from reconciler.errors import TemporaryError


class AlreadyRunning(TemporaryError):
    """Another `serve` or `apply` holds the state directory."""


def lock_path(state_dir: Path) -> Path:
    return state_dir / "serve.lock"


class ServeLock:
    def __init__(self, state_dir: Path, role: str = "serve") -> None:
        self.path = lock_path(state_dir)
        self.role = role  # `serve`, or `apply` for a one-shot converge
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, role = _holder(fd)
            os.close(fd)
            raise AlreadyRunning(
                f"another `reconciler {role}` (pid {pid}) is changing the server from {self.path.parent}; "
                + (
                    "push to the desired-state repo (or send serve SIGHUP) instead, or stop it first"
                    if role == "serve"
                    else "wait for it to finish"
                )
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {self.role}".encode())
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
        pid, role = _holder(fd)
        os.close(fd)
        if role != "serve":  # a one-shot `apply`
            return None
        return int(pid) if pid.isdigit() else -1
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    return None


def _holder(fd: int) -> tuple[str, str]:
    """(pid, role) written by the holder; a bare pid is a `serve` (older lock files)."""
    words = os.read(fd, 64).decode(errors="replace").split()
    return (words[0] if words else "?", words[1] if len(words) > 1 else "serve")
