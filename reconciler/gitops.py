"""The desired-state repo on the server: init, the git hooks' logic, rollback."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from reconciler.desired.load import load_desired
from reconciler.desired.redact import printable
from reconciler.desired.secrets import SecretPolicy
from reconciler.desired.source import DirSource, GitCommitSource
from reconciler.errors import InvalidDesiredState, PermanentError, ReconcilerError, TemporaryError
from reconciler.loop.lock import serve_running
from reconciler.report.eventlog import end_offset, follow, log_path
from reconciler.report.events import Event, EventName, kamal_line, note_text
from reconciler.report.progress import PullSteps, pull_line
from reconciler.resources import git_hooks
from reconciler.seed import SeedSettings, customize
from reconciler.serverconfig import load_policy
from reconciler.signing import CONFIG_KEY, unverified

ZERO = "0" * 40
TAIL_BACK = 256 * 1024  # the reconcile may have started before the hook began to follow
FOLLOW_ATTEMPTS = 3  # a transient failure is retried by serve: show the retries, up to this many
HOOK_BUDGET_S = 60.0  # pre-receive: most seconds spent validating one push
HOOK_ERRORS = "hook-errors.log"


class GitFailed(TemporaryError):
    pass


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise GitFailed(f"git {' '.join(args[:2])} failed: {result.stderr.strip()[-500:]}")
    return result.stdout.strip()


def init_repo(
    repo: Path,
    *,
    seed: Path,
    state_dir: Path,
    branch: str = "main",
    allowed_signers: Path | None = None,
    settings: SeedSettings | None = None,
) -> bool:
    """Create (or adopt) the bare repo, seed it when new (edited by `settings`, then validated),
    install the hooks. Returns True when it was created."""
    check_branch(branch)
    created = not (repo / "HEAD").exists()
    if created:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "seed"
            shutil.copytree(seed, work, ignore=shutil.ignore_patterns(".git"))
            if settings is not None:
                customize(work, settings)
            load_desired(DirSource(work))  # never seed a repo with a state that does not validate
            repo.mkdir(parents=True, exist_ok=True, mode=0o700)
            git("init", "--bare", "-q", f"--initial-branch={branch}", str(repo))
            _seed(repo, work, branch)
    os.chmod(repo, 0o700)
    git("config", "receive.denyNonFastForwards", "true", cwd=repo)
    git("config", "receive.denyDeletes", "true", cwd=repo)
    if allowed_signers is not None:
        git("config", CONFIG_KEY, str(allowed_signers.resolve()), cwd=repo)
    install_hooks(repo, state_dir, branch)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state_dir, 0o700)
    return created


def _seed(repo: Path, work: Path, branch: str) -> None:
    ident = ["-c", "user.name=reconciler", "-c", "user.email=reconciler@localhost"]
    git("init", "-q", f"--initial-branch={branch}", cwd=work)
    git("add", "-A", cwd=work)
    git(*ident, "commit", "-q", "-m", "Seed the desired state", cwd=work)
    git("push", "-q", str(repo), f"HEAD:refs/heads/{branch}", cwd=work)


class InvalidBranch(PermanentError):
    pass


def check_branch(branch: str) -> None:
    """Refuse what git would not take as a branch name (and anything starting with '-')."""
    ok = not branch.startswith("-") and (
        subprocess.run(
            ["git", "check-ref-format", "--branch", branch], capture_output=True, check=False
        ).returncode
        == 0
    )
    if not ok:
        raise InvalidBranch("--branch is not a valid git branch name (e.g. main)")


def install_hooks(repo: Path, state_dir: Path, branch: str) -> None:
    """Write the hook scripts with every value shell-quoted: a state directory or branch
    name with `$(…)`, quotes or spaces stays one literal argument."""
    check_branch(branch)
    values = {"@PYTHON@": sys.executable, "@STATE_DIR@": str(state_dir), "@BRANCH@": branch}
    for name in ("pre-receive", "post-receive"):
        text = (git_hooks() / name).read_text()
        for placeholder, value in values.items():
            text = text.replace(placeholder, shlex.quote(value))
        target = repo / "hooks" / name
        if not target.is_file() or target.read_text() != text:  # a second init changes nothing
            target.write_text(text)
        target.chmod(0o755)


def _updates(stdin: TextIO, branch: str) -> Iterable[tuple[str, str]]:
    for line in stdin:
        parts = line.split()
        if len(parts) == 3 and parts[2] == f"refs/heads/{branch}":
            yield parts[0], parts[1]


def new_commits(repo: Path, old: str, new: str) -> list[tuple[str, str]]:
    """(commit, tree) of every commit the push adds to the branch, oldest first: those
    reachable from `new` and not from `old` (all of them for a new branch), merged side
    branches included, whatever other refs already hold them."""
    exclude = [] if old == ZERO else ["--not", old]
    listed = git("log", "--reverse", "--format=%H %T", new, *exclude, "--", cwd=repo)
    return [(line.split()[0], line.split()[1]) for line in listed.splitlines() if line.strip()]


def pre_receive(
    repo: Path,
    branch: str,
    stdin: TextIO,
    out: TextIO,
    *,
    budget_s: float = HOOK_BUDGET_S,
    state_dir: Path | None = None,
) -> int:
    """Validate every commit a push adds to `branch` with the same loader as `validate`
    (and the server's secrets policy); reject the push if any is invalid. Other branches and
    tags are not read by the reconciler and are not validated here; their commits are when
    they reach `branch`. An unexpected error refuses the push without a traceback."""
    try:
        return _pre_receive(repo, branch, stdin, out, time.monotonic() + budget_s, budget_s)
    except ReconcilerError as exc:
        out.write(f"reconciler: rejected: {printable(str(exc))[:2000]}\nreconciler: nothing was changed\n")
        return 1
    except Exception as exc:  # a bug must not show the server's paths to the pusher
        where = _log_hook_error(state_dir)
        out.write(
            f"reconciler: rejected: internal error while validating ({type(exc).__name__}); nothing was "
            f"changed. The server's owner finds the details in {where}\n"
        )
        return 1


def _log_hook_error(state_dir: Path | None) -> str:
    if state_dir is None:
        return "the reconciler's hook log (no state directory given)"
    path = state_dir / HOOK_ERRORS
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')}\n{traceback.format_exc()}\n")
    except OSError:
        return "the server (the hook log could not be written)"
    return HOOK_ERRORS + " in the reconciler's state directory"


def _pre_receive(repo: Path, branch: str, stdin: TextIO, out: TextIO, deadline: float, budget: float) -> int:
    policy: SecretPolicy | None = None
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
        policy = policy or load_policy()
        if not _validate_all(
            repo, new_commits(repo, old, new) or [(new, "")], policy, out, (deadline, budget)
        ):
            return 1
    return 0


def _validate_all(
    repo: Path, commits: list[tuple[str, str]], policy: SecretPolicy, out: TextIO, limit: tuple[float, float]
) -> bool:
    """Validate each commit once per distinct tree; False (and the problems written) on the
    first invalid one or when the time budget runs out."""
    deadline, budget = limit
    checked: set[str] = set()
    models = 0
    with GitCommitSource(repo, commits[-1][0]) as source:
        for index, (sha, tree) in enumerate(commits, 1):
            if tree and tree in checked:
                continue
            if time.monotonic() > deadline:
                out.write(
                    f"reconciler: rejected: validating this push took longer than {budget:.0f} s "
                    f"({index - 1} of {len(commits)} commits checked); nothing was changed.\n"
                    "reconciler: push fewer commits at a time (or squash them), or ask the server's "
                    "owner to raise RECONCILER_HOOK_BUDGET\n"
                )
                return False
            try:
                state = load_desired(source.at(sha), secrets=policy)
            except InvalidDesiredState as exc:
                which = f" (commit {index} of {len(commits)} in this push)" if len(commits) > 1 else ""
                out.write(f"reconciler: rejected {sha[:12]}{which}: {exc}\n")
                out.write(
                    "reconciler: every commit pushed to the branch must be valid: fix it (rebase) "
                    "and push again; nothing was changed\n"
                )
                return False
            checked.add(tree)
            models = len(state.ollama.all_models())
    tip = commits[-1][0]
    counted = f", {len(commits)} commits checked" if len(commits) > 1 else ""
    out.write(f"reconciler: {tip[:12]} is valid ({models} models{counted})\n")
    return True


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
            out.write("\n".join(printable(part) for part in line.split("\n")) + "\n")
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
_pulled: dict[str, int] = {}  # loads: the last 10 s step shown per model


def _push_plan(event: Event) -> str | None:
    lines = [f"plan: {a}" for a in event.get("actions", []) or []]
    lines += [f"refused: {v}" for v in event.get("violations", []) or []]
    return "\n".join(lines) or None


def _once_per_step(key: str, step: int) -> bool:
    """Progress is shown once per step (10 % of a pull, 10 s of a load)."""
    if _pulled.get(key) == step:
        return False
    _pulled[key] = step
    return True


def _push_pull(event: Event) -> str | None:
    return f"  {pull_line(event)}" if _pull_steps.wanted(event) else None


def _push_load(event: Event) -> str | None:
    if not _once_per_step(f"load:{event.get('model')}", int(float(event.get("elapsed_s", 0)) // 10)):
        return None
    return f"  loading {event.get('model')}: {event.get('elapsed_s')} s so far"


def _push_done(event: Event) -> str:
    result = event.get("result")
    notes = "; ".join(map(note_text, event.get("notes", []) or []))
    mark = {"converged": "✔", "degraded": "⚠"}.get(str(result), "✘")
    tail = f" — {notes}" if notes else ""
    revision = str(event.get("revision"))[:12]
    return f"reconciler: {mark} {result} {revision} ({event.get('actions')} action(s)){tail}"


# The events the pusher sees (git prefixes `remote: `), each → its line; others are not shown.
_PUSH: dict[EventName, Callable[[Event], str | None]] = {
    "plan": _push_plan,
    "action.start": lambda e: f"[{e.get('step')}/{e.get('of')}] {e.get('action')}",
    "action.failed": lambda e: f"  failed: {e.get('error')}",
    "pull.progress": _push_pull,
    "load.progress": _push_load,
    "load.done": lambda e: f"  loaded {e.get('model')} in {e.get('elapsed_s')} s",
    "reconcile.rejected": lambda e: (
        "reconciler: rejected: " + "; ".join(map(str, e.get("problems", []) or []))
    ),
    "reconcile.done": _push_done,
}


def push_line(event: Event) -> str | None:
    """One event as the pusher sees it (git prefixes `remote: `)."""
    name = event["event"]
    if str(name).startswith("kamal."):
        return kamal_line(event)
    render = _PUSH.get(name)
    return render(event) if render else None


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
