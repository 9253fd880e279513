"""What the commands in this package share (cheap to import: click and the standard library)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from reconciler.errors import ReconcilerError

STATE_HELP = "State directory (default $RECONCILER_STATE_DIR or /var/lib/reconciler)."
REPO_HELP = "The bare desired-state repo serve applies."


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)


def state_dir_of(value: Path | None) -> Path:
    return value or Path(os.environ.get("RECONCILER_STATE_DIR", "/var/lib/reconciler"))


def fail(exc: ReconcilerError) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


state_dir_option = click.option(
    "--state-dir", type=click.Path(path_type=Path), envvar="RECONCILER_STATE_DIR", help=STATE_HELP
)
repo_option = click.option(
    "--repo",
    type=click.Path(path_type=Path),
    envvar="RECONCILER_REPO",
    default="/srv/desired-state.git",
    show_default=True,
    help=REPO_HELP,
)


def verbosity(ctx: click.Context) -> int:
    """-1 with --quiet, 0 by default, 1 with -v (the group's options, in the root's obj)."""
    obj = ctx.find_root().obj
    return int(obj.get("verbosity", 0)) if isinstance(obj, dict) else 0
