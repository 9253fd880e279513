"""Small builders for desired and observed states in planner tests."""

from __future__ import annotations

from typing import Any

from reconciler.desired.refs import canonical
from reconciler.desired.schema import DesiredState, OllamaSpec, OpenWebUISpec, ServerSpec
from reconciler.observed import (
    Architecture,
    Blob,
    ContainerObs,
    DiskObs,
    GpuObs,
    InventoryEntry,
    ModelObs,
    Observed,
    RemoteManifest,
)
from reconciler.plan.actions import Plan
from reconciler.plan.container import container_spec
from reconciler.plan.hashing import spec_hash
from reconciler.report.status import Status, build

GiB = 2**30
MiB = 2**20
LLAMA = Architecture(family="llama", block_count=32, head_count=32, head_count_kv=8, embedding_length=4096)


def desired(
    models: list[dict[str, Any] | str] | None = None,
    *,
    derived: list[dict[str, Any]] | None = None,
    disk: int | str = "100GiB",
    min_free: int | str = 0,
    vram: dict[str, Any] | None = None,
    removal: dict[str, Any] | None = None,
    container: dict[str, Any] | None = None,
    openwebui: dict[str, Any] | None = None,
    benchmarks: dict[str, Any] | None = None,
    revision: str | None = "abc1234def",
    updates: dict[str, Any] | None = None,
) -> DesiredState:
    entries = [{"name": m} if isinstance(m, str) else m for m in (models or [])]
    return DesiredState(
        server=ServerSpec.model_validate(
            {"budgets": {"disk": {"models": disk, "min_free": min_free}, "vram": vram or {}}}
        ),
        ollama=OllamaSpec.model_validate(
            {
                "models": entries,
                "derived": derived or [],
                "removal": removal or {},
                "container": container or {},
                "benchmarks": benchmarks or {},
                "updates": updates or {},
            }
        ),
        openwebui=OpenWebUISpec.model_validate(openwebui) if openwebui is not None else None,
        revision=revision,
    )


def blobs(*pairs: tuple[str, int]) -> tuple[Blob, ...]:
    """(digest-ish, size) pairs; the first is the weights layer."""
    out = []
    for index, (digest, size) in enumerate(pairs):
        media = "application/vnd.ollama.image." + ("model" if index == 0 else "params")
        out.append(Blob(digest=f"sha256:{digest}", size=size, media_type=media))
    return tuple(out)


def model(name: str, *pairs: tuple[str, int], arch: Architecture | None = LLAMA) -> ModelObs:
    return ModelObs(name=canonical(name), digest=f"d-{name}", blobs=blobs(*pairs), architecture=arch)


def remote(name: str, *pairs: tuple[str, int], arch: Architecture | None = LLAMA) -> RemoteManifest:
    return RemoteManifest(name=canonical(name), blobs=blobs(*pairs), architecture=arch)


def running_container(state: DesiredState) -> ContainerObs:
    spec = container_spec(state)
    return ContainerObs(
        name=spec.name,
        running=True,
        status="running",
        image=spec.image,
        spec_hash=spec_hash(spec),
        networks=(spec.network,),
    )


def observed(
    state: DesiredState,
    *,
    models: list[ModelObs] | None = None,
    remotes: list[RemoteManifest] | None = None,
    managed: dict[str, int] | None = None,
    free: int | None = 500 * GiB,
    gpu_total: int | None = 8 * GiB,
    **extra: Any,
) -> Observed:
    """A running, matching container unless `container=` is given; `managed` maps model
    name → last-used day (for LRU)."""
    from datetime import UTC, datetime

    inventory = tuple(
        InventoryEntry(name=canonical(n), last_used=datetime(2026, 1, day, tzinfo=UTC))
        for n, day in (managed or {}).items()
    )
    fields: dict[str, Any] = {
        "container": running_container(state),
        "models": tuple(models or ()),
        "remote": tuple(remotes or ()),
        "inventory": inventory,
        "disk": DiskObs(total=1000 * GiB, free=free) if free is not None else None,
        "gpus": (GpuObs(index=0, total=gpu_total, used=0, free=gpu_total),) if gpu_total else (),
    }
    fields.update(extra)
    return Observed(**fields)


def degraded(p: Plan, seen: Observed) -> tuple[bool, str]:
    """The Degraded condition a converged reconcile of plan `p` over `seen` leaves in status."""
    status = build(
        Status(),
        head="abc1234def",
        result="converged",
        desired_pinned={},
        observed=seen,
        plan=p,
        errors=[],
        notes=list(p.notes),
        applied="abc1234def",
        ollama_version=None,
    )
    (cond,) = [c for c in status.conditions if c.type == "Degraded"]
    return cond.status, cond.message
