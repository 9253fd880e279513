"""Where events go in a terminal or a pipe: rich lines on a TTY, structlog lines otherwise."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import structlog
from rich.console import Console
from rich.markup import escape

from reconciler.desired.redact import printable
from reconciler.report.events import Event, kamal_line
from reconciler.units import format_bytes

_QUIET = {"ts"}


def esc(value: object) -> str:
    """A user- or server-supplied value, ready to put in rich markup: control characters
    shown as escapes (no cursor moves, no terminal codes) and `[` escaped, so a path such as
    `[/root/.ollama/models]` prints as written instead of being read as a closing tag."""
    return escape(printable(str(value)))


def say(console: Console, renderable: Any) -> None:
    """Print markup the reconciler wrote (its values passed through `esc`), never highlighted."""
    console.print(renderable, highlight=False)


def make_console(**kwargs: Any) -> Console:
    """The one way the CLI makes a console: rich's highlighter off, so a model name or a
    number in a message is never recoloured in the middle (`llam\x1b[1;92ma3`)."""
    return Console(highlight=False, **kwargs)


def json_lines(stream: TextIO = sys.stdout) -> Any:
    def write(event: Event) -> None:
        stream.write(json.dumps(event, default=str) + "\n")
        stream.flush()

    return write


def structured(stream: TextIO = sys.stderr, *, timestamps: bool = False, priorities: bool = False) -> Any:
    """Plain `key=value` lines (structlog), for pipes, journald and the push output; with
    `timestamps`, each starts with its time; with `priorities`, with the `<N>` syslog priority
    journald reads from a service's stderr (`journalctl -p warning` then works)."""
    from reconciler.report.levels import PRIORITY, level_of

    logger = structlog.wrap_logger(
        structlog.PrintLogger(stream),
        processors=[structlog.processors.KeyValueRenderer(key_order=["event"], drop_missing=True)],
    )

    def write(event: Event) -> None:
        fields = {k: v for k, v in event.items() if k not in _QUIET and k != "event"}
        prefix = f"<{PRIORITY[level_of(event)]}>" if priorities else ""
        if timestamps:
            prefix += f"{str(event.get('ts', ''))[:23].replace('T', ' ')} "
        if prefix:
            stream.write(prefix)
        logger.info(event["event"], **fields)

    return write


def human(console: Console) -> Any:
    """Readable lines for a person at a terminal; pull progress overwrites itself."""

    def show(markup: str) -> None:
        say(console, markup)

    def write(event: Event) -> None:
        name = event["event"]
        if name == "plan":
            for line in event.get("actions", []):
                show(f"  [cyan]•[/] {esc(line)}")
            for line in event.get("violations", []):
                show(f"  [red]✗ refused[/]: {esc(line)}")
        elif name == "action.start":
            step = esc(f"[{event['step']}/{event['of']}]")
            show(f"[bold]→[/] {step} {esc(event['action'])}")
        elif name == "action.done":
            show(f"  [green]✓[/] {esc(event['action'])}")
        elif name == "action.failed":
            show(f"  [red]✗ {esc(event['action'])}[/]: {esc(event['error'])}")
        elif name == "pull.progress" and event.get("total"):
            eta = f", ETA {event['eta_s']:.0f} s" if event.get("eta_s", -1) >= 0 else ""
            show(
                f"    {esc(event['model'])}: {event['percent']:5.1f}% of {format_bytes(event['total'])} "
                f"at {format_bytes(event['rate_bps'])}/s{eta}"
            )
        elif name == "load.progress":
            limit = f" (waiting up to {event['timeout_s']:.0f} s)" if event.get("timeout_s", -1) >= 0 else ""
            show(f"    {esc(event['model'])}: loading, {event['elapsed_s']:.0f} s{limit}")
        elif name == "load.done":
            show(f"    {esc(event['model'])}: loaded in {event['elapsed_s']:.1f} s")
        elif name.startswith("kamal."):
            line = kamal_line(event)
            if line:
                show(esc(line))
        elif name == "reconcile.done":
            style = {"converged": "green", "degraded": "yellow"}.get(event["result"], "red")
            show(f"[{style}]{esc(event['result'])}[/] ({esc(event['actions'])} action(s))")
            for note in event.get("notes", []):
                show(f"  [yellow]note[/]: {esc(note)}")

    return write
