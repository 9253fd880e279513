"""`reconciler status`: conditions in the controller-runtime style, per-model state, budgets.

Written by `serve` (and `apply`) at the end of every reconcile, errors included, and
while pulls progress. The applied revision advances only on success.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reconciler.desired.schema import DesiredState
from reconciler.observed import AppliedUpdate, Observed
from reconciler.plan.actions import OpenWebUIAction, Plan, UpdateState
from reconciler.plan.image_tags import image_states
from reconciler.plan.notes import Note
from reconciler.plan.ollama_version import OLDEST_SUPPORTED, support
from reconciler.plan.vram import gpu_room
from reconciler.state.store import read_model, write_atomic
from reconciler.state.suspend import Suspension
from reconciler.versions import show

ConditionType = Literal["Ready", "Reconciling", "Stalled", "Degraded"]
# Every reason a condition can carry (like Flux's condition_types.go): programs match these,
# people read the message beside them.
ConditionReason = Literal[
    "Converged",  # Ready, Stalled: the server matches the commit
    "Idle",  # Reconciling: nothing in progress
    "Reconciling",  # Reconciling: a reconcile runs now
    "Healthy",  # Degraded: nothing is short of what the commit asks for
    "Warnings",  # Degraded: some notes say the server is short of the commit (a model not warmed…)
    "BudgetExceeded",  # the plan was refused: a budget would break
    "InvalidDesiredState",  # the commit does not validate, or is not signed as required
    "PermanentFailure",  # an action failed in a way no retry of this commit can fix
    "WaitingForFix",  # Reconciling: stalled until the fix the error names is made
    "WaitingForNewCommit",  # Reconciling: stalled until a new commit
    "NewerCommit",  # a newer commit preempted this reconcile
    "Progressing",  # Stalled: not stalled, a reconcile is on its way
    "ActionFailed",  # an action (or observing the server) failed; a retry may help
    "RetryScheduled",  # Reconciling: a retry is scheduled
    "Failed",  # Reconciling: failed, with no retry scheduled (a one-off `apply`)
    "Retrying",  # Stalled: not stalled, the failure is retried
    "Suspended",  # `reconciler suspend`: commits recorded and drift reported, nothing applied
    "Drift",  # Degraded, while suspended: the server differs from the commit (the plan says how)
]
# How a reconcile (or a rejected commit) ended, as status records it.
StatusResult = Literal[
    "converged", "degraded", "refused", "invalid", "stalled", "preempted", "failed", "suspended"
]
Wanted = dict[ConditionType, tuple[bool, ConditionReason, str]]


class Condition(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    type: ConditionType
    status: bool
    reason: ConditionReason
    message: str = ""
    last_transition: datetime


class ModelStatus(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    name: str
    desired: bool
    present: bool
    size: int = 0
    pulling_percent: float | None = None
    loaded: bool = False
    vram: int | None = None
    pinned: bool = False
    cached: bool = False  # kept for rollback, not desired
    loaded_as: str | None = None  # the name /api/ps lists its shared loaded copy under
    loading_seconds: float | None = None  # a load in progress, and how long it has taken
    unusable: str | None = None  # why Ollama cannot use it (blobs missing or corrupt)
    digest: str | None = None  # its manifest digest on the server (hex, as /api/tags lists it)
    upstream_digest: str | None = None  # what the registry served at the last check
    upstream_checked_at: datetime | None = None  # when that check ran
    update_policy: str | None = None  # never / notify / auto / pinned
    update_state: str | None = (
        None  # current / available / waiting / updating / pinned / unchecked / check_failed
    )
    update: str | None = None  # "update available: old → new, N GB to download", or why it waits


class ImageStatus(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    image: str
    current: str | None = None
    newer: list[str] = Field(default_factory=list)  # newer release tags, newest first
    checked_at: datetime | None = None
    error: str | None = None
    update: str | None = None  # "newer release: 0.32.15 → 0.33.1; change the tag in git to take it"


class Status(BaseModel):
    desired_revision: str | None = None
    last_attempted_revision: str | None = None
    last_applied_revision: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
    models: list[ModelStatus] = Field(default_factory=list)
    disk: dict[str, int | None] = Field(default_factory=dict)
    vram: dict[str, int | None] = Field(default_factory=dict)
    notes: list[Note] = Field(default_factory=list)
    last_error: str | None = None
    ollama_version: str | None = None
    ollama_supported: bool | None = None  # False: older than the oldest version supported
    oldest_supported: str = show(OLDEST_SUPPORTED)
    openwebui: dict[str, Any] | None = None  # health, version, applied settings, knowledge, presets
    suspended: Suspension | None = None  # `reconciler suspend`: commits recorded, not applied
    images: list[ImageStatus] = Field(default_factory=list)  # newer releases of the images (updates.images)
    updated_at: datetime | None = None

    def condition(self, kind: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)


def status_path(state_dir: Path) -> Path:
    return state_dir / "status.json"


def load_status(state_dir: Path) -> Status:
    return read_model(status_path(state_dir), Status, lambda _: None) or Status()


def save_status(state_dir: Path, status: Status) -> None:
    write_atomic(status_path(state_dir), status.model_dump_json(indent=1))


def set_conditions(previous: list[Condition], wanted: Wanted, at: datetime) -> list[Condition]:
    """New conditions; lastTransitionTime moves only when a status flips."""
    before = {c.type: c for c in previous}
    result = []
    for kind, (status, reason, message) in wanted.items():
        old = before.get(kind)
        since = old.last_transition if old is not None and old.status == status else at
        result.append(
            Condition(type=kind, status=status, reason=reason, message=message, last_transition=since)
        )
    return result


def model_rows(
    observed: Observed | None, plan: Plan | None, desired_names: dict[str, bool]
) -> list[ModelStatus]:
    """desired_names: canonical name → pinned."""
    if observed is None:
        return []
    present = {m.name: m for m in observed.models}
    keys = observed.weights_keys()
    cached = set(plan.budget.cached_models) if plan else set()
    upstream = {u.name: u for u in observed.upstream}
    updates = {u.model: u for u in plan.updates} if plan else {}
    names = list(desired_names) + [n for n in present if n not in desired_names]
    rows = []
    for name in names:
        seen, run = present.get(name), observed.runner_of(name, keys)
        last, update = upstream.get(name), updates.get(name)
        rows.append(
            ModelStatus(
                name=name,
                desired=name in desired_names,
                present=seen is not None,
                size=seen.size if seen else 0,
                loaded=run is not None,
                vram=run.size_vram if run else None,
                pinned=desired_names.get(name, False),
                cached=name in cached,
                loaded_as=run.name if run is not None and run.name != name else None,
                unusable=seen.broken if seen else None,
                digest=seen.digest or None if seen else None,
                upstream_digest=last.digest if last else None,
                upstream_checked_at=last.checked_at if last else None,
                update_policy=update.policy if update else None,
                update_state=update.state if update else None,
                update=_update_line(update, observed.applied_updates.get(name)),
            )
        )
    return rows


def _update_line(update: UpdateState | None, applied: AppliedUpdate | None) -> str | None:
    """What `status` says of a model's updates: one available or waiting, else the last applied."""
    if update is not None and update.state not in ("current", "pinned", "unchecked"):
        return update.message()
    if applied is not None and (update is None or update.local == applied.new):
        kept = f"; the old version is kept as {applied.rollback}" if applied.rollback else ""
        when = f"{applied.at:%Y-%m-%d %H:%M} UTC"
        return f"updated sha256:{applied.old[:12]} → sha256:{applied.new[:12]} at {when}{kept}"
    return None


