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
