"""`reconciler bench report --html FILE`: one self-contained HTML page with the plots inlined.

The plots are drawn with matplotlib (Agg, no display) into PNGs embedded as `data:` URIs, the
style sheet is inline and nothing is fetched, so the page reads the same offline, attached to
a mail or opened from a USB stick. Plots:

1. **tokens/s against VRAM, per quantization of one model** — one panel per model family
   (family · parameter size): each point a quantization at its setting, x the VRAM `ollama ps`
   reported, y the median generation rate with the range of the runs as an error bar;
2. **cold load time** per model (median and range);
3. **history** — generation tokens/s of each model across benchmark runs, with the commit and
   the Ollama version of each run on the axis, a dashed line where the Ollama version changed.

Rows and plots from a server that says its figures are simulated are labelled so.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from reconciler.analytics.results import LONG, BenchRun, ModelResult
from reconciler.analytics.stats import Stat
from reconciler.report.bench_text import duration, label, machine_line, placement
from reconciler.units import format_bytes

GIB = 2**30
_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em;margin:1em 0}
td,th{padding:.3em .6em;border-bottom:1px solid #eee}
th{text-align:left;background:#f6f6f6} td.n{text-align:right;font-variant-numeric:tabular-nums}
.sim{background:#fff3cd;border:1px solid #e0c36a;padding:.6em 1em;border-radius:4px}
img{max-width:100%;border:1px solid #eee} .dim{color:#777;font-size:.85em}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _stat(stat: Stat | None, digits: int = 1) -> str:
    return _e(stat.shown(digits)) if stat is not None else "—"


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: render to memory only
    import matplotlib.pyplot as plt

    return plt


def latest_results(runs: Iterable[BenchRun]) -> dict[str, tuple[BenchRun, ModelResult]]:
    newest: dict[str, tuple[BenchRun, ModelResult]] = {}
    for run in runs:
        for result in run.results:
            newest[result.model] = (run, result)
    return newest


def _family(r: ModelResult) -> str:
    name = label(r.shown).split(":", 1)[0]
    return f"{name} · {r.parameter_size}" if r.parameter_size else name


def plot_tokens_vs_vram(latest: dict[str, tuple[BenchRun, ModelResult]], simulated: bool) -> Any:
    plt = _pyplot()
    families: dict[str, list[ModelResult]] = defaultdict(list)
    for _, r in latest.values():
        if not r.embedding and r.eval_tps is not None:
            families[_family(r)].append(r)
    count = max(len(families), 1)
    fig, axes = plt.subplots(1, count, figsize=(max(4.2 * count, 6), 3.8), squeeze=False)
    for ax, (family, members) in zip(axes[0], sorted(families.items()), strict=False):
        members.sort(key=lambda r: r.size)
        xs = [r.size / GIB for r in members]
        ys = [r.eval_tps.median for r in members if r.eval_tps]
        low = [r.eval_tps.median - r.eval_tps.low for r in members if r.eval_tps]
        high = [r.eval_tps.high - r.eval_tps.median for r in members if r.eval_tps]
        ax.errorbar(xs, ys, yerr=[low, high], fmt="o-", capsize=4, color="#2a6fb0")
        for r, x, y in zip(members, xs, ys, strict=True):
            cpu = " (part CPU)" if r.on_cpu else ""
            ax.annotate(
                f"{r.quantization or label(r.shown)}{cpu}",
                (x, y),
                textcoords="offset points",
                xytext=(5, 6),
                fontsize=8,
            )
        ax.set_title(family, fontsize=10)
        ax.set_xlabel("VRAM in use (ollama ps), GiB")
        ax.set_ylabel("generation tokens/s")
        ax.grid(alpha=0.3)
    if not families:
        axes[0][0].text(0.5, 0.5, "no generation benchmark yet", ha="center", va="center")
    fig.suptitle(
        "tokens/s against VRAM per quantization" + (" — SIMULATED" if simulated else ""), fontsize=11
    )
    return fig


def plot_load_times(latest: dict[str, tuple[BenchRun, ModelResult]], simulated: bool) -> Any:
    plt = _pyplot()
    rows = sorted((r for _, r in latest.values() if r.load_s is not None), key=lambda r: r.size)
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(rows), 2) + 1.2))
    names = [label(r.shown) for r in rows]
    stats = [r.load_s for r in rows if r.load_s]
    scale, unit = (1.0, "s") if max((x.median for x in stats), default=1.0) >= 1 else (1000.0, "ms")
    medians = [x.median * scale for x in stats]
    err = [[(x.median - x.low) * scale for x in stats], [(x.high - x.median) * scale for x in stats]]
    ax.barh(names, medians, xerr=err, capsize=3, color="#6aa84f")
    for y, r in enumerate(rows):
        ax.text(medians[y] + err[1][y], y, f"  {format_bytes(r.size)}", va="center", fontsize=8)
    ax.set_xlabel(f"cold load, {unit} (Ollama's load_duration)")
    ax.set_title("cold load time" + (" — SIMULATED" if simulated else ""), fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_history(runs: list[BenchRun], simulated: bool) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.8))
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for index, run in enumerate(runs):
        for r in run.results:
            if r.eval_tps is not None:
                series[label(r.shown)].append((index, r.eval_tps.median))
    for name, points in sorted(series.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=name)
    labels = [
        f"#{run.id} {(run.revision or '')[:7]}\nOllama {run.machine.ollama_version or '?'}" for run in runs
    ]
    ax.set_xticks(range(len(runs)), labels, fontsize=7)
    for index in range(1, len(runs)):
        if runs[index].machine.ollama_version != runs[index - 1].machine.ollama_version:
            ax.axvline(index - 0.5, linestyle="--", color="#999")
    ax.set_ylabel("generation tokens/s")
    ax.set_title(
        "history across commits and Ollama versions" + (" — SIMULATED" if simulated else ""), fontsize=11
    )
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8, loc="best")
    return fig


def figures(runs: list[BenchRun]) -> dict[str, Any]:
    latest = latest_results(runs)
    simulated = any(run.machine.simulated for run in runs)
    return {
        "tokens_vs_vram": plot_tokens_vs_vram(latest, simulated),
        "load_times": plot_load_times(latest, simulated),
        "history": plot_history(runs, simulated),
    }


def _results_table(latest: dict[str, tuple[BenchRun, ModelResult]]) -> str:
    head = ("model", "quant", "num_ctx · KV", "gen tok/s", "prompt tok/s", "long prompt tok/s",
            "first token", "cold load", "VRAM (ollama ps)", "GPU util", "run")  # fmt: skip
    rows = []
    for run, r in sorted(latest.values(), key=lambda item: item[1].model):
        long = r.case(LONG)
        long_cell = (
            f"{_stat(long.prompt_tps, 0)} ({long.prompt_tokens} tok)" if long and long.prompt_tps else "—"
        )
        sim = " <b>sim</b>" if run.machine.simulated else ""
        cells = [
            f"<td>{_e(label(r.shown))}{' (embedding)' if r.embedding else ''}</td>",
            f"<td>{_e(r.quantization or '—')}</td>",
            f"<td>{r.setting.num_ctx} · {_e(r.setting.kv_type)}</td>",
            f'<td class="n">{"—" if r.embedding else _stat(r.eval_tps)}{sim}</td>',
            f'<td class="n">{_stat(r.prompt_tps, 0)}{sim}</td>',
            f'<td class="n">{long_cell}</td>',
            f'<td class="n">{_e(duration(r.ttft_s))}</td>',
            f'<td class="n">{_e(duration(r.load_s))}</td>',
            f'<td class="n">{_e(placement(r))}</td>',
            f'<td class="n">{f"{r.gpu_util_mean:.0f} %" if r.gpu_util_mean is not None else "—"}</td>',
            f"<td>#{run.id} {run.started_at:%Y-%m-%d %H:%M} {_e((run.revision or '')[:7])}</td>",
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    header = "".join(f"<th>{h}</th>" for h in head)
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _runs_table(runs: list[BenchRun]) -> str:
    rows = []
    for run in reversed(runs):
        sim = "simulated" if run.machine.simulated else "measured"
        rows.append(
            f"<tr><td>#{run.id}</td><td>{run.started_at:%Y-%m-%d %H:%M}</td>"
            f"<td>{_e((run.revision or '—')[:12])}</td>"
            f"<td>{_e(run.machine.ollama_version or '?')}</td><td>{_e(run.machine.gpu_name or '—')}</td>"
            f"<td>{_e(run.machine.gpu_driver or '—')}</td><td>{_e(run.status)}</td><td>{sim}</td>"
            f"<td>{', '.join(_e(label(r.shown)) for r in run.results)}</td></tr>"
        )
    header = "".join(
        f"<th>{h}</th>"
        for h in ("run", "when", "commit", "Ollama", "GPU", "driver", "status", "figures", "models")
    )
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def render_html(runs: list[BenchRun]) -> str:
    plt = _pyplot()
    latest = latest_results(runs)
    simulated = sorted({run.machine.simulated for run in runs if run.machine.simulated})
    images = {}
    for name, fig in figures(runs).items():
        images[name] = _png(fig)
        plt.close(fig)
    banner = "".join(
        f'<p class="sim"><b>SIMULATED</b>: rows marked <b>sim</b> come from a server that says its figures '
        f"are computed by a performance model, not measured on hardware — {_e(text)}</p>"
        for text in simulated
    )
    machines = "".join(
        f"<li>{_e(line)}</li>" for line in sorted({machine_line(r.machine) for r, _ in latest.values()})
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reconciler benchmark report</title>
<style>{_STYLE}</style></head><body>
<h1>Model benchmarks</h1>
{banner}
<ul>{machines}</ul>
<h2>Latest result of each model</h2>
{_results_table(latest)}
<p class="dim">Medians over the runs, ± half their range. Generation = eval_count / eval_duration,
prompt = prompt_eval_count / prompt_eval_duration (Ollama's own timing fields); first token = time to the
first streamed token as the client saw it; cold load = Ollama's load_duration after an unload; VRAM = what
ollama ps reported, with the part left on the CPU.</p>
<h2>Tokens/s against VRAM, per quantization</h2>
<img alt="tokens per second against VRAM" src="data:image/png;base64,{images["tokens_vs_vram"]}">
<h2>Cold load time</h2>
<img alt="cold load time" src="data:image/png;base64,{images["load_times"]}">
<h2>History across commits and Ollama versions</h2>
<img alt="history" src="data:image/png;base64,{images["history"]}">
<h2>Runs</h2>
{_runs_table(runs)}
</body></html>
"""
