"""Terminal output: user- and server-supplied text is printed as written (no rich markup read
into it, no highlighter colours in the middle of a name, no terminal control codes)."""

from __future__ import annotations

import io

from rich.console import Console

from reconciler.plan.actions import Plan
from reconciler.plan.notes import note
from reconciler.report.console import human
from reconciler.report.render import print_plan


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, color_system="truecolor", width=200), out


def test_an_event_with_brackets_prints_as_written() -> None:
    console, out = _terminal()
    write = human(console)
    write(
        {"event": "action.failed", "action": "pull llama3:8b", "error": "no space in [/root/.ollama/models]"}
    )
    write({"event": "reconcile.done", "result": "failed", "actions": 0, "notes": ["[bold]x[/bold] [/]"]})
    text = out.getvalue()
    assert "[/root/.ollama/models]" in text and "[bold]x[/bold] [/]" in text


def test_model_names_are_not_recoloured_by_the_highlighter() -> None:
    console, out = _terminal()
    human(console)({"event": "action.start", "step": 1, "of": 2, "action": "pull llama3:8b-instruct-q4_K_M"})
    assert "llama3:8b-instruct-q4_K_M" in out.getvalue()


def test_terminal_control_codes_from_a_server_are_shown_not_obeyed() -> None:
    console, out = _terminal()
    human(console)({"event": "action.failed", "action": "pull x", "error": "\x1b]0;owned\x07\x1b[2Jgone"})
    assert "\x1b]0;owned" not in out.getvalue() and "\\x1b" in out.getvalue()


def test_a_plan_note_with_markup_prints_as_written() -> None:
    console, out = _terminal()
    print_plan(Plan(revision="abc", notes=(note("disk_unobserved", "kept [/root/.ollama] [red]"),)), console)
    assert "kept [/root/.ollama] [red]" in out.getvalue()
