"""Pulling a model through `apply` vs a direct pull of the same bytes (target: ratio ≤ 1.05).

    .venv/bin/python bench/pull.py [--mb 256] [--reps 7]

Real Docker engine, real registry container, the Ollama-compatible server started by the
reconciler itself (tests/harness). One model of N MiB is pushed to the registry; then, in
one run and alternating which goes first, each repetition times

- apply:  `reconcile()` (load the desired state, observe, registry manifest + header
          look-up, plan, pull with progress events) on a server whose container exists
          but whose model is absent;
- direct: the ollama client's `pull(name, insecure=True, stream=True)` against the same
          server — the same streaming protocol the reconciler uses, so the ratio is the
          reconciler's own overhead.

Before every measurement the model is deleted and its blobs are checked gone, and after it
the fake's event log is checked for one full download (range start 0) of the weights, so
both sides download every byte from the registry.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import ollama

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import MiB, bench_stack
from tests.e2e.stack import Stack
from tests.harness.registry import PushedModel

TARGET = 1.05


def blob_names(stack: Stack) -> set[str]:
    script = (
        "import os;d='/root/.ollama/models/blobs';"
        "print('\\n'.join(os.listdir(d) if os.path.isdir(d) else []))"
    )
    code, out = stack.container().exec_run(["python3", "-c", script])
    if code != 0:
        raise RuntimeError(f"listing blobs failed: {out!r}")
    return set(out.decode().split())


def make_absent(stack: Stack, client: ollama.Client, model: PushedModel) -> None:
    with contextlib.suppress(ollama.ResponseError):
        client.delete(model.name)
    wanted = {d.replace(":", "-") for d in model.digests}
    left = {n for n in blob_names(stack) if n.removesuffix("-partial") in wanted}
    if left:
        raise RuntimeError(f"blobs of {model.name} still present after delete: {sorted(left)}")
    if model.name in stack.tags():
        raise RuntimeError(f"{model.name} still listed after delete")
    httpx.delete(f"{stack.url}/__fake/events", timeout=10).raise_for_status()


def check_full_download(stack: Stack, model: PushedModel, label: str) -> None:
    events = httpx.get(f"{stack.url}/__fake/events", timeout=10).json()["events"]
    starts = [
        e["range_start"]
        for e in events
        if e["type"] == "download" and e["digest"] == model.model_layer.digest
    ]
    if starts != [0]:
        raise RuntimeError(f"{label}: expected one full download of the weights, got range starts {starts}")
    if model.name not in stack.tags():
        raise RuntimeError(f"{label}: {model.name} not present after the pull")


def via_apply(stack: Stack) -> None:
    report = stack.apply()
    kinds = [a.kind for p in report.plans for a in p.actions]
    if report.result != "converged" or kinds != ["pull"]:
        raise RuntimeError(f"apply: result {report.result}, actions {kinds}, notes {report.notes}")


def pull_seconds(stack: Stack) -> float:
    """How long the last apply spent in the pull itself (action.start → pull.done): the rest
    of its time is the reconciler's own (load, observe, registry look-up, plan, confirm)."""
    stamps = {e["event"]: datetime.fromisoformat(e["ts"]) for e in stack.recorder.events}
    return (stamps["pull.done"] - stamps["action.start"]).total_seconds()


def via_direct(client: ollama.Client, model: PushedModel) -> None:
    statuses = [update.status for update in client.pull(model.name, insecure=True, stream=True)]
    if not statuses or statuses[-1] != "success":
        raise RuntimeError(f"direct pull ended with {statuses[-1:]}")


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=256, help="model size in MiB (default 256)")
    parser.add_argument("--reps", type=int, default=7, help="repetitions of each (default 7)")
    args = parser.parse_args()

    with bench_stack() as stack:
        size = args.mb * MiB
        stack.server["budgets"]["disk"]["models"] = f"{max(1024, 4 * args.mb)}MiB"
        stack.set_models()
        setup = stack.apply()  # creates the container; no model yet
        if setup.result != "converged":
            raise RuntimeError(f"set-up apply: {setup.result} {setup.notes}")
        print(f"pushing a {args.mb} MiB model to the registry …", flush=True)
        model = stack.registry.push_model("bench-pull", "t", size_bytes=size, seed="bench")
        stack.set_models(model.name)
        client = ollama.Client(host=stack.url, timeout=600)

        make_absent(stack, client, model)  # warm-up (untimed): registry and page cache
        via_direct(client, model)

        sides: dict[str, Callable[[], None]] = {
            "apply": lambda: via_apply(stack),
            "direct": lambda: via_direct(client, model),
        }
        times: dict[str, list[float]] = {"apply": [], "direct": []}
        own: list[float] = []
        print(f"{'rep':>3} {'order':<14} {'apply s':>8} {'direct s':>9} {'ratio':>6}")
        for rep in range(args.reps):
            order = ["apply", "direct"] if rep % 2 == 0 else ["direct", "apply"]
            for side in order:
                make_absent(stack, client, model)
                times[side].append(timed(sides[side]))
                check_full_download(stack, model, side)
                if side == "apply":
                    own.append(times["apply"][-1] - pull_seconds(stack))
            a, d = times["apply"][-1], times["direct"][-1]
            print(f"{rep + 1:>3} {' → '.join(order):<14} {a:>8.3f} {d:>9.3f} {a / d:>6.3f}")

        apply_m, direct_m = statistics.median(times["apply"]), statistics.median(times["direct"])
        ratio = apply_m / direct_m
        mib = model.total_size / MiB
        print(
            f"median of {args.reps}: apply {apply_m:.3f} s ({mib / apply_m:.0f} MiB/s), "
            f"direct {direct_m:.3f} s ({mib / direct_m:.0f} MiB/s) for {mib:.1f} MiB"
        )
        ratios = sorted(a / d for a, d in zip(times["apply"], times["direct"], strict=True))
        print(f"per-rep ratios: min {ratios[0]:.3f}, max {ratios[-1]:.3f} (the noise of this machine)")
        print(
            f"reconciler's own time per apply (outside the pull stream): median "
            f"{1000 * statistics.median(own):.0f} ms, max {1000 * max(own):.0f} ms"
        )
        verdict = "MEETS" if ratio <= TARGET else "MISSES"
        print(
            f"verdict: apply/direct = {ratio:.3f} ({verdict} the ≤ {TARGET} target; "
            f"apply overhead {1000 * (apply_m - direct_m):+.0f} ms)"
        )


if __name__ == "__main__":
    main()
