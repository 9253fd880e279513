"""Newer releases of the Ollama and OpenWebUI images: semantic-version tags from the
registry's tag list, pre-releases ignored. Pure: the tag lists come observed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from reconciler.desired.images import ImageRef, parse_image, release, with_tag
from reconciler.desired.schema import DesiredState, interval_seconds
from reconciler.observed import ImageRun, ImageTagsObs, Observed
from reconciler.plan.actions import UpdateImage
from reconciler.plan.kamal import deploy_hash
from reconciler.plan.notes import Note, note
from reconciler.plan.update_policy import DEFAULT_INTERVAL, MAX_BACKOFF, window_wait

Component = Literal["ollama", "openwebui"]


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
    if top.images not in ("notify", "auto"):
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
    auto: bool = False  # `updates.images: auto` moves it (listed in `auto_images`)

    def message(self) -> str:
        if not self.newer:
            return ""
        more = f" (and {len(self.newer) - 1} more)" if len(self.newer) > 1 else ""
        how = "`auto` takes it inside the update window" if self.auto else "change the tag in git to take it"
        return f"newer release: {self.current} → {self.newer[0]}{more}; {how}"


def image_states(desired: DesiredState, observed: Observed) -> list[ImageState]:
    if desired.ollama.updates.images not in ("notify", "auto"):
        return []
    seen = {t.image: t for t in observed.image_tags}
    running = dict(_written(desired))
    states = []
    for image in desired_images(desired):
        ref = parse_image(image)
        last = seen.get(ref.key)
        component = next((c for c, i in running.items() if i == image), None)
        tag = running_tag(desired, observed, component) if component else ref.tag
        held = held_back_tags(desired, observed, component) if component else []
        newer = [t for t in newer_releases(tag, last.tags) if t not in held] if last else []
        states.append(
            ImageState(
                image=image,
                current=tag,
                newer=tuple(newer),
                checked_at=last.checked_at if last else None,
                error=last.error if last else None,
                auto=component is not None,
            )
        )
    return states


# ───────────────────────── updates.images: auto ─────────────────────────


def _written(desired: DesiredState) -> list[tuple[Component, str]]:
    """Each image `auto` may move (listed in `auto_images`), as written in git."""
    top = desired.ollama.updates
    if top.images != "auto":
        return []
    found: list[tuple[Component, str]] = []
    for component in top.auto_images or []:
        if component == "ollama":
            found.append(("ollama", desired.ollama.container.image))
        elif desired.openwebui is not None:
            found.append(("openwebui", desired.openwebui.image))
    # A digest-pinned image, or one not on a release tag, is never moved.
    return [(c, i) for c, i in found if "@" not in i and release(parse_image(i).tag or "") is not None]


def _with_image(desired: DesiredState, component: Component, image: str) -> DesiredState:
    if component == "ollama":
        container = desired.ollama.container.model_copy(update={"image": image})
        return desired.model_copy(
            update={"ollama": desired.ollama.model_copy(update={"container": container})}
        )
    assert desired.openwebui is not None
    return desired.model_copy(update={"openwebui": desired.openwebui.model_copy(update={"image": image})})


def _failed_deploy(desired: DesiredState, observed: Observed, tag: str) -> bool:
    """Whether OpenWebUI on `tag` is the version whose container did not become healthy."""
    assert desired.openwebui is not None
    moved = _with_image(desired, "openwebui", with_tag(desired.openwebui.image, tag))
    failed = observed.deployed.openwebui_failed_hash
    return failed is not None and deploy_hash(moved) == failed


def running_tag(desired: DesiredState, observed: Observed, component: Component) -> str | None:
    """The release the component runs: git's, or the one `auto` moved it to unless that one
    failed to start (then the one before it)."""
    image = dict(_written(desired)).get(component)
    if image is None:
        return None
    run = observed.image_runs.get(image, ImageRun())
    written = parse_image(image).tag
    tag = run.tag
    if tag is not None and (
        tag in run.failed or (component == "openwebui" and _failed_deploy(desired, observed, tag))
    ):
        tag = run.previous
    return tag or written


def held_back_tags(desired: DesiredState, observed: Observed, component: Component) -> list[str]:
    """The releases `auto` moved the component to that did not start: never taken again."""
    image = dict(_written(desired)).get(component)
    if image is None:
        return []
    run = observed.image_runs.get(image, ImageRun())
    held = list(run.failed)
    if component == "openwebui":  # Kamal's executor remembers the one version that failed
        key = parse_image(image).key
        seen = {t for last in observed.image_tags if last.image == key for t in last.tags}
        held += sorted(
            t for t in seen | {run.tag or ""} if t and t not in held and _failed_deploy(desired, observed, t)
        )
    return held


def effective(desired: DesiredState, observed: Observed) -> DesiredState:
    """The desired state with each image `auto` moved on its running release: what the
    planner, the executors and the Kamal hooks all work from."""
    for component, image in _written(desired):
        tag = running_tag(desired, observed, component)
        if tag is not None and tag != parse_image(image).tag:
            desired = _with_image(desired, component, with_tag(image, tag))
    return desired


def image_updates(
    desired: DesiredState, observed: Observed, busy: str | None
) -> tuple[list[UpdateImage], list[Note]]:
    """The newest release of each image `auto` may move, inside the window; a release that
    failed to start is never taken again."""
    top = desired.ollama.updates
    seen = {t.image: t for t in observed.image_tags}
    actions: list[UpdateImage] = []
    notes: list[Note] = []
    for component, image in _written(desired):
        ref, run = parse_image(image), observed.image_runs.get(image, ImageRun())
        current = running_tag(desired, observed, component) or ""
        held = held_back_tags(desired, observed, component)
        if held:
            notes.append(
                note(
                    "image_held_back",
                    f"the {component} image {', '.join(held)} did not start and is held back: "
                    f"{current} runs; a newer release is tried once one is published",
                )
            )
        last = seen.get(ref.key)
        newer = [t for t in newer_releases(current, last.tags if last else ()) if t not in held]
        if not newer:
            continue
        wait = window_wait(top.window, observed.clock, busy)
        record = top.record == "commit"
        if wait is None and record and run.recorded == newer[0]:
            wait = f"{newer[0]} was committed to git already; a revert of that commit keeps {current}"
        if wait is not None:
            notes.append(
                note("image_update_waiting", f"the {component} image {current} → {newer[0]} waits: {wait}")
            )
            continue
        reason = (
            f"release {newer[0]} published (newer than {current}); "
            f"updates.images: auto, inside the window {top.window}"
        )
        actions.append(
            UpdateImage(
                component=component,
                image=image,
                old_tag=current,
                new_tag=newer[0],
                record=record,
                reason=reason,
            )
        )
    return actions, notes
