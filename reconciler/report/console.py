"""Where events go in a terminal or a pipe: rich lines on a TTY, structlog lines otherwise."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import structlog
from rich.console import Console

from reconciler.report.events import Event, kamal_line
from reconciler.units import format_bytes

_QUIET = {"ts"}


def json_lines(stream: TextIO = sys.stdout) -> Any:
    def write(event: Event) -> None:
        stream.write(json.dumps(event, default=str) + "\n")
        stream.flush()

    return write


def structured(stream: TextIO = sys.stderr) -> Any:
    """Plain `key=value` lines (structlog), for pipes, journald and the push output."""
    logger = structlog.wrap_logger(
        structlog.PrintLogger(stream),
        processors=[structlog.processors.KeyValueRenderer(key_order=["event"], drop_missing=True)],
    )

    def write(event: Event) -> None:
        fields = {k: v for k, v in event.items() if k not in _QUIET and k != "event"}
        logger.info(event["event"], **fields)

    return write


def human(console: Console) -> Any:
    """Readable lines for a person at a terminal; pull progress overwrites itself."""

    def write(event: Event) -> None:
        name = event["event"]
        if name == "plan":
            for line in event.get("actions", []):
                console.print(f"  [cyan]•[/] {line}")
            for line in event.get("violations", []):
                console.print(f"  [red]✗ refused[/]: {line}")
        elif name == "action.start":
            console.print(f"[bold]→[/] [{event['step']}/{event['of']}] {event['action']}")
        elif name == "action.done":
            console.print(f"  [green]✓[/] {event['action']}")
        elif name == "action.failed":
            console.print(f"  [red]✗ {event['action']}[/]: {event['error']}")
        elif name == "pull.progress" and event.get("total"):
            eta = f", ETA {event['eta_s']:.0f} s" if event.get("eta_s", -1) >= 0 else ""
            console.print(
                f"    {event['model']}: {event['percent']:5.1f}% of {format_bytes(event['total'])} "
                f"at {format_bytes(event['rate_bps'])}/s{eta}",
                highlight=False,
            )
        elif name == "load.progress":
            limit = f" (waiting up to {event['timeout_s']:.0f} s)" if event.get("timeout_s", -1) >= 0 else ""
            console.print(
                f"    {event['model']}: loading, {event['elapsed_s']:.0f} s{limit}", highlight=False
            )
        elif name == "load.done":
            console.print(f"    {event['model']}: loaded in {event['elapsed_s']:.1f} s", highlight=False)
        elif name.startswith("kamal."):
            line = kamal_line(event)
            if line:
                console.print(line, highlight=False, markup=False)
        elif name == "reconcile.done":
            style = {"converged": "green", "degraded": "yellow"}.get(event["result"], "red")
            console.print(f"[{style}]{event['result']}[/] ({event['actions']} action(s))")
            for note in event.get("notes", []):
                console.print(f"  [yellow]note[/]: {note}")

    return write
