"""Is anybody using Ollama? Tables of (/api/ps looks, what the benchmark did) → the signs it
reads (reconciler/analytics/activity.py), with expires_at kept the way sched.go keeps it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.analytics.activity import FOREVER, InUse, Ledger, Look, Row, Why, judge, last_used

T0 = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)
KEEP = 600.0  # OLLAMA_KEEP_ALIVE 10m
QUIET = 300.0


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def look(at: float, *rows: tuple[str, datetime | None], took: float = 0.01, gpu: float | None = None) -> Look:
    return Look(at=T0 + s(at), rows=tuple(Row(n, e) for n, e in rows), took_s=took, gpu_util=gpu)


def whys(signs: list[InUse]) -> list[tuple[str, Why]]:
    return [(x.model, x.why) for x in signs]


CASES = [
    # (name, previous, current, ledger, expected)
    ("nobody: idle 8 min, 10m keep-alive", None, look(0, ("phi3", T0 - s(480) + s(KEEP))), Ledger(), []),
    ("used 2 min ago", None, look(0, ("phi3", T0 - s(120) + s(KEEP))), Ledger(), [("phi3", Why.RECENT)]),
    ("pinned, used a minute ago (expires = end + MaxInt64 ns)", None,
     look(0, ("llama3", T0 - s(60) + FOREVER)), Ledger(), [("llama3", Why.RECENT)]),
    ("pinned, idle for an hour", None, look(0, ("llama3", T0 - s(3600) + FOREVER)), Ledger(), []),
    ("pinned, last request the reconciler's own warm load", None, look(0, ("llama3", T0 - s(5) + FOREVER)),
     Ledger(warmed_at={"llama3": T0 - s(5)}), []),
    ("pinned, used after the reconciler's warm load", None, look(0, ("llama3", T0 - s(5) + FOREVER)),
     Ledger(warmed_at={"llama3": T0 - s(100)}), [("llama3", Why.RECENT)]),
    ("a request outlasting the keep-alive: expires_at in the past", None,
     look(0, ("phi3", T0 - s(30))), Ledger(), [("phi3", Why.IN_FLIGHT)]),
    ("a request ended between two looks: expires_at moved",
     look(0, ("phi3", T0 - s(2000) + s(KEEP))), look(3, ("phi3", T0 + s(3) + s(KEEP))), Ledger(),
     [("phi3", Why.ANSWERED)]),
    ("first request: expires_at moves with the clock",
     look(0, ("phi3", T0 + s(KEEP))), look(3, ("phi3", T0 + s(3) + s(KEEP))), Ledger(),
     [("phi3", Why.STARTING)]),
    ("loaded between two looks", look(0), look(3, ("gemma", T0 + s(KEEP))), Ledger(),
     [("gemma", Why.APPEARED)]),
    ("/api/ps waited for a load", None, look(0, took=8.0), Ledger(), [("", Why.LOADING)]),
    ("the GPU computes while the benchmark waits", None, look(0, gpu=87.0), Ledger(), [("", Why.GPU_BUSY)]),
    ("the GPU computes for the benchmark", None, look(0, gpu=87.0), Ledger(computing=True), []),
    ("our runner, expiry as our last request set it",
     look(0, ("llama3", T0 + s(120))), look(2, ("llama3", T0 + s(120))),
     Ledger(expected={"llama3": T0 + s(120)}), []),
    ("our runner, somebody else's request moved its expiry",
     look(0, ("llama3", T0 + s(120))), look(9, ("llama3", T0 + s(128))),
     Ledger(expected={"llama3": T0 + s(120)}), [("llama3", Why.OURS_USED)]),
    ("our runner with our own request in flight", None, look(0, ("llama3", T0 - s(50))),
     Ledger(expected={"llama3": None}), []),
    ("our runner unloaded by somebody",
     look(0, ("llama3", T0 + s(120))), look(2), Ledger(expected={"llama3": T0 + s(120)}),
     [("llama3", Why.OURS_GONE)]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "previous", "current", "ledger", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_signs_of_use(
    name: str, previous: Look | None, current: Look, ledger: Ledger, expected: list[tuple[str, Why]]
) -> None:
    assert whys(judge(previous, current, ledger, quiet_s=QUIET, keep_alive_s=KEEP)) == expected


def test_last_use_is_expiry_minus_keep_alive_exactly_for_a_pinned_model() -> None:
    end = T0 - s(42)
    assert last_used(Row("llama3", end + FOREVER), T0, KEEP) == end
    assert last_used(Row("phi3", end + s(KEEP)), T0, KEEP) == end
    assert last_used(Row("phi3", None), T0, KEEP) is None


def test_a_message_names_the_model_and_how_long_ago() -> None:
    (sign,) = judge(
        None, look(0, ("phi3", T0 - s(120) + s(KEEP))), Ledger(), quiet_s=QUIET, keep_alive_s=KEEP
    )
    assert sign.message == "phi3 was used 120 s ago (quiet period 300 s)"
