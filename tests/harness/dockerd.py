"""Start (and stop) the host's Docker engine for the e2e tests.

Facts this relies on (see /work/shared/VERIFIED.md "Docker Engine"): Debian's ``docker.io``
package gives Docker 20.10 (API 1.41); there is no systemd, so ``dockerd`` is started by hand
with ``setsid`` and answers on ``/run/docker.sock`` after a few seconds.

Only a ``dockerd`` started by *this* process is ever stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import docker
import docker.errors

SOCKET = "/run/docker.sock"
_START_TIMEOUT_S = 60.0

_lock = threading.Lock()
_started: subprocess.Popen[bytes] | None = None
_log_path: Path | None = None
_apt_updated = False


def _ping() -> bool:
    if not Path(SOCKET).exists():
        return False
    try:
        client = docker.DockerClient(base_url=f"unix://{SOCKET}", timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (docker.errors.DockerException, OSError):
        return False


def apt_install(*packages: str) -> None:
    """``apt-get update`` (once per process) then ``apt-get install -y PACKAGES``."""
    global _apt_updated
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        subprocess.run(["apt-get", "update"], check=True, env=env, capture_output=True)
        _apt_updated = True
    proc = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"apt-get install {' '.join(packages)} failed:\n{proc.stdout[-2000:]}{proc.stderr}"
        )


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def ensure_dockerd() -> bool:
    """Make sure a Docker engine answers on ``/run/docker.sock``.

    Returns False when one already answered (nothing was started), True when this call started
    ``dockerd`` (installing ``docker.io`` first when the binary is missing). Idempotent: a second
    call in the same process returns False because the engine now answers.
    """
    global _started, _log_path
    with _lock:
        if _ping():
            return False
        if shutil.which("dockerd") is None:
            apt_install("docker.io")
        fd, name = tempfile.mkstemp(prefix="dockerd-", suffix=".log", dir="/tmp")
        _log_path = Path(name)
        log = os.fdopen(fd, "wb")
        try:
            proc = subprocess.Popen(
                ["setsid", "dockerd", "--host", f"unix://{SOCKET}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if _ping():
                _started = proc
                return True
            if proc.poll() is not None:
                break
            time.sleep(0.3)
        if proc.poll() is None:
            proc.terminate()
        raise RuntimeError(
            f"dockerd did not answer on {SOCKET} within {_START_TIMEOUT_S:.0f}s "
            f"(exit={proc.poll()}); log {_log_path}:\n{_log_tail(_log_path)}"
        )


def stop_dockerd(timeout: float = 20.0) -> bool:
    """Stop the ``dockerd`` this process started (if any). Returns True when one was stopped."""
    global _started
    with _lock:
        proc = _started
        if proc is None:
            return False
        _started = None
        if proc.poll() is None:
            # setsid execs dockerd in place (same pid) when we are not a group leader.
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        return True


def dockerd_log_path() -> Path | None:
    """Log file of the dockerd this process started, if any."""
    return _log_path


def started_here() -> bool:
    """True when the engine is the one this process started (so it may restart it)."""
    return _started is not None


def restart_dockerd() -> None:
    """Stop the engine this process started and start it again (containers without a restart
    policy stay stopped, as after any engine restart)."""
    if not stop_dockerd():
        raise RuntimeError("this process did not start dockerd; it will not restart it")
    ensure_dockerd()
