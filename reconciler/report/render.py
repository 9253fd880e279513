"""Plans and problems, for people (rich) and for programs (JSON)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from reconciler.plan.actions import Plan
from reconciler.report.console import esc, say
from reconciler.units import format_bytes


def plan_to_json(plan: Plan) -> dict[str, Any]:
    data = plan.model_dump(mode="json")
    data["refused"] = plan.refused
    data["actions"] = [{"title": a.title(), **a.model_dump(mode="json")} for a in plan.actions]
    return data


def print_plan(plan: Plan, console: Console) -> None:
    rev = esc((plan.revision or "working tree")[:12])
    if plan.refused:
        say(console, f"[bold red]plan refused[/] for {rev}: nothing will be changed")
        for v in plan.violations:
            say(console, f"  [red]✗[/] {esc(v.budget)}: {esc(v.message)}")
            for name, size in v.entries:
                say(console, f"      {esc(name)}: {format_bytes(size)}")
    elif not plan.actions:
        say(console, f"[green]no changes[/]: the server matches {rev}")
    else:
        table = Table(title=f"plan for {rev}: {len(plan.actions)} action(s)", show_lines=False)
        table.add_column("#", justify="right")
        table.add_column("action")
        table.add_column("reason")
        for index, action in enumerate(plan.actions, 1):
            why = "\n".join([action.reason, *(f"  {line}" for line in action.details())])
            table.add_row(str(index), esc(action.title()), esc(why))
        say(console, table)
    _print_budget(plan, console)
    for note in plan.notes:
        say(console, f"  [yellow]note[/]: {esc(note)}")
    for update in plan.updates:
        if update.state in ("available", "waiting", "updating", "check_failed"):
            say(console, f"  [cyan]update[/] {esc(update.model)}: {esc(update.message())}")


def _print_budget(plan: Plan, console: Console) -> None:
    b = plan.budget
    if b.disk_models_limit:
        line = f"disk: models {format_bytes(b.disk_models_after)} of {format_bytes(b.disk_models_limit)}"
        if b.download_bytes:
            line += f", download {format_bytes(b.download_bytes)}"
        if b.disk_free_after is not None:
            line += f", free after {format_bytes(b.disk_free_after)} (min {format_bytes(b.disk_min_free)})"
        say(console, f"  {esc(line)}")
    if b.vram_estimates:
        limit = format_bytes(b.vram_limit) if b.vram_limit is not None else "unchecked"
        parts = ", ".join(f"{e.model} {format_bytes(e.total)}" for e in b.vram_estimates)
        say(console, f"  vram: pinned {format_bytes(b.vram_pinned)} of {limit} ({esc(parts)})")
    if b.cached_models:
        say(console, f"  rollback cache: {esc(', '.join(b.cached_models))}")
