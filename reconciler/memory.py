"""What the reconciler remembers between runs (pure models; `reconciler.state` keeps them on disk).

Memory, not truth: the inventory of models it pulled (so it never touches models pulled by
hand, and knows the LRU order of its rollback cache), what it last deployed, which pinned
models it warmed and how often they were evicted, and what it made in OpenWebUI. The planner
reads it as part of the observation (`with_memory`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from reconciler.observed import (
    AppliedUpdate,
    DeployedObs,
    EvictionObs,
    ImageRun,
    ImageTagsObs,
    InventoryEntry,
    Observed,
    UpstreamObs,
)

EVICTION_WINDOW = timedelta(hours=1)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Eviction(_Frozen):
    at: datetime
    suspects: tuple[str, ...] = ()  # models loaded when the pinned one was found gone


class Memory(_Frozen):
    inventory: tuple[InventoryEntry, ...] = ()
    deployed: DeployedObs = Field(default_factory=DeployedObs)
    warmed: dict[str, str] = Field(default_factory=dict)  # pinned model → container id it was loaded in
    warmed_at: dict[str, datetime] = Field(default_factory=dict)  # pinned model → when its load returned
    evictions: dict[str, tuple[Eviction, ...]] = Field(default_factory=dict)
    last_applied: str | None = None
    upstream: dict[str, UpstreamObs] = Field(default_factory=dict)  # model → its last registry check
    notified: dict[str, str] = Field(default_factory=dict)  # notice key → the state last told
    recorded: dict[str, str] = Field(default_factory=dict)  # model → digest committed by record: commit
    image_tags: dict[str, ImageTagsObs] = Field(default_factory=dict)  # image → its last tag-list check
    applied_updates: dict[str, AppliedUpdate] = Field(default_factory=dict)  # model → its last update
    image_runs: dict[str, ImageRun] = Field(default_factory=dict)  # image as written → auto's moves


def recent(evictions: tuple[Eviction, ...], at: datetime) -> tuple[Eviction, ...]:
    return tuple(e for e in evictions if at - e.at <= EVICTION_WINDOW)


def with_memory(observed: Observed, memory: Memory, at: datetime) -> Observed:
    """The parts of an observation that come from the reconciler's own memory."""
    evictions = tuple(
        EvictionObs(model=name, count=len(found), suspects=found[-1].suspects)
        for name, history in memory.evictions.items()
        if (found := recent(history, at))
    )
    return observed.model_copy(
        update={
            "inventory": memory.inventory,
            "deployed": memory.deployed,
            "evictions": evictions,
            "warmed": tuple(sorted(memory.warmed)),
            "upstream": tuple(memory.upstream[name] for name in sorted(memory.upstream)),
            "recorded": memory.recorded,
            "image_tags": tuple(memory.image_tags[key] for key in sorted(memory.image_tags)),
            "applied_updates": memory.applied_updates,
            "image_runs": memory.image_runs,
        }
    )
