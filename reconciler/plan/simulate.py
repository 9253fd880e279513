"""The expected effect of a plan on what we observe (pure).

Used by the property tests (plan → simulate → plan again must be empty) and to
show the end state of a dry run. It models what each executor promises.
"""

from __future__ import annotations

from datetime import datetime

from reconciler.desired.refs import canonical
from reconciler.observed import (
    Blob,
    ContainerObs,
    DeployedObs,
    DiskObs,
    InventoryEntry,
    LoadedObs,
    ModelObs,
    Observed,
)
from reconciler.plan.actions import (
    ApplyWebUISettings,
    CreateDerived,
    EnsureContainer,
    KamalDeploy,
    LoadModel,
    Plan,
    PullModel,
    RemoveModel,
    UnloadModel,
)
from reconciler.plan.disk_budget import BlobLedger

FOREVER = datetime(2318, 1, 1)


def simulate(plan: Plan, observed: Observed) -> Observed:
    models = {m.name: m for m in observed.models}
    loaded = {m.name: m for m in observed.loaded}
    inventory = {e.name: e for e in observed.inventory}
    remote = {r.name: r for r in observed.remote}
    container, deployed = observed.container, observed.deployed
    reachable = observed.ollama_reachable
    webui = observed.webui
    tls_due = observed.tls_renewal_due
    warmed = set(observed.warmed)
    for action in plan.actions:
        if isinstance(action, EnsureContainer):
            container = ContainerObs(
                name=action.spec.name,
                running=True,
                status="running",
                image=action.spec.image,
                spec_hash=action.spec_hash,
            )
            reachable = True
            if action.op != "start":
                loaded.clear()
        elif isinstance(action, PullModel):
            manifest = remote[action.canonical]
            models[action.canonical] = ModelObs(
                name=action.canonical,
                digest=f"pulled-{action.canonical}",
                blobs=manifest.blobs,
                architecture=manifest.architecture,
            )
            inventory[action.canonical] = InventoryEntry(name=action.canonical)
        elif isinstance(action, CreateDerived):
            digest = f"created-{action.spec_hash}"
            base = models.get(canonical(action.from_model))
            blobs = (base.blobs if base else ()) + (
                Blob(digest=f"derived:{action.spec_hash}", size=action.layer_bytes),
            )
            models[action.canonical] = ModelObs(name=action.canonical, digest=digest, blobs=blobs)
            inventory[action.canonical] = InventoryEntry(
                name=action.canonical, spec_hash=action.spec_hash, digest=digest
            )
        elif isinstance(action, RemoveModel):
            models.pop(action.model, None)
            inventory.pop(action.model, None)
            loaded.pop(action.model, None)
        elif isinstance(action, LoadModel):
            # Ollama reuses (or reloads) the runner of the same weights, still listed once.
            keys = observed.model_copy(update={"models": tuple(models.values())}).weights_keys()
            key = keys.get(action.canonical, f"name:{action.canonical}")
            shared = next((n for n in loaded if n == action.canonical or keys.get(n) == key), None)
            size = action.vram_estimate
            loaded[shared or action.canonical] = LoadedObs(
                name=shared or action.canonical,
                size=size,
                size_vram=size,
                expires_at=FOREVER,
                context_length=action.num_ctx,
                pinned=True,
            )
            warmed |= {action.canonical, *(canonical(n) for n in action.shared_with)}
        elif isinstance(action, UnloadModel):
            loaded.pop(action.model, None)
            warmed.discard(action.model)
        elif isinstance(action, KamalDeploy):
            deployed = deployed.model_copy(update={"openwebui_spec_hash": action.spec_hash})
            tls_due = None
        elif isinstance(action, ApplyWebUISettings):
            deployed = deployed.model_copy(update={"openwebui_settings_hash": action.settings_hash})
            if webui is not None:
                webui = webui.model_copy(update={"drift": ()})
    return observed.model_copy(
        update={
            "container": container,
            "ollama_reachable": reachable,
            "models": tuple(models.values()),
            "loaded": tuple(loaded.values()),
            "inventory": tuple(inventory.values()),
            "deployed": DeployedObs.model_validate(deployed.model_dump()),
            "webui": webui,
            "tls_renewal_due": tls_due,
            "warmed": tuple(sorted(warmed)),
            "disk": _disk_after(observed, tuple(models.values())),
        }
    )


def _disk_after(observed: Observed, models: tuple[ModelObs, ...]) -> DiskObs | None:
    if observed.disk is None:
        return None
    before, after = BlobLedger(), BlobLedger()
    for m in observed.models:
        before.add(m.blobs)
    for m in models:
        after.add(m.blobs)
    free = observed.disk.free - (after.total() - before.total())
    return observed.disk.model_copy(update={"free": free})
