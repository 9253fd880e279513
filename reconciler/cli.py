"""The `reconciler` command line.

Exit codes: 0 ok (and, for `plan`, nothing to change) · 1 `plan` has changes ·
2 the desired state is invalid · 3 the plan is refused (a budget would break) ·
4 observing or changing the server failed · 64 usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from reconciler.desired.load import load_desired
from reconciler.desired.schema import DesiredState
from reconciler.desired.source import DirSource, GitCommitSource, Source
from reconciler.errors import EXIT_CHANGES, EXIT_OK, EXIT_REFUSED, InvalidDesiredState, ReconcilerError
from reconciler.observed import Observed
from reconciler.plan.planner import plan as make_plan
from reconciler.report.render import dumps, plan_to_json, print_plan

_REPO_HELP = "Desired-state repo: a directory, or a git repo (bare or not) read at --rev."


def _source(path: Path, rev: str | None) -> Source:
    if rev is not None or ((path / "HEAD").is_file() and (path / "objects").is_dir()):
        return GitCommitSource(path, rev or "HEAD")
    return DirSource(path)


def _load(path: Path, rev: str | None) -> DesiredState:
    return load_desired(_source(path, rev))


def _fail(exc: ReconcilerError, as_json: bool) -> None:
    if as_json and isinstance(exc, InvalidDesiredState):
        problems = [p.__dict__ for p in exc.problems]
        click.echo(dumps({"valid": False, "problems": problems}))
    else:
        click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reconciler")
def main() -> None:
    """GitOps for a self-hosted LLM server: Ollama, its models and OpenWebUI, from a git repo.

    Exit codes: 0 ok/no changes, 1 plan has changes, 2 invalid desired state,
    3 plan refused (budget), 4 runtime failure.
    """


@main.command()
@click.argument("path", type=click.Path(path_type=Path, exists=True), default=".")
@click.option("--rev", help="Validate this commit of a git repo instead of the files on disk.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def validate(path: Path, rev: str | None, as_json: bool) -> None:
    """Check a desired state; print every problem with file:line:column, field and hint."""
    try:
        desired = _load(path, rev)
    except ReconcilerError as exc:
        _fail(exc, as_json)
        return
    models = len(desired.ollama.all_models())
    if as_json:
        click.echo(dumps({"valid": True, "revision": desired.revision, "models": models}))
    else:
        click.echo(f"ok: {path} is a valid desired state ({models} models)")


@main.command()
@click.option("--repo", type=click.Path(path_type=Path, exists=True), default=".", help=_REPO_HELP)
@click.option("--rev", help="Plan this commit of a git repo.")
@click.option(
    "--observed",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Plan against a recorded observation (JSON) instead of observing this server.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plan(repo: Path, rev: str | None, observed: Path | None, as_json: bool) -> None:
    """Show what apply would change, and why. Exit 0: nothing; 1: changes; 3: refused."""
    try:
        desired = _load(repo, rev)
        seen = _observe(desired, observed)
    except ReconcilerError as exc:
        _fail(exc, as_json)
        return
    result = make_plan(desired, seen)
    if as_json:
        click.echo(dumps(plan_to_json(result)))
    else:
        print_plan(result, Console())
    if result.refused:
        sys.exit(EXIT_REFUSED)
    sys.exit(EXIT_CHANGES if result.actions else EXIT_OK)


def _observe(desired: DesiredState, recorded: Path | None) -> Observed:
    if recorded is not None:
        return Observed.model_validate_json(recorded.read_text())
    from reconciler.observe.server import observe_server

    return observe_server(desired)


if __name__ == "__main__":
    main()