def now() -> datetime:
    return datetime.now(UTC)


def _degraded(notes: list[Note]) -> tuple[bool, ConditionReason, str]:
    messages = [n.message for n in notes if n.degraded]
    return (bool(messages), "Warnings" if messages else "Healthy", "; ".join(messages))


def _ready(head: str | None, notes: list[Note]) -> Wanted:
    return {
        "Ready": (True, "Converged", f"the server matches {(head or '')[:12]}"),
        "Reconciling": (False, "Idle", ""),
        "Stalled": (False, "Converged", ""),
        "Degraded": _degraded(notes),
    }


_STALLED: dict[StatusResult, ConditionReason] = {
    "refused": "BudgetExceeded",
    "invalid": "InvalidDesiredState",
    "stalled": "PermanentFailure",
}


def _stalled(result: StatusResult, errors: str, notes: list[Note]) -> Wanted:
    reason = _STALLED[result]
    waiting: tuple[bool, ConditionReason, str] = (
        (
            False,
            "WaitingForFix",
            "fix what the error says (then SIGHUP, or wait for the resync) or push a new commit",
        )
        if result == "stalled"
        else (False, "WaitingForNewCommit", "push a fixed commit or free resources")
    )
    return {
        "Ready": (False, reason, errors),
        "Reconciling": waiting,
        "Stalled": (True, reason, errors),
        "Degraded": _degraded(notes),
    }


def _preempted() -> Wanted:
    return {
        "Ready": (False, "NewerCommit", "a newer commit arrived; reconciling it"),
        "Reconciling": (True, "NewerCommit", ""),
        "Stalled": (False, "Progressing", ""),
        "Degraded": (False, "Healthy", ""),
    }


