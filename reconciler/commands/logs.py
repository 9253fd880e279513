"""`reconciler logs`: the structured event log, filtered by time, level and revision."""

from __future__ import annotations

import re
import sys
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from reconciler.commands.common import state_dir_of, state_dir_option, verbosity
from reconciler.report.levels import LEVELS, Level, at_least, level_of

_AGO = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(s|m|h|d)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str, now: datetime) -> datetime:
    """`10m`, `2h`, `1d`, `30s` ago, or an ISO time (`2026-12-02T10:00`, UTC unless it says)."""
    ago = _AGO.match(value.strip())
    if ago:
        return now - timedelta(seconds=float(ago.group(1)) * _UNIT[ago.group(2)])
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            "a duration ago (30s, 10m, 2h, 1d) or an ISO time (2026-12-02T10:00)"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _when(event: dict[str, Any]) -> datetime | None:
    try:
        at = datetime.fromisoformat(str(event.get("ts")))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def event_filter(
    since: datetime | None, level: Level, revision: str | None
) -> Callable[[dict[str, Any]], bool]:
    def wanted(event: dict[str, Any]) -> bool:
        if not at_least(level_of(event), level):
            return False
        if revision is not None:
            rev = str(event.get("revision") or event.get("head") or "")
            if not rev or not (revision.startswith(rev) or rev.startswith(revision)):
                return False
        if since is not None:
            at = _when(event)
            return at is not None and at >= since
        return True

    return wanted


@click.command()
@state_dir_option
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep following new events.")
@click.option("--json", "as_json", is_flag=True, help="Raw JSON lines.")
@click.option("-n", "--lines", default=50, show_default=True, help="Events to show from the end first.")
@click.option("--since", help="Only events since: a duration ago (30s, 10m, 2h, 1d) or an ISO time.")
@click.option(
    "--level",
    type=click.Choice(LEVELS),
    default=None,
    help="Only events at this level or above (default info; -v: debug, --quiet: warning).",
)
@click.option("--revision", help="Only the events of this commit (a prefix).")
@click.option("--no-timestamps", is_flag=True, help="Leave out each line's time.")
@click.pass_context
def logs(
    ctx: click.Context,
    state_dir: Path | None,
    follow_: bool,
    as_json: bool,
    lines: int,
    since: str | None,
    level: Level | None,
    revision: str | None,
    no_timestamps: bool,
) -> None:
    """Show (and follow) the structured event log, each line with its time."""
    from reconciler.report.console import json_lines, structured
    from reconciler.report.eventlog import follow, log_path

    path = log_path(state_dir_of(state_dir))
    by_verbosity: dict[int, Level] = {-1: "warning", 1: "debug"}
    floor: Level = level or by_verbosity.get(verbosity(ctx), "info")
    start = parse_since(since, datetime.now(UTC)) if since else None
    wanted = event_filter(start, floor, revision)
    out = sys.stdout
    writer: Callable[[dict[str, Any]], None] = (
        json_lines(out) if as_json else structured(out, timestamps=not no_timestamps)
    )
    for event in deque(filter(wanted, follow(path, forever=False)), maxlen=lines):
        writer(event)
    if follow_:
        try:
            for event in follow(path, from_offset=None):
                if wanted(event):
                    writer(event)
        except KeyboardInterrupt:
            return
