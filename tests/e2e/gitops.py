"""The GitOps loop under test: a bare repo made by `reconciler init`, a clone to push
from, and `reconciler serve` as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from reconciler.gitops import init_repo
from reconciler.report.eventlog import follow, log_path
from tests.e2e.stack import Stack

IDENT = ["-c", "user.name=owner", "-c", "user.email=owner@example.lan"]


def git(
    *args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *IDENT, *args], cwd=cwd, capture_output=True, text=True, check=check,
                          env={**os.environ, **(env or {})}, timeout=timeout)  # fmt: skip


class GitOps:
    def __init__(self, stack: Stack, root: Path) -> None:
        self.stack = stack
        self.bare = root / "desired-state.git"
        self.work = root / "work"
        self.state_dir = stack.state.root
        init_repo(self.bare, seed=stack.repo, state_dir=self.state_dir)
        git("clone", "-q", str(self.bare), str(self.work), cwd=root)
        self.proc: subprocess.Popen[str] | None = None
        self.stderr_path = root / "serve.stderr"

    # -- serve ----------------------------------------------------------------------------------
    def start_serve(self, *extra: str, env: dict[str, str] | None = None) -> None:
        cmd = [sys.executable, "-m", "reconciler.cli", "serve", "--repo", str(self.bare),
               "--state-dir", str(self.state_dir), *extra]  # fmt: skip
        self.proc = subprocess.Popen(  # a session of its own: kill_serve(group=True) is systemd's kill
            cmd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self.stderr_path.open("w"),
            text=True,
            start_new_session=True,
        )
        self.wait_event(lambda e: e["event"] == "serve.started", timeout=20)

    def kill_serve(self, group: bool = False) -> None:
        """SIGKILL to `serve` alone (its children, Kamal included, live on), or to its whole
        process group, as systemd's default KillMode=control-group does after a crash."""
        assert self.proc is not None
        if group:
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop_serve(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # -- git --------------------------------------------------------------------------------------
    def commit(self, message: str, files: dict[str, str]) -> str:
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", message, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work).stdout.strip()

    def push(self, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return git("push", "origin", "HEAD:main", cwd=self.work, check=False,
                   env={"RECONCILER_PUSH_TIMEOUT": str(timeout)}, timeout=timeout + 60)  # fmt: skip

    def head(self) -> str:
        return git("rev-parse", "main", cwd=self.bare).stdout.strip()

    def ollama_yaml(self) -> str:
        return (self.work / "ollama.yaml").read_text()

    # -- events -----------------------------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        return list(follow(log_path(self.state_dir), forever=False))

    def wait_event(self, predicate: Any, timeout: float = 60.0, after: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events()[after:]:
                if predicate(event):
                    return event
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"serve exited: {self.stderr_path.read_text()[-2000:]}")
            time.sleep(0.1)
        raise AssertionError(
            f"no such event within {timeout}s; last: {json.dumps(self.events()[-5:])[-2000:]}"
        )

    def status(self) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "reconciler.cli", "status", "--json", "--state-dir",
                              str(self.state_dir)], capture_output=True, text=True, check=True)  # fmt: skip
        return dict(json.loads(out.stdout))


def dump_state(ops: GitOps) -> dict[str, str]:
    import yaml

    return {"server.yaml": yaml.safe_dump(ops.stack.server), "ollama.yaml": yaml.safe_dump(ops.stack.ollama)}
