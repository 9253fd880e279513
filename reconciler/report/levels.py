"""The level of an event (for `logs --level`, `-v`/`--quiet`, and journald's priorities).

Events have names, not levels: failures are errors; retries, refusals, rejections,
suspensions, preemptions and a stuck loop are warnings; progress ticks are debug.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

Level = Literal["debug", "info", "warning", "error"]
LEVELS: tuple[Level, ...] = ("debug", "info", "warning", "error")
# syslog priorities, as journald reads a `<N>` prefix on a line of a service's stderr
PRIORITY: dict[Level, int] = {"debug": 7, "info": 6, "warning": 4, "error": 3}
_WARNINGS = ("retry.", "reconcile.rejected", "reconcile.suspended", "reconcile.preempted", "serve.stuck",
             "serve.recovered")  # fmt: skip
_DEBUG = ("pull.progress", "load.progress")


def level_of(event: dict[str, Any]) -> Level:
    name = str(event.get("event", ""))
    result = event.get("result")
    if name.endswith(".failed") or result == "failed":
        return "error"
    if (
        name.startswith(_WARNINGS)
        or result in ("refused", "degraded", "preempted")
        or event.get("violations")
    ):
        return "warning"
    if name in _DEBUG:
        return "debug"
    return "info"


def at_least(level: Level, floor: Level) -> bool:
    return LEVELS.index(level) >= LEVELS.index(floor)


def quiet_filter(
    subscriber: Callable[[dict[str, Any]], None], quiet: bool
) -> Callable[[dict[str, Any]], None]:
    """With `quiet` (--quiet), only warnings, errors and the result reach `subscriber`."""
    if not quiet:
        return subscriber

    def only_what_matters(event: dict[str, Any]) -> None:
        if event["event"] == "reconcile.done" or at_least(level_of(event), "warning"):
            subscriber(event)

    return only_what_matters
