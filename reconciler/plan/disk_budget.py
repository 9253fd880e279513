"""Disk accounting with shared blobs counted once, and LRU eviction of the rollback cache."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from reconciler.observed import Blob


@dataclass
class DiskPlan:
    download: int  # bytes of new blobs to fetch
    models_after: int  # bytes of all model blobs once the plan ran
    free_after: int | None
    resumed: int = 0  # of `download`, bytes unfinished downloads already hold on disk
    downloads: dict[str, int] = field(default_factory=dict)  # per pulled model, new bytes
    removed: list[tuple[str, int, bool]] = field(default_factory=list)  # (model, frees, evicted)
    cached: list[str] = field(default_factory=list)


class BlobLedger:
    """Reference counts of the blobs that will be on disk; removing a model frees only
    the blobs nobody else references (Ollama's RemoveLayers does the same)."""

    def __init__(self) -> None:
        self.refs: Counter[str] = Counter()
        self.sizes: dict[str, int] = {}

    def add(self, blobs: tuple[Blob, ...]) -> int:
        """Reference the blobs; return the bytes that are new on disk."""
        new = 0
        for blob in {b.digest: b for b in blobs}.values():
            if self.refs[blob.digest] == 0:
                new += blob.size
            self.refs[blob.digest] += 1
            self.sizes[blob.digest] = blob.size
        return new

    def drop(self, blobs: tuple[Blob, ...]) -> int:
        """Dereference the blobs; return the bytes freed."""
        freed = 0
        for digest in {b.digest for b in blobs}:
            self.refs[digest] -= 1
            if self.refs[digest] == 0:
                freed += self.sizes[digest]
                del self.refs[digest]
        return freed

    def total(self) -> int:
        return sum(self.sizes[d] for d in self.refs)


def plan_disk(
    present: dict[str, tuple[Blob, ...]],
    to_pull: dict[str, tuple[Blob, ...]],
    remove_now: list[str],
    cache_lru: list[str],
    *,
    budget: int,
    free: int | None,
    min_free: int,
    partial: dict[str, int] | None = None,
) -> DiskPlan:
    """Decide what to remove so the pulls fit.

    `remove_now` go first (policy `remove`), then `cache_lru` are evicted oldest first
    only while the models' bytes exceed `budget` or free space would drop under
    `min_free`. The caller reports a violation when it still does not fit. Bytes that
    unfinished downloads (`partial`, per digest) already hold are not taken from free space
    twice: a resumed pull only needs the rest.
    """
    ledger = BlobLedger()
    for blobs in present.values():
        ledger.add(blobs)
    on_disk = set(ledger.refs)
    downloads = {name: ledger.add(blobs) for name, blobs in to_pull.items()}
    download = sum(downloads.values())
    resumed = sum(
        min(size, ledger.sizes[d])
        for d, size in (partial or {}).items()
        if d in ledger.refs and d not in on_disk
    )
    result = DiskPlan(
        download=download, models_after=0, free_after=None, downloads=downloads, resumed=resumed
    )
    freed = 0
    for name in remove_now:
        released = ledger.drop(present[name])
        freed += released
        result.removed.append((name, released, False))

    def fits() -> bool:
        free_ok = free is None or free - download + resumed + freed >= min_free
        return ledger.total() <= budget and free_ok

    cache = list(cache_lru)
    while cache and not fits():
        name = cache.pop(0)
        released = ledger.drop(present[name])
        freed += released
        result.removed.append((name, released, True))
    result.cached = cache
    result.models_after = ledger.total()
    result.free_after = None if free is None else free - download + resumed + freed
    return result
