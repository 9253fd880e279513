"""Medians and spread over benchmark runs, and rates from Ollama's own timing fields (pure).

Ollama reports durations in nanoseconds (api/types.go Metrics): tokens per second is
`eval_count / eval_duration` for generation and `prompt_eval_count / prompt_eval_duration`
for the prompt (what `ollama run --verbose` prints as "eval rate" and "prompt eval rate",
api/types.go Metrics.Summary).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict


class Stat(BaseModel):
    """A median over runs with the range it came from."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    median: float
    low: float
    high: float
    n: int

    @property
    def spread(self) -> float:
        """(high − low) / median: 0.04 reads as ±2 %."""
        return (self.high - self.low) / self.median if self.median else 0.0

    def shown(self, digits: int = 1) -> str:
        text = f"{self.median:.{digits}f}"
        return f"{text} ±{self.spread * 50:.0f}%" if self.n > 1 else text


def summarize(values: Iterable[float | None]) -> Stat | None:
    """The median and range of the values measured (None: not measured), or None if none were."""
    measured = [v for v in values if v is not None]
    if not measured:
        return None
    return Stat(median=statistics.median(measured), low=min(measured), high=max(measured), n=len(measured))


def rate(count: int | None, duration_ns: int | None) -> float | None:
    """Tokens per second from a count and a duration in ns; None when either is missing or 0."""
    if not count or not duration_ns or duration_ns <= 0:
        return None
    return count / (duration_ns / 1e9)


def seconds(duration_ns: int | None) -> float | None:
    return duration_ns / 1e9 if duration_ns else None