def _failed(errors: str, retry_in: float | None) -> Wanted:
    retry = f"retrying in {retry_in:.0f} s" if retry_in is not None else ""
    return {
        "Ready": (False, "ActionFailed", errors),
        "Reconciling": (retry_in is not None, "RetryScheduled" if retry_in is not None else "Failed", retry),
        "Stalled": (False, "Retrying", ""),
        "Degraded": (True, "ActionFailed", "; ".join(x for x in (errors, retry) if x)),
    }


def _suspended(drift: list[str]) -> Wanted:
    shown = "; ".join(drift)
    return {
        "Ready": (not drift, "Suspended", f"not applied while suspended: {shown}" if drift else ""),
        "Reconciling": (False, "Suspended", "`reconciler resume` applies the branch head"),
        "Stalled": (False, "Suspended", ""),
        "Degraded": (bool(drift), "Drift" if drift else "Healthy", shown),
    }


def conditions_for(
    result: StatusResult,
    head: str | None,
    errors: list[str],
    notes: list[Note],
    retry_in: float | None,
    drift: list[str] | None = None,
) -> Wanted:
    """The four conditions a result sets (their reasons from `ConditionReason`, never free text);
    `drift`: while suspended, what the plan would change."""
    text = "; ".join(errors)
    if result == "suspended":
        return _suspended(drift or [])
    if result in ("converged", "degraded"):
        return _ready(head, notes)
    if result in _STALLED:
        return _stalled(result, text, notes)
    if result == "preempted":
        return _preempted()
    return _failed(text, retry_in)


def build(
    previous: Status,
    *,
    head: str | None,
    result: StatusResult,
    desired_pinned: dict[str, bool],
    observed: Observed | None,
    plan: Plan | None,
    errors: list[str],
    notes: list[Note],
    applied: str | None,
    ollama_version: str | None,
    retry_in: float | None = None,
    at: datetime | None = None,
    settings_hash: str | None = None,
) -> Status:
    """The status after a reconcile (or a rejected commit)."""
    at = at or now()
    drift = [a.title() for a in plan.actions] if plan and result == "suspended" else None
    wanted = conditions_for(result, head, errors, notes, retry_in, drift)
    return Status(
        desired_revision=head,
        last_attempted_revision=head,
        last_applied_revision=applied,
        conditions=set_conditions(previous.conditions, wanted, at),
        models=model_rows(observed, plan, desired_pinned),
        disk=_disk(observed, plan),
        vram=_vram(observed, plan),
        notes=notes,
        last_error="; ".join(errors) or None,
        ollama_version=ollama_version,
        ollama_supported=support(ollama_version).supported if ollama_version else None,
        openwebui=_webui(observed, plan, settings_hash),
        updated_at=at,
    )


def _webui(observed: Observed | None, plan: Plan | None, settings_hash: str | None) -> dict[str, Any] | None:
    webui = observed.openwebui if observed else None
    if webui is None:
        return None
    pending = [a.title() for a in plan.actions if isinstance(a, OpenWebUIAction)] if plan else []
    return {
        "healthy": webui.reachable,
        "version": webui.version,
        "error": webui.error,
        "applied_settings_hash": settings_hash,
        "knowledge": {k.name: k.file_count for k in webui.knowledge},
        "presets": sorted(r.id for r in webui.rows if r.base_model_id and r.managed),
        "drift": pending,  # what the last plan would still change in OpenWebUI
    }


def _disk(observed: Observed | None, plan: Plan | None) -> dict[str, int | None]:
    budget = plan.budget if plan else None
    return {
        "models_bytes": budget.disk_models_after if budget else None,
        "models_budget": budget.disk_models_limit if budget else None,
        "free": observed.disk.free if observed and observed.disk else None,
        "min_free": budget.disk_min_free if budget else None,
    }


def _vram(observed: Observed | None, plan: Plan | None) -> dict[str, int | None]:
    gpus = observed.gpus if observed else ()
    room = gpu_room(gpus, observed.loaded) if observed else None
    return {
        "pinned_estimate": plan.budget.vram_pinned if plan else None,
        "budget": plan.budget.vram_limit if plan else None,
        "gpu_total": sum(g.total for g in gpus) if gpus else None,
        "gpu_used": sum(g.used for g in gpus) if gpus else None,
        "gpu_free": sum(g.free for g in gpus) if gpus else None,
        "other_processes": room.others if room else None,
        "loaded_vram": sum(m.size_vram for m in observed.loaded) if observed else None,
    }


def image_rows(desired: DesiredState | None, observed: Observed | None) -> list[ImageStatus]:
    """Newer releases of the desired images (`updates.images: notify`)."""
    if desired is None or observed is None:
        return []
    return [
        ImageStatus(image=i.image, current=i.current, newer=list(i.newer), checked_at=i.checked_at,
                    error=i.error, update=i.message() or None)
        for i in image_states(desired, observed)
    ]  # fmt: skip
