"""Waiting for a commit: follow the event log until the reconcile of that commit ends.

`reconciler wait` and the post-receive hook both use `wait_for`. It reads what `serve`
writes (status.json, events.jsonl) and never acts. A reconcile that ended before the wait
began counts: the status says so, or the tail of the log holds it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from reconciler.errors import EXIT_INVALID, EXIT_OK, EXIT_REFUSED, EXIT_RUNTIME
from reconciler.report.eventlog import end_offset, follow, log_path, parse_line
from reconciler.report.events import note_text

if TYPE_CHECKING:
    from reconciler.report.status import Status

EXIT_TIMEOUT = 5
EXIT_SUSPENDED = 6
TAIL_BACK = 256 * 1024  # the reconcile may have started before the wait began

Result = Literal[
    "converged", "degraded", "refused", "rejected", "failed", "superseded", "timeout", "suspended"
]
EXIT_CODES: dict[Result, int] = {
    "converged": EXIT_OK,
    "degraded": EXIT_OK,
    "superseded": EXIT_OK,
    "rejected": EXIT_INVALID,
    "refused": EXIT_REFUSED,
    "failed": EXIT_RUNTIME,
    "timeout": EXIT_TIMEOUT,
    "suspended": EXIT_SUSPENDED,
}
Event = dict[str, Any]


@dataclass(frozen=True)
class Waited:
    result: Result
    revision: str  # the commit the result is about (a newer one, once followed to it)
    reason: str = ""
    failed_attempts: int = 0

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.result]

    def as_json(self) -> dict[str, Any]:
        return {"result": self.result, "revision": self.revision, "reason": self.reason,
                "exit_code": self.exit_code}  # fmt: skip


@dataclass(frozen=True)
class WaitRules:
    timeout: float
    attempts: int = 1  # failed reconciles of the commit before giving up (serve retries)
    follow_newer: bool = True  # a newer commit that contains this one: wait for it instead
    # True when the first commit (a 12-character prefix or more) descends from the second.
    newer: Callable[[str, str], bool] = lambda _other, _mine: False
    # Whether a suspension is still in force: a reconcile planned while suspended, once
    # resumed, is followed by the one that applies (`resume` starts it).
    still_suspended: Callable[[], bool] = lambda: True


def _about(event: Event, revision: str) -> bool:
    rev = str(event.get("revision") or event.get("head") or "")
    return bool(rev) and revision.startswith(rev)


def _starts(event: Event, revision: str, recent: list[Event]) -> bool:
    """Whether `event` begins a reconcile of `revision`: serve's trigger (naming the head), or
    a reconcile.start after an earlier one of it had ended."""
    if not _about(event, revision):
        return False
    if event["event"] == "trigger":
        return True
    ended = any(
        e["event"] in ("reconcile.done", "reconcile.rejected") and _about(e, revision) for e in recent
    )
    return event["event"] in ("reconcile.start", "reconcile.rejected") and (ended or not recent)


def _tail(path: Path, end: int) -> list[Event]:
    """The whole events in the last TAIL_BACK bytes before `end`."""
    start = max(end - TAIL_BACK, 0)
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            lines = handle.read(end - start).split(b"\n")
    except FileNotFoundError:
        return []
    if start > 0:
        lines = lines[1:]  # begun before the window
    return [e for e in map(parse_line, lines) if e is not None]


def _events(path: Path, deadline: float, revision: str) -> Iterator[Event]:
    """The events from the last start of `revision`'s reconcile in the log's tail, then new ones."""
    end = end_offset(path)
    recent: list[Event] = []
    for event in _tail(path, end):
        if _starts(event, revision, recent):
            recent = [event]
        elif recent:
            recent.append(event)
    yield from recent
    yield from follow(path, from_offset=end, stop=lambda: time.monotonic() > deadline)


def wait_for(
    state_dir: Path,
    revision: str,
    rules: WaitRules,
    on_event: Callable[[Event], None] = lambda _e: None,
) -> Waited:
    """Follow `revision`'s reconcile until it ends (or `rules.timeout`), passing each of its
    events to `on_event`."""
    deadline = time.monotonic() + rules.timeout
    attempts = 0
    for event in _events(log_path(state_dir), deadline, revision):
        name = event["event"]
        rev = str(event.get("revision") or "")
        if name in ("reconcile.start", "reconcile.rejected") and rev and not revision.startswith(rev):
            if not rules.newer(rev, revision):
                continue
            if not rules.follow_newer:
                return Waited("superseded", rev, f"superseded by a newer push ({rev})")
            revision = rev  # a prefix: events name commits by their first 12 characters
        if not _about(event, revision):
            continue
        on_event(event)
        ended = _ended(event, revision)
        if ended is None:
            continue
        if ended.result == "suspended" and not rules.still_suspended():
            continue
        if ended.result != "failed":
            return ended
        attempts += 1
        if attempts >= rules.attempts:
            return Waited("failed", ended.revision, ended.reason, attempts)
    return Waited("timeout", revision, f"still reconciling after {rules.timeout:.0f} s", attempts)


def _ended(event: Event, revision: str) -> Waited | None:
    name = event["event"]
    if name == "reconcile.rejected":
        return Waited("rejected", revision, "; ".join(map(str, event.get("problems") or [])))
    if name != "reconcile.done" or event.get("result") == "preempted":
        return None  # preempted: a newer commit's reconcile follows
    if event.get("result") == "planned":  # in serve's log: planned only, while suspended
        return Waited("suspended", revision, "recorded, not applied: `reconciler resume` applies it")
    result = str(event.get("result"))
    notes = "; ".join(map(note_text, event.get("notes") or []))
    if result in ("converged", "degraded", "refused"):
        return Waited(result, revision, notes)  # type: ignore[arg-type]
    return Waited("failed", revision, notes or f"the reconcile ended {result}")


def settled(status: Status, revision: str, rules: WaitRules) -> Waited | None:
    """What status.json already says about `revision`: applied (itself or a newer commit that
    contains it), or refused or rejected and waiting for a new commit (None: not settled yet,
    follow the log)."""
    applied = status.last_applied_revision
    if applied is not None and (applied == revision or rules.newer(applied, revision)):
        return Waited("converged", applied, "already applied")
    if status.last_attempted_revision != revision:
        return None
    stalled = status.condition("Stalled")
    if stalled is None or not stalled.status:
        return None
    by_reason: dict[str, Result] = {"BudgetExceeded": "refused", "InvalidDesiredState": "rejected"}
    return Waited(by_reason.get(stalled.reason, "failed"), revision, stalled.message)  # PermanentFailure
