"""Update policies: which models are checked upstream, when, and whether an update may run now.

Pure: the time comes in as an argument (observed), never from a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler.desired.refs import canonical, parse_ref
from reconciler.desired.schema import DesiredState, ModelSpec, UpdateMode, interval_seconds
from reconciler.observed import Blob, ModelObs, UpstreamObs

DEFAULT_INTERVAL = "24h"
MAX_BACKOFF = 8  # a failing registry is asked at most every 8 check intervals


@dataclass(frozen=True)
class Policy:
    mode: UpdateMode
    every: timedelta
    window: str | None
    record: bool = False  # `record: commit`: the update is a commit that moves the pin

    @property
    def moves_pins(self) -> bool:
        return self.mode == "auto" and self.record


def resolve(desired: DesiredState, spec: ModelSpec) -> Policy:
    """The global `updates:` with the model's own fields over it."""
    top, own = desired.ollama.updates, spec.updates
    mode = (own.policy if own and own.policy else None) or top.policy or "never"
    every = (own.check_every if own and own.check_every else None) or top.check_every or DEFAULT_INTERVAL
    window = (own.window if own and own.window else None) or top.window
    record = (own.record if own and own.record else None) or top.record or "none"
    return Policy(
        mode=mode, every=timedelta(seconds=interval_seconds(every)), window=window, record=record == "commit"
    )


def next_check(last: UpstreamObs, every: timedelta) -> datetime:
    """Never sooner than the interval; after failed checks, 2x, 4x, 8x it."""
    return (
        last.checked_at + every * min(2**last.failures, MAX_BACKOFF)
        if last.failures
        else last.checked_at + every
    )


def bare(digest: str | None) -> str:
    """A digest as /api/tags lists it: hex, without `sha256:`."""
    return (digest or "").removeprefix("sha256:")


def same_content(seen: ModelObs, digest: str | None, blobs: tuple[Blob, ...]) -> bool:
    """Whether the server's model is the one the registry serves as `digest` (with `blobs`):
    the same manifest digest, or — Ollama before 0.7 re-encodes the manifest it pulled
    (v0.6.8 server/images.go PullModel writes json.Marshal(manifest)), so its digest may differ —
    the same config and layers."""
    if digest is not None and bare(digest) == seen.digest:
        return True
    return bool(blobs) and _layers(blobs) == _layers(seen.blobs)


def _layers(blobs: tuple[Blob, ...]) -> list[tuple[str, int]]:
    return sorted((b.digest, b.size) for b in blobs)


def checks_due(
    desired: DesiredState, present: dict[str, ModelObs], upstream: dict[str, UpstreamObs], at: datetime
) -> list[ModelSpec]:
    """Present models whose registry check is due: under `notify`/`auto` once their interval
    has passed, and a model pinned by digest whose local digest differs from the pin (every
    reconcile: the plan cannot go on without knowing what the registry serves)."""
    due = []
    for spec in desired.ollama.models:
        name = canonical(spec.name)
        if name not in present:
            continue  # a missing model is looked up before its pull anyway
        last = upstream.get(name)
        policy = resolve(desired, spec)
        if spec.digest is not None and not policy.moves_pins:
            pinned = present[name].digest == bare(spec.digest)
            seen_pinned = last is not None and last.digest == bare(spec.digest) and not last.error
            if not pinned and not (seen_pinned and last and same_content(present[name], None, last.blobs)):
                due.append(spec)
            continue
        if policy.mode != "never" and (last is None or at >= next_check(last, policy.every)):
            due.append(spec)
    return due


def in_window(window: str, clock: datetime) -> bool:
    """Whether `clock` (the server's local time) is inside "HH:MM-HH:MM" (end excluded; a
    window whose end is before its start runs past midnight)."""
    start_s, end_s = window.split("-")
    start, end = _minutes(start_s), _minutes(end_s)
    now = clock.hour * 60 + clock.minute
    return start <= now < end if start < end else now >= start or now < end


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def rollback_name(model: str, digest: str) -> str:
    """Where the old manifest is kept: the same repository, tag `<tag>-sha256-<12 hex>` (a tag
    is at most 80 characters in Ollama, types/model/name.go)."""
    ref = parse_ref(model)
    suffix = f"-sha256-{bare(digest)[:12]}"
    tag = ref.tag[: 80 - len(suffix)] + suffix
    return f"{ref.host}/{ref.namespace}/{ref.model}:{tag}".lower()


def short(digest: str | None) -> str:
    return f"sha256:{bare(digest)[:12]}" if digest else "unknown"


def window_wait(window: str | None, clock: datetime | None, busy: str | None) -> str | None:
    """Why an `auto` update waits for its window or for work under way (None: it may run now)."""
    if window is None:
        return "`auto` needs a `window:` (HH:MM-HH:MM) in the updates policy"
    if clock is None or not in_window(window, clock):
        at = clock.strftime("%H:%M %Z").strip() if clock else "unknown"
        return f"outside the update window {window} (server time {at})"
    return busy
