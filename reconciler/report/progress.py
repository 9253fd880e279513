"""A pull's progress as plain lines: where no bar can redraw (a pipe, the push output), one
line per model each time it passes another 10 %, with the rate and the time left."""

from __future__ import annotations

from typing import Any

from reconciler.units import format_bytes

STEP_PERCENT = 10


class PullSteps:
    """Which `pull.progress` events get a line: the first of each model, then one per step."""

    def __init__(self, step: int = STEP_PERCENT) -> None:
        self.step = step
        self._last: dict[str, int] = {}

    def wanted(self, event: dict[str, Any]) -> bool:
        if not event.get("total"):
            return False
        model = str(event.get("model"))
        step = int(float(event.get("percent") or 0) // self.step)
        if self._last.get(model) == step:
            return False
        self._last[model] = step
        return True


def pull_line(event: dict[str, Any]) -> str:
    """`pulling phi3:mini: 40.0% of 2.2 GiB at 52.0 MiB/s, 25 s left`."""
    percent = float(event.get("percent") or 0)
    line = f"pulling {event.get('model')}: {percent:.1f}% of {format_bytes(int(event['total']))}"
    rate = int(event.get("rate_bps") or 0)
    if rate > 0:
        line += f" at {format_bytes(rate)}/s"
    eta = float(event.get("eta_s", -1))
    if eta >= 0:
        line += f", {eta:.0f} s left"
    return line
