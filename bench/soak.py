"""Soak: `reconciler serve` for N minutes under a steady push/drift load.

    .venv/bin/python bench/soak.py [--minutes 10]

Load: a push every few seconds (a real `git push` through the hooks, alternating the model
set), now and then a model deleted by hand (drift the resync repairs) and, once in a while,
the Ollama container killed (healed from Docker events). Prints serve's RSS, open file
descriptors (/proc/<pid>/fd) and reconcile latency percentiles (reconcile.start →
reconcile.done in the event log) for the first and the last part of the run, with verdicts:
RSS growth < 10 %, no fd growth.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ollama

from tests.e2e.gitops import GitOps, dump_state
from tests.harness.standalone import harness_stack

KiB = 1024


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def latencies(events: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(start time, seconds) of each reconcile, from its start and done events."""
    out, began = [], None
    for e in events:
        ts = datetime.fromisoformat(str(e["ts"]).replace("Z", "+00:00")).timestamp()
        if e["event"] == "reconcile.start":
            began = ts
        elif e["event"] == "reconcile.done" and began is not None:
            out.append((began, ts - began))
            began = None
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--push-every", type=float, default=4.0, help="seconds between pushes")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with harness_stack() as stack, tempfile.TemporaryDirectory(prefix="rcl-soak-") as tmp:
        models = [
            stack.registry.push_model(f"soak-{i}", "t", size_bytes=96 * KiB, seed=f"s{i}") for i in range(4)
        ]
        ops = GitOps(stack, Path(tmp))
        ops.start_serve("--resync", "20")
        assert ops.proc is not None
        pid = ops.proc.pid
        ops.wait_event(lambda e: e["event"] == "reconcile.done", timeout=120)
        warm_until = time.monotonic() + min(30.0, args.minutes * 60 / 4)
        end = time.monotonic() + args.minutes * 60
        samples: list[tuple[float, int, int]] = []
        pushes = drifts = kills = 0
        last_kill = time.monotonic()
        while time.monotonic() < end:
            chosen = rng.sample(models, 2)
            stack.ollama["models"] = [{"name": m.name} for m in chosen]
            ops.commit(f"soak {pushes}", {**dump_state(ops), "notes.md": f"{pushes}\n"})
            ops.push(timeout=0)
            pushes += 1
            if rng.random() < 0.2:
                time.sleep(1.0)
                with contextlib.suppress(Exception):  # best effort: the model may be mid-pull
                    ollama.Client(host=stack.url, timeout=5).delete(rng.choice(chosen).name)
                    drifts += 1
            if time.monotonic() - last_kill > 90:
                with contextlib.suppress(Exception):
                    stack.container().kill()
                    kills += 1
                last_kill = time.monotonic()
            time.sleep(args.push_every)
            if time.monotonic() >= warm_until:
                samples.append((time.monotonic(), rss_kib(pid), fds(pid)))
        time.sleep(5)  # let the last reconcile finish
        samples.append((time.monotonic(), rss_kib(pid), fds(pid)))
        events = ops.events()
        ops.stop_serve()
    lat = latencies(events)
    third = max(1, len(lat) // 3)
    first, last = [s for _, s in lat[:third]], [s for _, s in lat[-third:]]
    head, tail = samples[: max(1, len(samples) // 5)], samples[-max(1, len(samples) // 5) :]
    rss0, rss1 = statistics.median(s[1] for s in head), statistics.median(s[1] for s in tail)
    fd0, fd1 = max(s[2] for s in head), max(s[2] for s in tail)
    growth = (rss1 - rss0) / rss0 * 100 if rss0 else 0.0
    load = f"{pushes} pushes, {drifts} models deleted by hand, {kills} container kills"
    print(f"soak: {args.minutes:g} min, {load}, {len(lat)} reconciles")
    print(f"{'':8} {'RSS MiB':>8} {'fds':>5} {'p50 s':>7} {'p90 s':>7} {'p99 s':>7} {'max s':>7}")
    for label, rss, fd, values in (("start", rss0, fd0, first), ("end", rss1, fd1, last)):
        print(f"{label:8} {rss / 1024:8.1f} {fd:5d} {pct(values, 0.5):7.2f} {pct(values, 0.9):7.2f} "
              f"{pct(values, 0.99):7.2f} {max(values, default=float('nan')):7.2f}")  # fmt: skip
    ok_rss, ok_fd = growth < 10.0, fd1 <= fd0
    print(f"RSS growth {growth:+.1f} % (target < 10 %): {'PASS' if ok_rss else 'FAIL'}")
    print(f"fd count {fd0} → {fd1} (target: no growth): {'PASS' if ok_fd else 'FAIL'}")
    return 0 if ok_rss and ok_fd else 1


if __name__ == "__main__":
    sys.exit(main())
