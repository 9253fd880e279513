"""Pull progress as a person sees it: one bar per model redrawn in place on a terminal (like
`ollama pull`), plain lines (one per 10 %) in a pipe and in the push output."""

from __future__ import annotations

import io
import re
from typing import Any

from rich.console import Console

from reconciler.gitops import push_line
from reconciler.report.console import _left, human, structured

GB = 1_000_000_000
_CONTROL = re.compile(r"\x1b\[(\?25[lh]|2K|1A)|\r|\n|[^\x1b\r\n]+")


def screen(raw: str) -> list[str]:
    """What a terminal shows after `raw`: the few control sequences rich's live display uses
    (carriage return, erase line, cursor up, newline, cursor hide/show) applied to a grid."""
    rows, row, col = [""], 0, 0
    for match in _CONTROL.finditer(raw):
        token = match.group(0)
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
            if row == len(rows):
                rows.append("")
        elif token == "\x1b[2K":
            rows[row] = ""
        elif token == "\x1b[1A":
            row = max(row - 1, 0)
        elif not token.startswith("\x1b"):
            line = rows[row].ljust(col)
            rows[row] = line[:col] + token + line[col + len(token) :]
            col += len(token)
    return [r.rstrip() for r in rows if r.strip()]


def _progress(model: str, total: int, quarter: int) -> dict[str, Any]:
    return {
        "event": "pull.progress",
        "model": model,
        "status": "pulling 1234",
        "total": total,
        "completed": total * quarter // 4,
        "percent": 25.0 * quarter,
        "rate_bps": 50_000_000,
        "eta_s": 4.0 - quarter,
    }


def _two_pulls() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"event": "action.start", "step": 1, "of": 1, "action": "pull both"}]
    for quarter in range(1, 5):
        events.append(_progress("llama3:8b", 47 * GB // 10, quarter))
        events.append(_progress("phi3:mini", 22 * GB // 10, quarter))
        if quarter == 2:
            events.append({"event": "kamal.output", "line": "a line printed while pulling"})
    events += [
        {"event": "pull.done", "model": "llama3:8b"},
        {"event": "pull.done", "model": "phi3:mini"},
        {"event": "action.done", "action": "pull both"},
    ]
    return events


def test_on_a_terminal_each_pull_is_one_bar_redrawn_in_place() -> None:
    out = io.StringIO()
    write = human(Console(file=out, force_terminal=True, width=100, color_system=None))
    for event in _two_pulls():
        write(event)
    shown = screen(out.getvalue())
    assert shown[0] == "→ [1/1] pull both"
    assert shown[1] == "  kamal| a line printed while pulling"  # printed above the bars
    bars = [line for line in shown if "GiB" in line]
    assert len(bars) == 2, shown  # 8 progress events, one line per model on screen
    assert bars[0].startswith("  llama3:8b ━") and "4.4/4.4 GiB" in bars[0]
    assert bars[1].startswith("  phi3:mini ━") and "2.0/2.0 GiB" in bars[1]
    assert all(b.endswith("47.7 MiB/s") for b in bars)  # the pull's own rate; done: no time left
    assert shown[-1] == "  ✓ pull both"
    assert out.getvalue().count("llama3:8b") > 4  # it was redrawn, not printed once


def test_a_failed_pull_leaves_its_bar_and_the_error_below() -> None:
    out = io.StringIO()
    write = human(Console(file=out, force_terminal=True, width=100, color_system=None))
    write(_progress("deepseek-r1:7b", 4 * GB, 1))
    write({"event": "action.failed", "action": "pull deepseek-r1:7b", "error": "registry gone"})
    shown = screen(out.getvalue())
    assert "0.9/3.7 GiB" in shown[0] and shown[0].endswith("47.7 MiB/s 3s")  # its last figures
    assert shown[1] == "  ✗ pull deepseek-r1:7b: registry gone"


def test_time_left_reads_like_ollama_pull() -> None:
    assert [_left(s) for s in (-1, 0.4, 45, 192, 3840)] == ["", "0s", "45s", "3m12s", "1h04m"]


def test_in_a_pipe_progress_is_plain_lines_once_per_ten_percent() -> None:
    out = io.StringIO()
    write = structured(out)
    for percent in range(0, 101, 2):  # 51 events, one every 2 %
        write({**_progress("phi3:mini", 2 * GB, 0), "percent": float(percent), "completed": percent})
    lines = out.getvalue().splitlines()
    assert len(lines) == 11  # 0 %, 10 %, …, 100 %
    assert "\x1b" not in out.getvalue()
    assert all(line.startswith("event='pull.progress'") for line in lines)


def test_the_push_output_has_one_line_per_ten_percent_with_rate_and_time_left() -> None:
    lines = [push_line(_progress("gemma:2b", 2 * GB, q)) for q in (1, 1, 2)]
    assert lines[0] == "  pulling gemma:2b: 25.0% of 1.9 GiB at 47.7 MiB/s, 3 s left"
    assert lines[1] is None  # still in the same 10 % step
    assert lines[2] is not None and lines[2].startswith("  pulling gemma:2b: 50.0%")
