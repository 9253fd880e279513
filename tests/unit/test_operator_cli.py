"""The operator's CLI pieces (issue 19 item 5): status codes, log filters and levels,
completion, colours."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.commands.logs import event_filter, parse_since
from reconciler.report.eventlog import EventLog, log_path
from reconciler.report.levels import level_of
from reconciler.report.readiness import status_exit_code
from reconciler.report.status import Condition, Status, save_status
from reconciler.state.suspend import Suspension

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False, env=env)  # fmt: skip


def conditions(**wanted: tuple[bool, str]) -> list[Condition]:
    return [Condition(type=k, status=v, reason=r, last_transition=AT) for k, (v, r) in wanted.items()]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (Status(conditions=conditions(Ready=(True, "Converged"))), 0),
        (Status(), 1),
        (Status(conditions=conditions(Ready=(False, "Reconciling"), Reconciling=(True, "Reconciling"))), 1),
        (
            Status(
                conditions=conditions(
                    Ready=(False, "InvalidDesiredState"), Stalled=(True, "InvalidDesiredState")
                )
            ),
            2,
        ),
        (Status(conditions=conditions(Ready=(False, "BudgetExceeded"), Stalled=(True, "BudgetExceeded"))), 3),
        (Status(conditions=conditions(Ready=(False, "ActionFailed"), Stalled=(False, "Retrying"))), 4),
        (
            Status(
                conditions=conditions(Ready=(False, "PermanentFailure"), Stalled=(True, "PermanentFailure"))
            ),
            4,
        ),
        (Status(conditions=conditions(Ready=(False, "Suspended")), suspended=Suspension(since=AT)), 6),
        (Status(conditions=conditions(Ready=(True, "Suspended")), suspended=Suspension(since=AT)), 0),
    ],
)
def test_the_status_exit_code_says_how_ready_the_server_is(status: Status, code: int) -> None:
    assert status_exit_code(status) == code


def test_status_exits_with_that_code_in_both_outputs(tmp_path: Path) -> None:
    save_status(
        tmp_path,
        Status(conditions=conditions(Ready=(False, "BudgetExceeded"), Stalled=(True, "BudgetExceeded"))),
    )
    assert run("status", "--state-dir", str(tmp_path)).returncode == 3
    assert run("status", "--json", "--state-dir", str(tmp_path)).returncode == 3


def test_levels_of_events() -> None:
    assert level_of({"event": "action.failed"}) == "error"
    assert level_of({"event": "reconcile.done", "result": "failed"}) == "error"
    assert level_of({"event": "retry.scheduled"}) == "warning"
    assert level_of({"event": "plan", "violations": ["disk"]}) == "warning"
    assert level_of({"event": "pull.progress"}) == "debug"
    assert level_of({"event": "reconcile.done", "result": "converged"}) == "info"


def test_since_takes_a_duration_or_an_iso_time() -> None:
    assert parse_since("10m", AT) == AT - timedelta(minutes=10)
    assert parse_since("1d", AT) == AT - timedelta(days=1)
    assert parse_since("2026-12-02T00:30", AT) == datetime(2026, 12, 2, 0, 30, tzinfo=UTC)
    with pytest.raises(Exception, match="duration ago"):
        parse_since("yesterday", AT)


def test_logs_filter_by_time_level_and_revision_and_show_timestamps(tmp_path: Path) -> None:
    log = EventLog(log_path(tmp_path))
    now = datetime.now(UTC)
    log(
        {
            "event": "reconcile.done",
            "ts": (now - timedelta(hours=2)).isoformat(),
            "revision": "aaaa",
            "result": "converged",
        }
    )
    log({"event": "pull.progress", "ts": now.isoformat(), "revision": "bbbb", "percent": 50, "total": 4096})
    log({"event": "action.failed", "ts": now.isoformat(), "revision": "bbbb", "error": "boom"})
    log({"event": "reconcile.done", "ts": now.isoformat(), "revision": "cccc", "result": "converged"})
    state = ["--state-dir", str(tmp_path)]
    default = run("logs", *state).stdout.splitlines()
    assert [line.split()[2] for line in default] == [
        "event='reconcile.done'",
        "event='action.failed'",
        "event='reconcile.done'",
    ]
    assert default[0].startswith(str(now - timedelta(hours=2))[:16])  # its time first
    assert len(run("-v", "logs", *state).stdout.splitlines()) == 4  # progress ticks too
    assert (
        "action.failed" in run("--quiet", "logs", *state).stdout
        and len(run("-q", "logs", *state).stdout.splitlines()) == 1
    )
    assert len(run("logs", "--since", "1h", *state).stdout.splitlines()) == 2
    assert (
        json.loads(run("logs", "--revision", "bbbbbbbb", "--json", "--level", "error", *state).stdout)[
            "error"
        ]
        == "boom"
    )
    assert event_filter(None, "info", "cccc")({"event": "trigger", "head": "cccc"})


def test_completion_scripts_for_each_shell() -> None:
    for shell, marker in (
        ("bash", "complete -o nosort -F"),
        ("zsh", "compdef"),
        ("fish", "complete --no-files"),
    ):
        script = run("completion", shell)
        assert script.returncode == 0 and marker in script.stdout and "_RECONCILER_COMPLETE" in script.stdout


def test_no_color_and_NO_COLOR_leave_out_the_colours(tmp_path: Path) -> None:
    save_status(tmp_path, Status(conditions=conditions(Ready=(True, "Converged"))))
    forced = {**__import__("os").environ, "FORCE_COLOR": "1", "TERM": "xterm-256color"}
    coloured = run("status", "--state-dir", str(tmp_path), env=forced).stdout
    assert "\x1b[32m" in coloured  # "True" in green when a terminal is forced
    assert "\x1b[32m" not in run("--no-color", "status", "--state-dir", str(tmp_path), env=forced).stdout
    assert (
        "\x1b[32m" not in run("status", "--state-dir", str(tmp_path), env={**forced, "NO_COLOR": "1"}).stdout
    )


def test_status_watch_prints_again_on_each_change_and_exits_with_the_last_code(tmp_path: Path) -> None:
    import signal
    import time

    save_status(tmp_path, Status(conditions=conditions(Ready=(False, "Reconciling"))))
    cmd = [sys.executable, "-m", "reconciler.cli", "status", "--watch", "--json", "--interval", "0.1"]
    # Ctrl-C as a terminal sends it, whatever this run inherited (a background job ignores SIGINT)
    proc = subprocess.Popen(
        [*cmd, "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    save_status(tmp_path, Status(conditions=conditions(Ready=(True, "Converged"))))
    second = json.loads(proc.stdout.readline())
    time.sleep(0.3)  # unchanged: nothing more is printed
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=20)
    assert (
        first["conditions"][0]["reason"] == "Reconciling" and second["conditions"][0]["reason"] == "Converged"
    )
    assert rest == "" and proc.returncode == 0  # Ready at the end


def test_under_journald_each_line_carries_its_syslog_priority() -> None:
    import io

    from reconciler.report.console import structured

    out = io.StringIO()
    write = structured(out, priorities=True)
    write({"event": "action.failed", "ts": "2026-12-02T01:00:00+00:00", "error": "boom"})
    write({"event": "retry.scheduled", "ts": "2026-12-02T01:00:00+00:00", "seconds": 2})
    write({"event": "reconcile.done", "ts": "2026-12-02T01:00:01+00:00", "result": "converged"})
    assert [line[:3] for line in out.getvalue().splitlines()] == ["<3>", "<4>", "<6>"]
