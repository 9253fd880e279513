"""`reconciler wait [COMMIT]`: block until `serve` has applied COMMIT, exit with its result."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.commands.common import dumps, fail, repo_option, state_dir_of, state_dir_option, verbosity
from reconciler.errors import PermanentError


@click.command()
@click.argument("commit", required=False)
@repo_option
@click.option("--branch", default="main", show_default=True, help="COMMIT's default: this branch's head.")
@state_dir_option
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Most seconds to wait.")
@click.option("--json", "as_json", is_flag=True, help="Only the result, as one JSON object.")
def wait(
    commit: str | None, repo: Path, branch: str, state_dir: Path | None, timeout: float, as_json: bool
) -> None:
    """Wait until the applied revision is COMMIT (default: the branch head), printing the
    reconcile's progress, and exit with its result. A newer push that contains COMMIT is
    waited for instead.

    Exit codes: 0 converged · 2 rejected (invalid) · 3 refused · 4 failed or serve not
    running · 5 timed out · 6 suspended (recorded, not applied)."""
    from reconciler.gitops import GitFailed, git, newer_in, push_line
    from reconciler.loop.lock import serve_running
    from reconciler.report.status import load_status
    from reconciler.report.waiting import Waited, WaitRules, settled, wait_for
    from reconciler.state.suspend import load_suspension

    root = state_dir_of(state_dir)
    wanted = commit or f"refs/heads/{branch}"
    try:
        revision = git("rev-parse", "--verify", "--end-of-options", f"{wanted}^{{commit}}", cwd=repo)
    except (GitFailed, OSError):
        fail(NotACommit(f"{wanted} is not a commit of {repo} (pass --repo, or a commit it holds)"))
    rules = WaitRules(
        timeout, newer=newer_in(repo), still_suspended=lambda: load_suspension(root) is not None
    )
    waited = settled(load_status(root), revision, rules)
    if waited is None and serve_running(root) is None:
        waited = Waited("failed", revision, "`reconciler serve` is not running, so nothing applies it")
    if waited is None:
        if not as_json:
            click.echo(f"waiting for {revision[:12]} (at most {timeout:.0f} s)")

        def show(event: dict[str, object]) -> None:
            line = None if as_json or verbosity(click.get_current_context()) < 0 else push_line(event)
            if line:
                click.echo(line)

        waited = wait_for(root, revision, rules, show)
    if as_json:
        click.echo(dumps(waited.as_json()))
    else:
        mark = "✔" if waited.exit_code == 0 else "✘"
        reason = f": {waited.reason}" if waited.reason else ""
        click.echo(f"{mark} {waited.result} {waited.revision[:12]}{reason}", err=waited.exit_code != 0)
    sys.exit(waited.exit_code)


class NotACommit(PermanentError):
    exit_code = 64
