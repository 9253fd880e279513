"""Benchmark results for people: the terminal table of `reconciler bench` and `bench report`.

Every figure a server computed from a performance model (it says `simulated` in
`/api/version`, as the test harness's fake Ollama does) is printed under a SIMULATED banner
and marked in the table, so a simulated figure is never read as a measurement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.console import Console
from rich.table import Table

from reconciler.analytics.results import LONG, BenchRun, Machine, ModelResult
from reconciler.analytics.stats import Stat
from reconciler.desired.refs import InvalidReference, parse_ref
from reconciler.report.console import esc, say
from reconciler.report.events import Event
from reconciler.units import format_bytes

SIMULATED = "SIMULATED"


def short(name: str) -> str:
    try:
        return parse_ref(name).short
    except InvalidReference:
        return name


def label(name: str) -> str:
    """model:tag (namespace/model:tag outside `library`), for tables and plots."""
    try:
        ref = parse_ref(name)
    except InvalidReference:
        return name
    return (
        f"{ref.model}:{ref.tag}" if ref.namespace == "library" else f"{ref.namespace}/{ref.model}:{ref.tag}"
    )


def _stat(stat: Stat | None, digits: int = 1) -> str:
    return stat.shown(digits) if stat is not None else "—"


def duration(stat: Stat | None) -> str:
    """Seconds as people read them: `2.41 s`, `180 ms`, `0.4 ms`."""
    if stat is None:
        return "—"
    value = stat.median
    text = (
        f"{value:.2f} s"
        if value >= 1
        else f"{value * 1000:.0f} ms"
        if value >= 0.01
        else f"{value * 1000:.1f} ms"
    )
    return f"{text} ±{stat.spread * 50:.0f}%" if stat.n > 1 else text


def machine_line(machine: Machine) -> str:
    gpu = (
        f"{machine.gpu_name} (driver {machine.gpu_driver}, {format_bytes(machine.gpu_total or 0)})"
        if machine.gpu_name
        else f"no GPU seen by NVML ({machine.gpu_note or 'not observed'})"
    )
    return f"Ollama {machine.ollama_version or '?'} · {gpu}"


def placement(r: ModelResult) -> str:
    if not r.size:
        return "—"
    if r.size_vram >= r.size:
        return f"{format_bytes(r.size_vram)} GPU"
    return f"{format_bytes(r.size_vram)} GPU + {format_bytes(r.on_cpu)} CPU"


def result_table(rows: Iterable[tuple[BenchRun, ModelResult]], title: str = "") -> Table:
    table = Table(title=title or None, show_lines=False)
    for column, justify in [
        ("model", "left"), ("quant", "left"), ("num_ctx · KV", "left"), ("gen tok/s", "right"),
        ("prompt tok/s", "right"), ("long prompt tok/s", "right"), ("first token", "right"),
        ("cold load", "right"), ("VRAM (ollama ps)", "right"), ("GPU util", "right"), ("run", "left"),
    ]:  # fmt: skip
        table.add_column(column, justify=justify, no_wrap=column in ("model", "run"))  # type: ignore[arg-type]
    for run, r in rows:
        long = r.case(LONG)
        long_text = (
            f"{_stat(long.prompt_tps, 0)} ({long.prompt_tokens} tok)" if long and long.prompt_tps else "—"
        )
        mark = " (sim)" if run.machine.simulated else ""
        table.add_row(
            esc(label(r.shown)) + (" [dim](embed)[/]" if r.embedding else ""),
            esc(r.quantization or "—"),
            f"{r.setting.num_ctx} · {esc(r.setting.kv_type)}",
            ("—" if r.embedding else _stat(r.eval_tps)) + mark,
            _stat(r.prompt_tps, 0) + mark,
            long_text,
            duration(r.ttft_s),
            duration(r.load_s),
            placement(r),
            f"{r.gpu_util_mean:.0f} %" if r.gpu_util_mean is not None else "—",
            f"#{run.id} {esc((run.revision or '')[:7])}",
        )
    return table


def print_run(run: BenchRun, console: Console) -> None:
    if run.machine.simulated:
        say(console, f"[bold yellow]{SIMULATED}[/]: the server says its figures come from a performance "
                     f"model, not hardware — {esc(run.machine.simulated)}")  # fmt: skip
    say(console, esc(machine_line(run.machine)))
    if run.results:
        console.print(result_table(((run, r) for r in run.results), title=f"benchmark #{run.id}"))
    if run.status != "completed":
        say(console, f"[bold]{esc(run.status)}[/]: {esc(run.note)}")


def print_report(latest: dict[str, tuple[BenchRun, ModelResult]], console: Console) -> None:
    if not latest:
        say(console, "no benchmark has been recorded yet: run `reconciler bench`")
        return
    simulated = {run.machine.simulated for run, _ in latest.values() if run.machine.simulated}
    for text in sorted(simulated):
        say(console, f"[bold yellow]{SIMULATED}[/] (rows marked sim): {esc(text)}")
    machines = {machine_line(run.machine) for run, _ in latest.values()}
    for line in sorted(machines):
        say(console, esc(line))
    rows = sorted(
        latest.values(),
        key=lambda item: (item[1].embedding, -(item[1].eval_tps.median if item[1].eval_tps else 0)),
    )
    console.print(result_table(rows, title="latest benchmark of each model"))
    say(console, "[dim]medians over the runs, ± half the range; gen = eval_count/eval_duration, prompt = "
                 "prompt_eval_count/prompt_eval_duration (Ollama's own timing fields)[/]")  # fmt: skip


def progress(console: Console) -> Callable[[Event], None]:
    """Benchmark events as lines for a person watching (on stderr)."""

    def write(event: Event) -> None:
        name = event["event"]
        if name == "bench.start":
            sim = " — the server says its figures are SIMULATED" if event.get("simulated") else ""
            say(
                console,
                f"benchmarking {esc(', '.join(map(short, event['models'])))}: {event['runs']} run(s){sim}",
            )
        elif name == "bench.waiting":
            say(console, f"  waiting ({event['waited_s']:.0f} s): {esc('; '.join(event['reasons']))}")
        elif name == "bench.model":
            say(console, f"  {esc(label(str(event['model'])))} at {esc(event['setting'])}")
        elif name == "bench.run":
            say(console, f"    run {event['run']}/{event['of']} done")
        elif name == "bench.interrupted":
            say(console, f"  [bold]stopped[/]: {esc(event['reason'])}")
        elif name == "bench.warning":
            say(console, f"  warning: {esc(event['message'])}")
        elif name in ("action.start", "load.done"):
            what = event.get("action") or f"loaded {event.get('model')}"
            say(console, f"  restoring: {esc(what)}")

    return write
