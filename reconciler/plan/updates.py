"""Plan model updates: report where each present model stands against its registry, and under
`auto` (inside the window, with nothing else pulling, within the disk budget) update it.

A model pinned by digest (`name@sha256:…`) never moves. Ollama pulls by tag only: its model
names have no digest part (v0.32.15 types/model/name.go `Name` is host/namespace/model/tag and
`ParseName("m@d")` is invalid), so a pinned digest is pulled only while the registry serves it
for the tag, or restored from a rollback entry that holds it; otherwise the plan is refused.
Pure: the clock is the observed one.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.desired.refs import canonical, parse_ref
from reconciler.desired.schema import DesiredState, ModelSpec, UpdateMode
from reconciler.observed import Blob, ModelObs, Observed, RemoteManifest, UpstreamObs
from reconciler.plan.actions import Action, RecordUpdate, RestoreModel, UpdateModel, UpdateState, Violation
from reconciler.plan.update_policy import (
    bare,
    resolve,
    rollback_name,
    same_content,
    short,
    window_wait,
)
from reconciler.units import format_bytes


@dataclass(frozen=True)
class DiskRoom:
    """The disk plan's figures after this plan's own pulls and removals."""

    models_after: int
    models_limit: int
    free_after: int | None
    min_free: int


@dataclass
class UpdatePlan:
    actions: list[Action]
    states: list[UpdateState]
    violations: list[Violation]


def _download(blobs: tuple[Blob, ...], have: set[str]) -> int:
    return sum(b.size for b in blobs if b.digest not in have)


def _keeper(present: dict[str, ModelObs], digest: str, besides: str) -> str | None:
    """A present model (a rollback entry) whose manifest is `digest`."""
    return next((n for n, m in sorted(present.items()) if n != besides and m.digest == digest), None)


def pinned_missing(
    spec: ModelSpec, remote: RemoteManifest | None, present: dict[str, ModelObs]
) -> tuple[Action | None, Violation | None]:
    """A missing model pinned by digest: restore it from a rollback entry, refuse a digest the
    registry no longer serves, or (None, None): pull it as any missing model."""
    pin = bare(spec.digest)
    name = canonical(spec.name)
    source = _keeper(present, pin, name)
    if source is not None:
        reason = f"pinned to {short(pin)} in git; {source} holds it on disk"
        return RestoreModel(model=spec.name, canonical=name, source=source, digest=pin, reason=reason), None
    if remote is not None and remote.digest and remote.digest != pin:
        return None, _not_served(spec, remote.digest)
    return None, None


def _not_served(spec: ModelSpec, serving: str) -> Violation:
    return Violation(
        budget="digest",
        message=(
            f"{spec.name} is pinned to {short(spec.digest)}, but its registry now serves {short(serving)} "
            "for that tag, and Ollama pulls by tag only (it cannot pull a digest): pin "
            f"{short(serving)} or remove the pin"
        ),
    )


def plan_updates(desired: DesiredState, observed: Observed, room: DiskRoom, busy: str | None) -> UpdatePlan:
    present = {m.name: m for m in observed.models if m.broken is None}
    upstream = {u.name: u for u in observed.upstream}
    have = {b.digest for m in present.values() for b in m.blobs}
    result = UpdatePlan([], [], [])
    extra = 0  # bytes of updates planned so far (they add up against the budget)
    for spec in desired.ollama.models:
        name = canonical(spec.name)
        seen = present.get(name)
        if seen is None:
            continue
        last = upstream.get(name)
        policy = resolve(desired, spec)
        at_pin = spec.digest is not None and seen.digest == bare(spec.digest)
        if spec.digest is not None and not (policy.moves_pins and at_pin):
            _pinned(spec, seen, last, present, observed, room, _insecure(desired, spec), result)
            continue
        state = _state(policy.mode, seen, last, have)
        if state.state != "available" or policy.mode != "auto":
            result.states.append(state)
            continue
        assert last is not None and last.digest is not None  # an available update has both
        wait = _wait_reason(policy.window, observed, busy, room, extra + state.download_bytes)
        if wait is None and policy.record and observed.recorded.get(name) == last.digest:
            # Committed once already: that commit's reconcile applies it, and a revert of it
            # keeps the old digest (the reconciler does not commit the same update again).
            wait = (
                f"{short(last.digest)} was committed to git already; a revert of that commit keeps "
                f"{short(seen.digest)}"
            )
        if wait is not None:
            result.states.append(state.model_copy(update={"state": "waiting", "reason": wait}))
            continue
        extra += state.download_bytes
        result.states.append(state.model_copy(update={"state": "updating"}))
        if policy.record:
            reason = (
                f"{short(last.digest)} published upstream; policy auto, record: commit, inside the window"
            )
            result.actions.append(
                RecordUpdate(
                    model=spec.name,
                    canonical=name,
                    old_digest=seen.digest,
                    new_digest=last.digest,
                    reason=reason,
                )
            )
            continue
        result.actions.append(
            _update(desired, spec, seen, last, observed, state.download_bytes, policy.window)
        )
    return result


def _state(mode: UpdateMode, seen: ModelObs, last: UpstreamObs | None, have: set[str]) -> UpdateState:
    base = UpdateState(
        model=seen.name,
        policy=mode,
        state="unchecked",
        local=seen.digest or None,
        upstream=last.digest if last else None,
    )
    if last is None or last.digest is None:
        if last is not None and last.error:
            return base.model_copy(update={"state": "check_failed", "reason": last.error})
        return base
    if same_content(seen, last.digest, last.blobs):
        return base.model_copy(update={"state": "current"})
    if mode == "never":
        return base  # not checked since it was pulled: what it served then says nothing now
    if last.error:
        return base.model_copy(update={"state": "check_failed", "reason": last.error})
    return base.model_copy(update={"state": "available", "download_bytes": _download(last.blobs, have)})


def _wait_reason(
    window: str | None, observed: Observed, busy: str | None, room: DiskRoom, download: int
) -> str | None:
    wait = window_wait(window, observed.clock, busy)
    return wait if wait is not None else _over_disk(room, download)


def _over_disk(room: DiskRoom, download: int) -> str | None:
    """Why the old and the new version do not fit together (None: they do)."""
    if room.models_after + download > room.models_limit:
        return (
            f"the old and the new version need {format_bytes(room.models_after + download)} on disk "
            f"together, over the models budget {format_bytes(room.models_limit)}"
        )
    if room.free_after is not None and room.free_after - download < room.min_free:
        return (
            f"downloading {format_bytes(download)} would leave "
            f"{format_bytes(max(room.free_after - download, 0))} free, minimum {format_bytes(room.min_free)}"
        )
    return None


def _update(
    desired: DesiredState,
    spec: ModelSpec,
    seen: ModelObs,
    last: UpstreamObs,
    observed: Observed,
    download: int,
    window: str | None,
) -> UpdateModel:
    why = f"policy auto, inside the window {window}" if window else "pinned to this digest in git"
    return UpdateModel(
        model=spec.name,
        canonical=seen.name,
        old_digest=seen.digest,
        new_digest=last.digest or "",
        download_bytes=download,
        rollback=rollback_name(seen.name, seen.digest),
        insecure=_insecure(desired, spec),
        unload_first=observed.runner_of(seen.name) is not None,
        reason=f"{short(last.digest)} published upstream (checked {last.checked_at:%Y-%m-%d %H:%M} UTC)"
        f"; {why}",
    )


def _insecure(desired: DesiredState, spec: ModelSpec) -> bool:
    """Pulled over plain HTTP (its registry is declared `insecure`)."""
    host = parse_ref(spec.name).host.lower()
    return any(r.insecure and r.host.lower() == host for r in desired.ollama.registries)


def _pinned(
    spec: ModelSpec,
    seen: ModelObs,
    last: UpstreamObs | None,
    present: dict[str, ModelObs],
    observed: Observed,
    room: DiskRoom,
    insecure: bool,
    result: UpdatePlan,
) -> None:
    pin = bare(spec.digest)
    state = UpdateState(
        model=seen.name,
        policy="pinned",
        state="pinned",
        local=seen.digest,
        upstream=last.digest if last else None,
    )
    result.states.append(state)
    if seen.digest == pin or (
        last is not None and last.digest == pin and same_content(seen, None, last.blobs)
    ):
        return
    source = _keeper(present, pin, seen.name)
    if source is not None:
        result.actions.append(
            RestoreModel(
                model=spec.name,
                canonical=seen.name,
                source=source,
                digest=pin,
                unload_first=observed.runner_of(seen.name) is not None,
                reason=f"pinned to {short(pin)} in git; {source} holds it on disk",
            )
        )
    elif last is not None and last.digest == pin and last.error is None:
        download = _download(last.blobs, {b.digest for m in present.values() for b in m.blobs})
        too_big = _over_disk(room, download)
        if too_big is not None:
            message = f"{spec.name} is pinned to {short(pin)}: {too_big}"
            result.violations.append(Violation(budget="disk", message=message, needed=download))
            return
        result.actions.append(
            UpdateModel(
                model=spec.name,
                canonical=seen.name,
                old_digest=seen.digest,
                new_digest=pin,
                download_bytes=download,
                rollback=rollback_name(seen.name, seen.digest),
                insecure=insecure,
                unload_first=observed.runner_of(seen.name) is not None,
                reason=f"pinned to {short(pin)} in git; the server has {short(seen.digest)}",
            )
        )
    elif last is not None and last.error is not None:
        result.violations.append(
            Violation(
                budget="digest",
                message=f"{spec.name} is pinned to {short(pin)}; its registry could not be checked: "
                f"{last.error}",
            )
        )
    elif last is not None and last.digest:
        result.violations.append(_not_served(spec, last.digest))
