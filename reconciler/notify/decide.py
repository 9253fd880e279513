"""What to tell the owner after a reconcile. Pure: status and outcomes in, notices out.

Each notice has a key and a state; it is sent only when the key's state differs from the one
last sent (`sent`), so a failure repeated every retry is told once, until the state changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.desired.schema import NotifyEvent
from reconciler.report.status import Status
from reconciler.units import format_bytes

FAIL_AFTER = 3  # consecutive failed reconciles before "failing" is sent (retries first)
NEAR_BUDGET = 0.9  # models at this share of their disk budget: disk_low


@dataclass(frozen=True)
class Notice:
    event: NotifyEvent
    key: str  # what the state is of: "health", "disk", "update:<model>"
    state: str  # sent once per change of this
    title: str
    body: str
    quiet: bool = False  # remembered as the state last told, not sent (a first healthy run)


@dataclass(frozen=True)
class UpdateDone:
    model: str
    old: str
    new: str
    rollback: str = ""
    error: str | None = None  # None: applied


def _commit(status: Status) -> str:
    return (status.desired_revision or "no commit")[:12]


def _health(status: Status, failures: int) -> tuple[str, NotifyEvent | None, str]:
    """(state, event to send on entering it, body)."""
    commit = _commit(status)
    stalled, degraded = status.condition("Stalled"), status.condition("Degraded")
    ready = status.condition("Ready")
    if stalled is not None and stalled.status:
        return (
            "stalled",
            "stalled",
            (
                f"Commit {commit} cannot be applied: {stalled.message or stalled.reason}. Nothing was "
                "changed; push a fixed commit (or free the resources it needs). Details: `reconciler status`."
            ),
        )
    if ready is not None and not ready.status and status.last_error:
        if failures < FAIL_AFTER:
            return "retrying", None, ""
        return (
            "failing",
            "failing",
            (
                f"Reconciling commit {commit} has failed {failures} times in a row: {status.last_error}. "
                "It keeps retrying with backoff; `reconciler status` and `reconciler doctor` say what to fix."
            ),
        )
    if degraded is not None and degraded.status:
        return (
            "degraded",
            "degraded",
            (f"The server runs commit {commit} with warnings: {degraded.message}. See `reconciler status`."),
        )
    if ready is not None and ready.status:
        return "ready", "recovered", f"The server matches commit {commit} again; nothing to do."
    return "unknown", None, ""


def decide(status: Status, *, failures: int, done: list[UpdateDone], sent: dict[str, str]) -> list[Notice]:
    notices: list[Notice] = []
    state, event, body = _health(status, failures)
    last = sent.get("health")
    if state != "retrying" and state != last and event is not None:
        # "recovered" only after something was told; a first healthy run is not news.
        if event != "recovered" or last in ("failing", "stalled", "degraded"):
            notices.append(Notice(event, "health", state, f"reconciler: {event.replace('_', ' ')}", body))
        elif last is None:
            notices.append(Notice(event, "health", state, "", "", quiet=True))
    notices += _updates(status, done, sent)
    notices += _disk(status, sent)
    return notices


def _updates(status: Status, done: list[UpdateDone], sent: dict[str, str]) -> list[Notice]:
    notices = []
    finished = {d.model for d in done}
    for d in done:
        key = f"update:{d.model}"
        if d.error is None:
            body = (
                f"{d.model} was updated sha256:{d.old[:12]} → sha256:{d.new[:12]} (commit "
                f"{_commit(status)}). The old version is kept as {d.rollback}; to go back, pin "
                f"{d.model}@sha256:{d.old} in git."
            )
            notices.append(
                Notice("update_applied", key, f"applied:{d.new}", "reconciler: update applied", body)
            )
        elif sent.get(key) != f"failed:{d.new}":
            body = (
                f"Updating {d.model} to sha256:{d.new[:12]} failed: {d.error}. The old version still runs; "
                "the update is tried again in the next window."
            )
            notices.append(Notice("update_failed", key, f"failed:{d.new}", "reconciler: update failed", body))
    for image in status.images:
        if not image.newer:
            continue
        key, state = f"image:{image.image}", f"available:{image.newer[0]}"
        if sent.get(key) != state:
            body = f"Image {image.image}: {image.update}. Nothing was changed."
            notices.append(Notice("update_available", key, state, "reconciler: newer image release", body))
    for m in status.models:
        if m.name in finished or m.update_state != "available" or not m.upstream_digest:
            continue
        key, state = f"update:{m.name}", f"available:{m.upstream_digest}"
        if sent.get(key) != state:
            body = (
                f"{m.name}: {m.update} (policy {m.update_policy}). To take it, set `updates: "
                "{policy: auto, window: ...}` for it in ollama.yaml; nothing was changed."
            )
            notices.append(Notice("update_available", key, state, "reconciler: update available", body))
    return notices


def _disk(status: Status, sent: dict[str, str]) -> list[Notice]:
    d = status.disk
    free, min_free = d.get("free"), d.get("min_free")
    used, budget = d.get("models_bytes"), d.get("models_budget")
    problems = []
    if free is not None and min_free is not None and free < min_free:
        problems.append(f"{format_bytes(free)} free, below the minimum {format_bytes(min_free)}")
    if used is not None and budget and used >= NEAR_BUDGET * budget:
        problems.append(f"models take {format_bytes(used)} of their {format_bytes(budget)} budget")
    state = "low" if problems else "ok"
    if state == sent.get("disk", "ok"):
        return []
    if state == "ok":
        return [Notice("disk_low", "disk", "ok", "", "", quiet=True)]
    body = (
        f"Disk space is low: {'; '.join(problems)}. Free space on the models volume, remove models "
        "from ollama.yaml, or raise budgets.disk in server.yaml."
    )
    return [Notice("disk_low", "disk", state, "reconciler: disk space low", body)]
