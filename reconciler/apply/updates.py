"""Update a model to its new upstream digest, or restore it from a rollback entry.

Ollama's own calls, in the order that keeps the old version: `/api/copy` of the old manifest
to the rollback name first (server/images.go CopyModel copies the manifest file; the blobs
stay, now referenced twice), so the re-pull's prune (images.go PullModel → deleteUnusedLayers
removes only layers no manifest references) keeps them; a loaded copy is unloaded while the
name still reaches the old weights (the scheduler keys runners by the weights file,
server/sched.go), then the tag is pulled.
"""

from __future__ import annotations

import httpx
import ollama

from reconciler.apply import models as model_ops
from reconciler.apply.models import ModelActionFailed
from reconciler.plan.actions import PullModel, RestoreModel, UnloadModel, UpdateModel
from reconciler.report.events import EventBus


def copy(client: ollama.Client, source: str, destination: str) -> None:
    try:
        client.copy(source, destination)
    except (ollama.ResponseError, ConnectionError, httpx.HTTPError) as exc:
        detail = exc.error if isinstance(exc, ollama.ResponseError) else str(exc) or type(exc).__name__
        raise ModelActionFailed(f"copy {source} to {destination} failed: {detail}") from None


def update(api: ollama.Client, puller: ollama.Client, action: UpdateModel, events: EventBus) -> None:
    copy(api, action.canonical, action.rollback)
    events.emit(
        "update.rollback_kept", model=action.model, rollback=action.rollback, digest=action.old_digest
    )
    if action.unload_first:
        model_ops.unload(api, UnloadModel(model=action.canonical, reason=action.reason))
    pull = PullModel(
        model=action.model,
        canonical=action.canonical,
        download_bytes=action.download_bytes,
        insecure=action.insecure,
        reason=action.reason,
    )
    model_ops.pull(puller, pull, events)


def restore(api: ollama.Client, action: RestoreModel) -> None:
    if action.unload_first:
        model_ops.unload(api, UnloadModel(model=action.canonical, reason=action.reason))
    copy(api, action.source, action.canonical)
