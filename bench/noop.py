"""A no-op `apply` on a converged server (target: median < 100 ms in-process).

    .venv/bin/python bench/noop.py [--runs 20]

Real Docker engine, registry and Ollama-compatible server (tests/harness). The server is
converged first (two models, one pinned in VRAM); then, interleaved in one run:

- in-process: load the desired state + `reconcile()` in this process, which already has
  its imports, clients' modules and the Docker connection warm (what `serve` does on a
  resync or a Docker event);
- CLI: `python -m reconciler.cli apply --repo … --state-dir …` as a new process, which
  adds the interpreter's start-up, imports and the Docker client set-up.

Every run must report zero actions (the CLI: exit 0 and "no changes").
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import bench_stack
from reconciler.desired.load import load_desired
from reconciler.desired.source import DirSource
from reconciler.reconcile import reconcile
from reconciler.report.events import EventBus, Recorder
from tests.e2e.stack import Stack

KiB = 1024
TARGET_MS = 100.0
ROOT = Path(__file__).resolve().parents[1]


def in_process(stack: Stack) -> tuple[float, float]:
    """(load + reconcile ms, reconcile-only ms)."""
    start = time.perf_counter()
    desired = load_desired(DirSource(stack.repo, revision=f"bench{uuid.uuid4().hex[:8]}"))
    loaded = time.perf_counter()
    report = reconcile(desired, stack.runtime, EventBus(Recorder()))
    end = time.perf_counter()
    if report.result != "converged" or report.actions_run != 0:
        raise RuntimeError(f"not a no-op: {report.result}, {report.actions_run} actions, {report.notes}")
    return (end - start) * 1000, (end - loaded) * 1000


def via_cli(stack: Stack) -> float:
    cmd = [sys.executable, "-m", "reconciler.cli", "apply", "--repo", str(stack.repo),
           "--state-dir", str(stack.state.root)]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    elapsed = (time.perf_counter() - start) * 1000
    if result.returncode != 0 or "no changes" not in result.stdout:
        raise RuntimeError(
            f"CLI apply was not a no-op (exit {result.returncode}): {result.stdout}{result.stderr}"
        )
    return elapsed


def startup_only() -> float:
    """The interpreter plus the CLI's imports, doing nothing (`reconciler --version`)."""
    cmd = [sys.executable, "-m", "reconciler.cli", "--version"]
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, timeout=60, check=True, cwd=ROOT)
    return (time.perf_counter() - start) * 1000


def stats(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return statistics.median(ordered), p95


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="runs of each (default 20)")
    args = parser.parse_args()

    with bench_stack() as stack:
        main_model = stack.registry.push_model("bench-main", "q4", size_bytes=512 * KiB, seed="main")
        fast = stack.registry.push_model("bench-fast", "mini", size_bytes=256 * KiB, seed="fast")
        stack.set_models({"name": main_model.name, "keep_loaded": True, "num_ctx": 256}, fast.name)
        first = stack.apply()
        if first.result != "converged" or first.actions_run == 0:
            raise RuntimeError(f"converging failed: {first.result} {first.notes}")
        in_process(stack)  # warm-up: first observation after start-up
        via_cli(stack)

        full: list[float] = []
        only: list[float] = []
        cli: list[float] = []
        boot: list[float] = []
        for _ in range(args.runs):
            total, rec = in_process(stack)
            full.append(total)
            only.append(rec)
            cli.append(via_cli(stack))
            boot.append(startup_only())

        rows = [
            ("in-process: load + reconcile()", full),
            ("in-process: reconcile() only", only),
            ("CLI process: reconciler apply", cli),
            ("CLI process: --version only", boot),
        ]
        print(f"no-op apply on a converged server (2 models, 1 pinned), {args.runs} runs each, interleaved")
        print(f"{'':<32} {'median ms':>10} {'p95 ms':>8}")
        for label, values in rows:
            median, p95 = stats(values)
            print(f"{label:<32} {median:>10.1f} {p95:>8.1f}")
        median_full, p95_full = stats(full)
        median_cli = statistics.median(cli)
        verdict = "MEETS" if median_full < TARGET_MS else "MISSES"
        print(
            f"verdict: in-process no-op apply median {median_full:.1f} ms, p95 {p95_full:.1f} ms "
            f"({verdict} the < {TARGET_MS:.0f} ms target); the CLI adds {median_cli - median_full:.0f} ms "
            f"of process start-up ({median_cli / median_full:.1f}x)"
        )


if __name__ == "__main__":
    main()
