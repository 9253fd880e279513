"""Where events go in a terminal or a pipe: rich lines on a TTY, structlog lines otherwise."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import structlog
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn

from reconciler.report.events import Event, kamal_line
from reconciler.report.progress import PullSteps
from reconciler.units import format_bytes

_QUIET = {"ts"}


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
            self._tasks[model] = bars.add_task(model, total=total, rate="", left="")
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
