"""`reconciler history [-n N] [--json]` and `history COMMIT`: the reconciles serve and apply ran."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from reconciler.commands.common import dumps, state_dir_of, state_dir_option


def _line(row: Any) -> str:
    from reconciler.desired.redact import printable

    error = f"  {printable(row.error)[:160]}" if row.error else ""
    started = row.started_at[:19].replace("T", " ")
    return (f"{started}  {row.trigger[:14]:<14} {row.revision:<12}  {row.result:<10} "
            f"{row.duration_s:>7.1f} s {row.actions:>3} action(s){error}")  # fmt: skip


def _event_line(event: dict[str, Any]) -> str:
    from reconciler.desired.redact import printable
    from reconciler.gitops import push_line

    shown = push_line(event)
    if shown is None:
        fields = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("event", "ts", "revision"))
        shown = f"{event['event']} {fields}".rstrip()
    return "\n".join(f"  {str(event.get('ts', ''))[11:19]} {printable(part)}" for part in shown.split("\n"))


@click.command()
@click.argument("commit", required=False)
@click.option("-n", "--limit", default=20, show_default=True, help="How many reconciles, newest first.")
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def history(commit: str | None, limit: int, state_dir: Path | None, as_json: bool) -> None:
    """One line per reconcile: start, trigger, revision, result, duration, actions, error.
    With COMMIT: that commit's newest reconcile that did something (else its newest), with
    its actions and events.

    Kept in reconciles.sqlite3 under the state directory (the newest 1000)."""
    from reconciler.state.reconciles import history_path, of_commit, recent

    path = history_path(state_dir_of(state_dir))
    if commit is None:
        rows = recent(path, max(limit, 0))
        if as_json:
            click.echo(dumps([r.as_json() for r in rows]))
            return
        if not rows:
            click.echo("no reconciles recorded yet")
        for row in rows:
            click.echo(_line(row))
        return
    found = of_commit(path, commit)
    if found is None:
        click.echo(f"error: no reconcile of {commit} is recorded (see `reconciler history`)", err=True)
        sys.exit(1)
    row, events = found
    if as_json:
        click.echo(dumps({**row.as_json(), "events": events}))
        return
    click.echo(_line(row))
    for event in events:
        click.echo(_event_line(event))
