"""Update a model to its new upstream digest, restore it from a rollback entry, or record an
update as a commit (`record: commit`).

Ollama's own calls, in the order that keeps the old version: `/api/copy` of the old manifest
to the rollback name first (server/images.go CopyModel copies the manifest file; the blobs
stay, now referenced twice), so the re-pull's prune (images.go PullModel → deleteUnusedLayers
removes only layers no manifest references) keeps them; a loaded copy is unloaded while the
name still reaches the old weights (the scheduler keys runners by the weights file,
server/sched.go), then the tag is pulled.
"""

from __future__ import annotations

from datetime import datetime

import httpx
import ollama

from reconciler.apply.context import ExecContext, ExecutorUnavailable
from reconciler.apply.models import ModelActionInterrupted, ModelActionRefused, pull, unload
from reconciler.apply.record import record_image, record_update
from reconciler.apply.world import World
from reconciler.memory import Memory
from reconciler.observed import AppliedUpdate, ImageRun, InventoryEntry, ModelObs
from reconciler.plan.actions import (
    PullModel,
    RecordUpdate,
    RestoreModel,
    UnloadModel,
    UpdateImage,
    UpdateModel,
)


def copy(client: ollama.Client, source: str, destination: str) -> None:
    try:
        client.copy(source, destination)
    except ollama.ResponseError as exc:
        error = ModelActionRefused if 400 <= exc.status_code < 500 else ModelActionInterrupted
        raise error(f"copy {source} to {destination} failed: {exc.error}") from None
    except (ConnectionError, httpx.HTTPError) as exc:
        detail = str(exc) or type(exc).__name__
        raise ModelActionInterrupted(f"copy {source} to {destination} failed: {detail}") from None


def _moved(
    memory: Memory, name: str, kept: InventoryEntry | None, applied: AppliedUpdate | None, at: datetime
) -> Memory:
    inventory = {e.name: e for e in memory.inventory}
    inventory[name] = InventoryEntry(name=name, pulled_at=at, last_used=at)
    if kept is not None:
        inventory[kept.name] = kept
    updates = {**memory.applied_updates, name: applied} if applied is not None else memory.applied_updates
    # Unloaded on purpose, not evicted: the pinned model is warmed on its new digest.
    warmed = {k: v for k, v in memory.warmed.items() if k != name}
    return memory.model_copy(
        update={"inventory": tuple(inventory.values()), "applied_updates": updates, "warmed": warmed}
    )


def run_update(action: UpdateModel, ctx: ExecContext) -> None:
    clients = ctx.clients()
    copy(clients.api, action.canonical, action.rollback)
    ctx.events.emit(
        "update.rollback_kept", model=action.model, rollback=action.rollback, digest=action.old_digest
    )
    if action.unload_first:
        unload(clients.api, UnloadModel(model=action.canonical, reason=action.reason))
    fetch = PullModel(
        model=action.model,
        canonical=action.canonical,
        download_bytes=action.download_bytes,
        insecure=action.insecure,
        reason=action.reason,
    )
    pull(clients.puller, fetch, ctx.events)
    at = ctx.now()
    kept = InventoryEntry(name=action.rollback, pulled_at=at, last_used=at, digest=action.old_digest)
    applied = AppliedUpdate(old=action.old_digest, new=action.new_digest, at=at, rollback=action.rollback)
    ctx.remember(lambda m: _moved(m, action.canonical, kept, applied, at))


def updated(action: UpdateModel, world: World) -> None:
    old = world.models.get(action.canonical)
    upstream = next((u for u in world.start.upstream if u.name == action.canonical), None)
    if old is not None:
        world.models[action.rollback] = old.model_copy(update={"name": action.rollback})
        world.inventory[action.rollback] = InventoryEntry(name=action.rollback, digest=action.old_digest)
    world.models[action.canonical] = ModelObs(
        name=action.canonical,
        digest=action.new_digest,
        blobs=upstream.blobs if upstream else (old.blobs if old else ()),
        architecture=old.architecture if old else None,
    )
    world.inventory[action.canonical] = InventoryEntry(name=action.canonical)
    if action.unload_first:
        world.loaded.pop(action.canonical, None)
        world.warmed.discard(action.canonical)


def run_restore(action: RestoreModel, ctx: ExecContext) -> None:
    clients = ctx.clients()
    if action.unload_first:
        unload(clients.api, UnloadModel(model=action.canonical, reason=action.reason))
    copy(clients.api, action.source, action.canonical)
    at = ctx.now()
    ctx.remember(lambda m: _moved(m, action.canonical, None, None, at))


def restored(action: RestoreModel, world: World) -> None:
    source = world.models.get(action.source)
    if source is not None:
        world.models[action.canonical] = source.model_copy(update={"name": action.canonical})
    world.inventory[action.canonical] = InventoryEntry(name=action.canonical)
    if action.unload_first:
        world.loaded.pop(action.canonical, None)
        world.warmed.discard(action.canonical)


def run_record(action: RecordUpdate, ctx: ExecContext) -> None:
    if ctx.desired_repo is None:
        raise ExecutorUnavailable("record: commit needs `serve` and its desired-state repo")
    sha = record_update(ctx.desired_repo, ctx.desired_branch, action)
    ctx.events.emit("update.recorded", model=action.model, commit=sha[:12], digest=action.new_digest)
    ctx.remember(
        lambda m: m.model_copy(update={"recorded": {**m.recorded, action.canonical: action.new_digest}})
    )


def recorded(action: RecordUpdate, world: World) -> None:
    world.start = world.start.model_copy(
        update={"recorded": {**world.start.recorded, action.canonical: action.new_digest}}
    )


def _image_moved(runs: dict[str, ImageRun], action: UpdateImage) -> dict[str, ImageRun]:
    run = runs.get(action.image, ImageRun())
    if action.record:
        return {**runs, action.image: run.model_copy(update={"recorded": action.new_tag})}
    return {**runs, action.image: run.model_copy(update={"tag": action.new_tag, "previous": action.old_tag})}


def run_update_image(action: UpdateImage, ctx: ExecContext) -> None:
    """Directly: remember the release (the next pass recreates Ollama or deploys OpenWebUI on
    it); with `record: commit`: commit the new tag to git, whose reconcile moves it."""
    if action.record:
        if ctx.desired_repo is None:
            raise ExecutorUnavailable("record: commit needs `serve` and its desired-state repo")
        sha = record_image(ctx.desired_repo, ctx.desired_branch, action)
        ctx.events.emit("update.recorded", image=action.image, commit=sha[:12], tag=action.new_tag)
    else:
        ctx.events.emit("update.image", image=action.image, old=action.old_tag, new=action.new_tag)
    ctx.remember(lambda m: m.model_copy(update={"image_runs": _image_moved(m.image_runs, action)}))


def image_updated(action: UpdateImage, world: World) -> None:
    world.start = world.start.model_copy(update={"image_runs": _image_moved(world.start.image_runs, action)})


def image_failed(memory: Memory, image: str, tag: str) -> Memory:
    """`tag` of `image` did not start: held back, the release before it runs again."""
    run = memory.image_runs.get(image, ImageRun())
    if tag in run.failed:
        return memory
    held = run.model_copy(update={"failed": (*run.failed, tag), "tag": run.previous})
    return memory.model_copy(update={"image_runs": {**memory.image_runs, image: held}})
