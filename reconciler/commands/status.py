"""`reconciler status [--json] [--watch]`: where the server stands, as its exit code too."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from reconciler.commands.common import dumps, state_dir_of, state_dir_option
from reconciler.report.readiness import CODES_HELP


@click.command(help=f"Desired vs applied commit, conditions, models, budgets, last error.\n\n{CODES_HELP}")
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("-w", "--watch", is_flag=True, help="Show it again whenever it changes (Ctrl-C ends).")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between checks with --watch.")
def status(state_dir: Path | None, as_json: bool, watch: bool, interval: float) -> None:
    from reconciler.loop.lock import serve_running
    from reconciler.report.console import make_console
    from reconciler.report.readiness import status_exit_code
    from reconciler.report.status import Status, load_status
    from reconciler.report.text import print_status
    from reconciler.state.suspend import load_suspension

    root = state_dir_of(state_dir)
    console = make_console()

    def current() -> tuple[Status, int | None]:
        return load_status(root).model_copy(update={"suspended": load_suspension(root)}), serve_running(root)

    def show(value: Status, pid: int | None) -> None:
        if as_json:
            data = {**value.model_dump(mode="json"), "serve_pid": pid}
            click.echo(json.dumps(data, default=str) if watch else dumps(data))  # --watch: a line each
        else:
            if watch and console.is_terminal:
                console.clear()
            print_status(value, pid, console)

    shown, pid = current()
    show(shown, pid)
    try:
        while watch:
            time.sleep(interval)
            now, now_pid = current()
            if now != shown or now_pid != pid:
                shown, pid = now, now_pid
                show(shown, pid)
    except KeyboardInterrupt:
        pass
    sys.exit(status_exit_code(shown))
