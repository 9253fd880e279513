"""Plan notes are typed: Degraded and the time to come back derive from their kinds."""

from __future__ import annotations

from typing import get_args

from reconciler.desired.refs import canonical
from reconciler.plan.notes import POLICY, NoteKind, note, requeue_after
from reconciler.plan.planner import plan
from tests.unit.factories import GiB, degraded, desired, model, observed


def test_every_kind_says_whether_it_degrades_and_when_to_look_again() -> None:
    assert set(POLICY) == set(get_args(NoteKind))


def test_a_model_whose_name_reads_like_a_warning_does_not_make_the_server_degraded() -> None:
    """Degraded came from matching words in the notes: a pinned model named
    `notevicted/phi3:mini` made every status Degraded."""
    name = "notevicted/phi3:mini"
    state = desired([{"name": name, "keep_loaded": True}])
    seen = observed(state, models=[model(name, ("w", GiB), arch=None)])
    p = plan(state, seen)
    (partial,) = [n for n in p.notes if canonical(name) in n.message or name in n.message]
    assert partial.kind == "vram_estimate_partial" and "notevicted" in partial.message
    assert degraded(p, seen) == (False, "")


def test_the_soonest_note_says_when_to_come_back() -> None:
    waiting = note("no_room", "not warming x: it is warmed once they free the memory")
    assert requeue_after([note("vram_unchecked", "skipped"), waiting]) == waiting.requeue_after
    assert requeue_after([note("vram_unchecked", "skipped")]) is None
    assert str(waiting) == waiting.message
