"""Events as a person reads them: in the push output and on a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from reconciler.gitops import push_line
from reconciler.report.console import human


def test_kamal_progress_reaches_the_pusher_line_by_line() -> None:
    events = [
        {"event": "kamal.start", "command": "deploy", "version": "1a93"},
        {"event": "kamal.output", "command": "kamal deploy", "line": "Acquiring the deploy lock..."},
        {"event": "kamal.stale_lock_released", "interrupted": "kamal deploy --version=1a93"},
    ]
    assert [push_line(e) for e in events] == [
        "  kamal deploy --version=1a93",
        "  kamal| Acquiring the deploy lock...",
        "  kamal: released the deploy lock `kamal deploy --version=1a93` left when interrupted",
    ]
    assert push_line({"event": "kamal.image_built", "image": "x"}) is None


def test_kamal_output_on_a_terminal_is_printed_verbatim() -> None:
    out = io.StringIO()
    write = human(Console(file=out, width=200, color_system=None))
    write({"event": "kamal.output", "line": "  INFO [d9dc] Running docker -v on [bold]127.0.0.1"})
    assert out.getvalue() == "  kamal|   INFO [d9dc] Running docker -v on [bold]127.0.0.1\n"


def test_a_load_in_progress_reaches_the_pusher_and_the_terminal() -> None:
    events = [
        {"event": "load.progress", "model": "llama3", "elapsed_s": s, "timeout_s": 660.0}
        for s in (2.0, 4.1, 12.2)
    ]
    lines = [push_line(e) for e in events] + [
        push_line({"event": "load.done", "model": "llama3", "elapsed_s": 13.0})
    ]
    # one line every 10 s of loading, then the time it took
    assert lines == [
        "  loading llama3: 2.0 s so far",
        None,
        "  loading llama3: 12.2 s so far",
        "  loaded llama3 in 13.0 s",
    ]
    out = io.StringIO()
    write = human(Console(file=out, width=200, color_system=None))
    write(events[1])
    write({"event": "load.done", "model": "llama3", "elapsed_s": 13.0})
    assert out.getvalue() == "    llama3: loading, 4 s (waiting up to 660 s)\n    llama3: loaded in 13.0 s\n"
