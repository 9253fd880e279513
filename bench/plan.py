"""Planning time for 10 and 200 models (target: under 50 ms for 200).

    .venv/bin/python bench/plan.py

Half the models are present (some sharing weight blobs), the rest must be pulled, a
quarter of the present ones are an LRU rollback cache under a tight disk budget, and
two are pinned. Prints the median and p95 of repeated runs, measured side by side.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.plan.planner import plan
from tests.unit.factories import GiB, desired, model, observed, remote


def scenario(n: int):  # type: ignore[no-untyped-def]
    names = [f"model{i}:q4_K_M" for i in range(n)]
    specs = [{"name": name, "keep_loaded": i < 2, "num_ctx": 4096} for i, name in enumerate(names)]
    state = desired(specs, disk=f"{n * 3}GiB", min_free="10GiB", vram={"per_gpu": "24GiB"})
    present = [model(name, (f"w{i // 2}", 2 * GiB), (f"t{i}", 300)) for i, name in enumerate(names[: n // 2])]
    cached = [model(f"old{i}:q4", (f"o{i}", 2 * GiB)) for i in range(n // 4)]
    remotes = [remote(name, (f"w{i // 2 + n}", 2 * GiB), (f"t{i}", 300)) for i, name in enumerate(names)]
    managed = {f"old{i}:q4": 1 + i % 27 for i in range(n // 4)}
    return state, observed(
        state, models=present + cached, remotes=remotes, managed=managed, free=10_000 * GiB
    )


def measure(n: int, repeats: int) -> tuple[float, float, int]:
    state, seen = scenario(n)
    times = []
    actions = 0
    for _ in range(repeats):
        start = time.perf_counter()
        result = plan(state, seen)
        times.append((time.perf_counter() - start) * 1000)
        actions = len(result.actions)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], actions


def main() -> None:
    print(f"{'models':>7} {'median ms':>10} {'p95 ms':>8} {'actions':>8}")
    results = {}
    for n in (10, 200):
        median, p95, actions = measure(n, repeats=50)
        results[n] = median
        print(f"{n:>7} {median:>10.2f} {p95:>8.2f} {actions:>8}")
    verdict = "meets" if results[200] < 50 else "MISSES"
    print(
        f"200 models: {results[200]:.1f} ms ({verdict} the 50 ms target); "
        f"200/10 ratio {results[200] / results[10]:.1f}x"
    )


if __name__ == "__main__":
    main()
