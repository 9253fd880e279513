"""Where events go in a terminal or a pipe: rich lines on a TTY, structlog lines otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

import structlog
from rich.console import Console
from rich.markup import escape

from reconciler.desired.redact import printable
from reconciler.report.events import Event, EventName, kamal_line, note_text
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


def _plan_lines(event: Event) -> list[str]:
    return [f"  [cyan]•[/] {esc(line)}" for line in event.get("actions", [])] + [
        f"  [red]✗ refused[/]: {esc(line)}" for line in event.get("violations", [])
    ]


def _pull_progress(event: Event) -> list[str]:
    if not event.get("total"):
        return []
    eta = f", ETA {event['eta_s']:.0f} s" if event.get("eta_s", -1) >= 0 else ""
    return [
        f"    {esc(event['model'])}: {event['percent']:5.1f}% of {format_bytes(event['total'])} "
        f"at {format_bytes(event['rate_bps'])}/s{eta}"
    ]


def _load_progress(event: Event) -> list[str]:
    limit = f" (waiting up to {event['timeout_s']:.0f} s)" if event.get("timeout_s", -1) >= 0 else ""
    return [f"    {esc(event['model'])}: loading, {event['elapsed_s']:.0f} s{limit}"]


def _done(event: Event) -> list[str]:
    style = {"converged": "green", "degraded": "yellow"}.get(event["result"], "red")
    lines = [f"[{style}]{esc(event['result'])}[/] ({esc(event['actions'])} action(s))"]
    return lines + [f"  [yellow]note[/]: {esc(note_text(note))}" for note in event.get("notes", [])]


def _start(event: Event) -> list[str]:
    step = esc(f"[{event['step']}/{event['of']}]")
    return [f"[bold]→[/] {step} {esc(event['action'])}"]


def _kamal(event: Event) -> list[str]:
    line = kamal_line(event)
    return [esc(line)] if line else []


# The event each line is for → its lines (rich markup); an event not here is not shown.
_HUMAN: dict[EventName, Callable[[Event], list[str]]] = {
    "plan": _plan_lines,
    "action.start": _start,
    "action.done": lambda e: [f"  [green]✓[/] {esc(e['action'])}"],
    "action.failed": lambda e: [f"  [red]✗ {esc(e['action'])}[/]: {esc(e['error'])}"],
    "pull.progress": _pull_progress,
    "load.progress": _load_progress,
    "load.done": lambda e: [f"    {esc(e['model'])}: loaded in {e['elapsed_s']:.1f} s"],
    "reconcile.done": _done,
}


def human_lines(event: Event) -> list[str]:
    """An event as the lines a person reads (rich markup)."""
    name = event["event"]
    if name.startswith("kamal."):
        return _kamal(event)
    render = _HUMAN.get(name)
    return render(event) if render else []


def human(console: Console) -> Any:
    """Readable lines for a person at a terminal; pull progress overwrites itself."""

    def write(event: Event) -> None:
        for line in human_lines(event):
            say(console, line)

    return write
