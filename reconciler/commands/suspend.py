"""`reconciler suspend [--reason]` / `resume`: hands off the server, and back (Flux's verbs)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import click

from reconciler.commands.common import dumps, state_dir_of, state_dir_option


def _poke_serve(root: Path) -> int | None:
    """SIGHUP to `serve`, so its status (and, on resume, the server) catches up at once."""
    from reconciler.loop.lock import serve_running

    pid = serve_running(root)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGHUP)
        except OSError:
            return None
    return pid


@click.command()
@click.option("--reason", default="", help="Why (shown by status, the push output and the metrics).")
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def suspend(reason: str, state_dir: Path | None, as_json: bool) -> None:
    """Stop changing the server: each new commit is still validated and recorded, and drift
    (a model deleted by hand, a stopped container) is reported, but nothing is applied or
    corrected until `reconciler resume`. Survives restarts of serve and of the machine."""
    from reconciler.state.suspend import suspend as do_suspend

    root = state_dir_of(state_dir)
    suspension = do_suspend(root, reason)
    pid = _poke_serve(root)
    if as_json:
        click.echo(dumps({"suspended": suspension.model_dump(mode="json"), "serve_pid": pid}))
    else:
        click.echo(f"{suspension.describe()}; `reconciler resume` ends it")


@click.command()
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def resume(state_dir: Path | None, as_json: bool) -> None:
    """End a suspension: serve reconciles the branch head at once (`reconciler wait` follows it)."""
    from reconciler.state.suspend import resume as do_resume

    root = state_dir_of(state_dir)
    ended = do_resume(root)
    pid = _poke_serve(root) if ended is not None else None
    if as_json:
        click.echo(dumps({"resumed": ended is not None, "serve_pid": pid}))
    elif ended is None:
        click.echo("not suspended: nothing to resume")
    else:
        then = "serve is reconciling the branch head" if pid else "`reconciler serve` is not running"
        click.echo(f"resumed (was {ended.describe()}); {then}")
