"""`kill -9` of `serve` at seeded points of reconciles: mid-pull, mid-container-recreate,
between actions, anywhere (the k-th event). Each restart must converge to the pushed commit
without a second full download of any blob and without an orphaned container."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.gitops import GitOps, dump_state
from tests.faults.support import KiB, Tail, assert_converged, full_downloads, kill_when

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
SEED = 20240607
POINTS = 20


def test_kill_9_at_seeded_points_converges_without_redownloads_or_orphans(
    gitops: GitOps, survived: dict[str, Any]
) -> None:
    rng = random.Random(SEED)
    stack = gitops.stack
    pool = [
        stack.registry.push_model(f"kill9-{i}", "t", size_bytes=160 * KiB, seed=f"k9-{i}") for i in range(6)
    ]
    stack.ollama["removal"] = {"undesired": "remove"}
    extra = stack.ollama["container"]["env"]["extra"]
    extra["FAKE_OLLAMA_PULL_RATE"] = str(400 * KiB)
    tail = Tail(gitops)
    gitops.start_serve()
    phases: Counter[str] = Counter()
    for point in range(POINTS):
        models = [pool[(2 * point) % 6], pool[(2 * point + 1) % 6]]
        stack.ollama["models"] = [{"name": m.name} for m in models]
        recreate = point % 2 == 0
        if recreate:
            extra["FAULT_GENERATION"] = str(point)  # a new container spec: recreate
        sha = gitops.commit(f"point {point}", dump_state(gitops))
        digests = [d for m in models for d in m.digests]
        before = full_downloads(stack, digests)
        start = len(tail.poll())
        kind = rng.choice(
            ["k-th event", "mid-pull", "between actions"] + (["mid-recreate"] * 2 if recreate else [])
        )
        k = rng.randint(1, 40)
        delay = rng.uniform(0.05, 0.35)
        recreate_at = rng.choice(
            ["container.container_removed", "container.container_created", "action.start"]
        )
        hits: dict[str, Callable[[dict[str, Any]], bool]] = {
            "k-th event": lambda e: len(tail.events) >= start + k,  # noqa: B023 - used in this iteration
            "mid-pull": lambda e: (
                e["event"] == "action.start" and str(e.get("action", "")).startswith("pull")
            ),
            "between actions": lambda e: e["event"] == "action.done",
            "mid-recreate": lambda e: e["event"] == recreate_at,  # noqa: B023 - used in this iteration
        }
        pusher = threading.Thread(target=gitops.push, kwargs={"timeout": 0})
        pusher.start()
        kill_when(gitops, tail, start, hits[kind], then=delay if kind == "mid-pull" else 0.0)
        journal = gitops.state_dir / "journal.json"
        in_flight = json.loads(journal.read_text())["kind"] if journal.exists() else None
        phases[f"{kind} (in flight: {in_flight or 'none'})"] += 1
        pusher.join(timeout=60)
        gitops.start_serve()
        assert_converged(gitops, sha, [m.name for m in models], timeout=60)
        after = full_downloads(stack, digests)
        again = {d: after[d] - before[d] for d in digests if after[d] - before[d] > 1}
        assert not again, f"point {point} ({kind}): blobs downloaded in full twice: {again}"
    survived["faults"] = POINTS
    survived["detail"] = dict(phases)
    kinds = " ".join(phases)
    assert "in flight: pull" in kinds and "in flight: container" in kinds, phases
