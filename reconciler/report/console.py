"""Where events go in a terminal or a pipe: rich lines on a TTY, structlog lines otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

import structlog
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn

from reconciler.desired.redact import printable
from reconciler.report.events import Event, EventName, kamal_line, note_text
from reconciler.report.progress import PullSteps
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
    """Plain `key=value` lines (structlog), for pipes and journald; a pull's progress once per
    10 % (every event is in `--json` and the event log)."""
    logger = structlog.wrap_logger(
        structlog.PrintLogger(stream),
        processors=[structlog.processors.KeyValueRenderer(key_order=["event"], drop_missing=True)],
    )

    steps = PullSteps()

    def write(event: Event) -> None:
        if event["event"] == "pull.progress" and not steps.wanted(event):
            return
        fields = {k: v for k, v in event.items() if k not in _QUIET and k != "event"}
        logger.info(event["event"], **fields)

    return write


def _plan_lines(event: Event) -> list[str]:
    return [f"  [cyan]•[/] {esc(line)}" for line in event.get("actions", [])] + [
        f"  [red]✗ refused[/]: {esc(line)}" for line in event.get("violations", [])
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


def _left(seconds: float) -> str:
    """`ollama pull`'s way: 45s, 3m12s, 1h04m."""
    if seconds < 0:
        return ""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class PullBars:
    """One bar per model being pulled, redrawn in place (rich.progress), as `ollama pull` shows
    a download: bytes done of the total, the rate and the time left. The bars appear with the
    first progress event and stay on screen, finished, once the last pull ends; lines printed
    meanwhile go above them. Redrawn on each event (no refresh thread), so the output is the
    same for the same events. Rate and time left are the pull's own figures (the event's
    `rate_bps`, `eta_s`: since the pull started), not rich's estimate, which needs many small
    updates and misreads a few large ones."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def _bars(self) -> Progress:
        if self._progress is None:
            self._progress = Progress(
                TextColumn("  {task.description}", markup=False),
                BarColumn(bar_width=30),
                DownloadColumn(binary_units=True),
                TextColumn("{task.fields[rate]}", markup=False),
                TextColumn("{task.fields[left]}", markup=False),
                console=self.console,
                auto_refresh=False,
            )
            self._progress.start()
        return self._progress

    def update(self, event: Event) -> None:
        bars = self._bars()
        model = str(event["model"])
        total = int(event.get("total") or 0) or None
        if model not in self._tasks:
            self._tasks[model] = bars.add_task(printable(model), total=total, rate="", left="")
        rate = int(event.get("rate_bps") or 0)
        bars.update(
            self._tasks[model],
            completed=int(event.get("completed") or 0),
            total=total,
            rate=f"{format_bytes(rate)}/s" if rate > 0 else "",
            left=_left(float(event.get("eta_s", -1))),
        )
        bars.refresh()

    def done(self, model: str) -> None:
        task = self._tasks.get(model)
        if self._progress is None or task is None:
            return
        total = next(t.total for t in self._progress.tasks if t.id == task)
        self._progress.update(task, completed=total or 0, left="")
        self._progress.stop_task(task)
        self._progress.refresh()
        if all(t.stop_time is not None for t in self._progress.tasks):
            self.close()

    def close(self) -> None:
        """Leave the bars as they are (a failed pull keeps its last figures)."""
        if self._progress is not None:
            self._progress.refresh()
            self._progress.stop()
        self._progress = None
        self._tasks = {}


def human(console: Console) -> Any:
    """Readable lines for a person at a terminal; each pull is a bar that redraws in place."""
    bars = PullBars(console)

    def write(event: Event) -> None:
        name = event["event"]
        if name == "pull.progress":
            if event.get("total"):
                bars.update(event)
            return
        if name == "pull.done":
            bars.done(str(event["model"]))
            return
        if name in ("action.failed", "reconcile.done", "reconcile.preempted"):
            bars.close()
        for line in human_lines(event):
            say(console, line)

    return write
