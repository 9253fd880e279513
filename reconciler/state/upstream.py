"""Remember what the registry served at each look-up: the upstream digest and when it was seen."""

from __future__ import annotations

from datetime import datetime

from reconciler.memory import Memory
from reconciler.observed import Observed, UpstreamObs


def record_lookups(memory: Memory, observed: Observed, at: datetime) -> Memory:
    """Every look-up of this observation (a missing model's, or a due update check) becomes the
    model's last check; a failed one keeps the last digest seen and counts the failure. The
    images' tag-list looks are kept the same way."""
    if observed.image_checks:
        tags = {**memory.image_tags, **{c.image: c for c in observed.image_checks}}
        memory = memory.model_copy(update={"image_tags": tags})
    if not observed.remote and not observed.remote_errors:
        return memory
    upstream = dict(memory.upstream)
    for found in observed.remote:
        upstream[found.name] = UpstreamObs(
            name=found.name, checked_at=at, digest=found.digest or None, blobs=found.blobs
        )
    for name, why in observed.remote_errors.items():
        last = upstream.get(name)
        upstream[name] = UpstreamObs(
            name=name,
            checked_at=at,
            digest=last.digest if last else None,
            blobs=last.blobs if last else (),
            error=why,
            failures=(last.failures if last else 0) + 1,
        )
    return memory.model_copy(update={"upstream": upstream})
