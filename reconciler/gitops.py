"""The desired-state repo on the server: init, the git hooks' logic, rollback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from reconciler.desired.load import load_desired
from reconciler.desired.source import GitCommitSource
from reconciler.errors import InvalidDesiredState, ReconcilerError
from reconciler.loop.lock import serve_running
from reconciler.report.eventlog import end_offset, follow, log_path
from reconciler.report.events import kamal_line
from reconciler.report.progress import PullSteps, pull_line
from reconciler.signing import CONFIG_KEY, unverified

ZERO = "0" * 40
PROJECT = Path(__file__).resolve().parents[1]
HOOK_TEMPLATES = PROJECT / "hooks" / "git"
TAIL_BACK = 256 * 1024  # the reconcile may have started before the hook began to follow
FOLLOW_ATTEMPTS = 3  # a transient failure is retried by serve: show the retries, up to this many


class GitFailed(ReconcilerError):
    pass


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise GitFailed(f"git {' '.join(args[:2])} failed: {result.stderr.strip()[-500:]}")
    return result.stdout.strip()


def init_repo(
    repo: Path, *, seed: Path, state_dir: Path, branch: str = "main", allowed_signers: Path | None = None
) -> bool:
    """Create (or adopt) the bare repo, seed it when new, install the hooks. Returns True
    when it was created."""
    created = not (repo / "HEAD").exists()
    if created:
        repo.mkdir(parents=True, exist_ok=True, mode=0o700)
        git("init", "--bare", "-q", f"--initial-branch={branch}", str(repo))
        _seed(repo, seed, branch)
    os.chmod(repo, 0o700)
    git("config", "receive.denyNonFastForwards", "true", cwd=repo)
    git("config", "receive.denyDeletes", "true", cwd=repo)
    if allowed_signers is not None:
        git("config", CONFIG_KEY, str(allowed_signers.resolve()), cwd=repo)
    install_hooks(repo, state_dir, branch)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state_dir, 0o700)
    return created


def _seed(repo: Path, seed: Path, branch: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "seed"
        shutil.copytree(seed, work, ignore=shutil.ignore_patterns(".git"))
        ident = ["-c", "user.name=reconciler", "-c", "user.email=reconciler@localhost"]
        git("init", "-q", f"--initial-branch={branch}", cwd=work)
        git("add", "-A", cwd=work)
        git(*ident, "commit", "-q", "-m", "Seed the desired state", cwd=work)
        git("push", "-q", str(repo), f"HEAD:refs/heads/{branch}", cwd=work)


def install_hooks(repo: Path, state_dir: Path, branch: str) -> None:
    for name in ("pre-receive", "post-receive"):
        text = (HOOK_TEMPLATES / name).read_text()
        text = text.replace("@PYTHON@", sys.executable).replace("@STATE_DIR@", str(state_dir))
        target = repo / "hooks" / name
        target.write_text(text.replace("@BRANCH@", branch))
        target.chmod(0o755)


def _updates(stdin: TextIO, branch: str) -> Iterable[tuple[str, str]]:
    for line in stdin:
        parts = line.split()
        if len(parts) == 3 and parts[2] == f"refs/heads/{branch}":
            yield parts[0], parts[1]


def pre_receive(repo: Path, branch: str, stdin: TextIO, out: TextIO) -> int:
    """Validate the pushed commit with the same loader as `validate`; reject if invalid."""
    for old, new in _updates(stdin, branch):
        if new == ZERO:
            out.write(f"reconciler: deleting {branch} is not allowed\n")
            return 1
        unsigned = unverified(repo, old, new)
        if unsigned:
            listed = ", ".join(sha[:12] for sha in unsigned)
            out.write(f"reconciler: rejected: not signed by an allowed key ({CONFIG_KEY}): {listed}\n")
            out.write("reconciler: sign your commits (git config gpg.format ssh; commit -S) and push again\n")
            return 1
        try:
            with GitCommitSource(repo, new) as source:
                state = load_desired(source)
        except InvalidDesiredState as exc:
            out.write(f"reconciler: rejected {new[:12]}: {exc}\n")
            out.write("reconciler: fix the files above and push again; nothing was changed\n")
            return 1
        out.write(f"reconciler: {new[:12]} is valid ({len(state.ollama.all_models())} models)\n")
    return 0


def post_receive(repo: Path, state_dir: Path, branch: str, stdin: TextIO, out: TextIO, timeout: float) -> int:
    """Follow the reconcile of the pushed commit in the event log and print it."""
    updates = [new for _old, new in _updates(stdin, branch) if new != ZERO]
    if not updates:
        return 0
    new = updates[-1]
    if serve_running(state_dir) is None:
        out.write(
            f"reconciler: pushed {new[:12]}, but `reconciler serve` is not running, so nothing "
            f"was applied.\nreconciler: start it with `systemctl start reconciler` or "
            f"`reconciler serve --repo {repo} --state-dir {state_dir}`\n"
        )
        return 0
    out.write(f"reconciler: reconciling {new[:12]} (Ctrl-C stops watching, not the reconcile)\n")
    out.flush()
    path = log_path(state_dir)
    deadline = time.monotonic() + timeout
    attempts = 0
    for event in follow(
        path, from_offset=max(end_offset(path) - TAIL_BACK, 0), stop=lambda: time.monotonic() > deadline
    ):
        rev = str(event.get("revision", ""))
        if event["event"] in ("reconcile.start", "reconcile.rejected") and rev and not new.startswith(rev):
            if _seen_after(repo, rev, new):
                out.write(f"reconciler: superseded by a newer push ({rev}); see `reconciler logs -f`\n")
                return 0
            continue
        if rev and not new.startswith(rev):
            continue
        line = push_line(event)
        if line:
            out.write(line + "\n")
            out.flush()
        if event["event"] == "retry.scheduled":
            out.write(f"reconciler: retrying in {event.get('seconds')} s\n")
            out.flush()
        failed = event["event"] == "reconcile.done" and event.get("result") in ("failed", "preempted")
        if failed:
            attempts += 1
        if event["event"] == "reconcile.rejected" or (event["event"] == "reconcile.done" and not failed):
            return 0
        if failed and attempts >= FOLLOW_ATTEMPTS:
            out.write("reconciler: giving up watching; serve keeps retrying — see `reconciler status`\n")
            return 0
    out.write(f"reconciler: still reconciling after {timeout:.0f} s; follow it with `reconciler logs -f`\n")
    return 0


def _seen_after(repo: Path, other: str, new: str) -> bool:
    """True when `other` is a descendant of `new` (a newer push)."""
    try:
        full = git("rev-parse", other, cwd=repo)
        return (
            full != new
            and subprocess.run(
                ["git", "merge-base", "--is-ancestor", new, full], cwd=repo, check=False
            ).returncode
            == 0
        )
    except GitFailed:
        return False


_pull_steps = PullSteps()  # one line per model per 10 %


def push_line(event: dict[str, Any]) -> str | None:
    """One event as the pusher sees it (git prefixes `remote: `)."""
    name = event["event"]
    if name == "plan":
        lines = [f"plan: {a}" for a in event.get("actions", []) or []]
        lines += [f"refused: {v}" for v in event.get("violations", []) or []]
        return "\n".join(lines) or None
    if name == "action.start":
        return f"[{event.get('step')}/{event.get('of')}] {event.get('action')}"
    if name == "action.failed":
        return f"  failed: {event.get('error')}"
    if name == "pull.progress":
        return f"  {pull_line(event)}" if _pull_steps.wanted(event) else None
    if name.startswith("kamal."):
        return kamal_line(event)
    if name == "reconcile.rejected":
        return "reconciler: rejected: " + "; ".join(map(str, event.get("problems", []) or []))
    if name == "reconcile.done":
        result = event.get("result")
        notes = "; ".join(map(str, event.get("notes", []) or []))
        mark = {"converged": "✔", "degraded": "⚠"}.get(str(result), "✘")
        tail = f" — {notes}" if notes else ""
        revision = str(event.get("revision"))[:12]
        return f"reconciler: {mark} {result} {revision} ({event.get('actions')} action(s)){tail}"
    return None


def rollback(repo: Path, commit: str | None, branch: str = "main") -> str:
    """Revert `commit` (default: the branch head) in a clone and push it through the hooks."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        git("clone", "-q", "--branch", branch, str(repo), str(work))
        target = commit or "HEAD"
        ident = ["-c", "user.name=reconciler rollback", "-c", "user.email=reconciler@localhost"]
        git(*ident, "revert", "--no-edit", target, cwd=work)
        sha = git("rev-parse", "HEAD", cwd=work)
        result = subprocess.run(["git", "push", "origin", f"HEAD:{branch}"], cwd=work, check=False)
        if result.returncode != 0:
            raise GitFailed("the revert commit was rejected by the repo (see the messages above)")
        return sha
