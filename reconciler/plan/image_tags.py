"""Newer releases of the Ollama and OpenWebUI images: semantic-version tags from the
registry's tag list, pre-releases ignored. Pure: the tag lists come observed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler.desired.images import ImageRef, parse_image, release
from reconciler.desired.schema import DesiredState, interval_seconds
from reconciler.observed import ImageTagsObs, Observed
from reconciler.plan.update_policy import DEFAULT_INTERVAL, MAX_BACKOFF


def newer_releases(current: str | None, tags: list[str] | tuple[str, ...]) -> list[str]:
    """Release tags newer than `current`, newest first (none when `current` is not a release)."""
    mine = release(current or "")
    if mine is None:
        return []
    found = [(v, t) for t in tags if (v := release(t)) is not None and v > mine]
    return [t for _, t in sorted(found, reverse=True)]


def desired_images(desired: DesiredState) -> list[str]:
    """The images whose releases are watched: Ollama's, and OpenWebUI's when it is deployed."""
    images = [desired.ollama.container.image]
    if desired.openwebui is not None:
        images.append(desired.openwebui.image)
    return images


def images_due(desired: DesiredState, last: dict[str, ImageTagsObs], at: datetime) -> list[ImageRef]:
    """Images whose tag list is due a look (`updates.images: notify`), at most once per
    `check_every`, backing off after failures like model checks."""
    top = desired.ollama.updates
    if top.images != "notify":
        return []
    every = timedelta(seconds=interval_seconds(top.check_every or DEFAULT_INTERVAL))
    due = []
    for image in desired_images(desired):
        ref = parse_image(image)
        seen = last.get(ref.key)
        # An image not on a release tag (latest, a digest, a build hash) has nothing to compare with.
        if release(ref.tag or "") is not None and (seen is None or at >= _next(seen, every)):
            due.append(ref)
    return due


def _next(seen: ImageTagsObs, every: timedelta) -> datetime:
    return seen.checked_at + every * (min(2**seen.failures, MAX_BACKOFF) if seen.failures else 1)


@dataclass(frozen=True)
class ImageState:
    image: str  # as written
    current: str | None
    newer: tuple[str, ...]  # newer releases, newest first
    checked_at: datetime | None
    error: str | None

    def message(self) -> str:
        if not self.newer:
            return ""
        more = f" (and {len(self.newer) - 1} more)" if len(self.newer) > 1 else ""
        return f"newer release: {self.current} → {self.newer[0]}{more}; change the tag in git to take it"


def image_states(desired: DesiredState, observed: Observed) -> list[ImageState]:
    if desired.ollama.updates.images != "notify":
        return []
    seen = {t.image: t for t in observed.image_tags}
    states = []
    for image in desired_images(desired):
        ref = parse_image(image)
        last = seen.get(ref.key)
        states.append(
            ImageState(
                image=image,
                current=ref.tag,
                newer=tuple(newer_releases(ref.tag, last.tags)) if last else (),
                checked_at=last.checked_at if last else None,
                error=last.error if last else None,
            )
        )
    return states
