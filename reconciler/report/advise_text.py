"""`reconciler advise` for people: the table of candidates, the proposal and its exact edit."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from reconciler.plan.advise import Advice, Option, summary
from reconciler.report.bench_text import label
from reconciler.report.console import esc, say
from reconciler.units import format_bytes


def _fits(o: Option) -> str:
    if o.fits:
        return "[green]yes[/]" + ("" if o.pinned else " (beside)")
    if o.blocked_by:
        return f"[red]no[/]: {esc(o.blocked_by[:60])}"
    return f"[red]no[/] (over by {format_bytes(o.needed - (o.limit or 0))})"


def _speed(o: Option) -> str:
    if o.measured is not None:
        kind = "simulated" if o.measured.simulated else "measured"
        return f"{o.measured.eval_tps:.1f} ({kind})"
    if o.predicted_tps is not None:
        return f"~{o.predicted_tps:.1f} (est. by size)"
    return "—"


def _marks(o: Option, desired: bool) -> str:
    return ("" if o.exact else " [dim](size from the tag)[/]") + (" [dim](desired)[/]" if desired else "")


def table(advice: Advice) -> Table:
    t = Table(title="candidates at the desired num_ctx and KV cache type")
    columns = [
        ("model", "left"),
        ("candidate", "left"),
        ("quant", "left"),
        ("num_ctx · KV", "left"),
        ("VRAM (its own)", "right"),
        ("pinned set", "right"),
        ("fits", "left"),
        ("gen tok/s", "right"),
    ]
    for name, justify in columns:  # fmt: skip
        t.add_column(name, justify=justify, no_wrap=name in ("model", "candidate"))  # type: ignore[arg-type]
    for o in advice.rows:
        same = o.candidate == o.model
        t.add_row(
            esc(label(o.model)) if same else "",
            esc(label(o.candidate))
            + ("" if o.exact else " [dim](size from the tag)[/]")
            + (" [dim](desired)[/]" if same else ""),
            esc(o.quantization or "?"),
            f"{o.num_ctx} · {esc(o.kv_type)}",
            format_bytes(o.own_total),
            format_bytes(o.needed),
            _fits(o),
            _speed(o),
        )
    return t


def print_advice(advice: Advice, diff: str | None, console: Console, gpu_note: str = "") -> None:
    verdict = "[green]fits[/]" if advice.fits else "[red]does not fit[/]"
    limit = format_bytes(advice.limit) if advice.limit is not None else "unchecked"
    needs = format_bytes(advice.needed)
    say(console, f"VRAM budget {limit}{esc(gpu_note)}; the desired pinned set needs {needs}: {verdict}")
    console.print(table(advice))
    say(console, f"[bold]proposal[/]: {esc(summary(advice))}")
    if advice.best is not None and diff:
        say(console, "[bold]the edit[/] (in the desired-state repo: `git apply`, commit, push):")
        console.print(diff, markup=False, highlight=False, end="")
    if not advice.fits and advice.alternatives:
        say(console, "[bold]other changes that fit[/]:")
        for o in advice.alternatives:
            say(console, f"  - {esc(summary(advice, o))}")
    for e in advice.evictions:
        who, by = esc(label(e.model)), esc(label(e.by))
        say(console, f"[bold]{who}[/] was evicted {e.count} times by {by}; both stay loaded with:")
        for o in e.options:
            edits = "; ".join(c.shown() for c in o.changes) or "as desired"
            say(console, f"  - {esc(summary(advice, o))}: {esc(edits)}")
        if not e.options:
            say(console, "  nothing that fits: unpin one of them, or pin fewer models")
    for note in advice.notes:
        say(console, f"[yellow]note[/]: {esc(note)}")
