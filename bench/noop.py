"""Start-up and a no-op `apply` (issue 19 item 9; the in-process target is older).

    .venv/bin/python bench/noop.py [--runs 15]

Targets, each a new process as a user or a git hook starts it:
- `reconciler validate` of the example under 250 ms;
- a no-op `reconciler apply` on a converged server under 400 ms;
- in-process (what `serve` does on a resync): load + `reconcile()` under 100 ms.

Real Docker engine, registry and Ollama-compatible server (tests/harness). The server is
converged first (two models, one pinned in VRAM); then, interleaved in one run, each new
process beside the interpreter's own start-up (`python -c pass`, the floor no command can
go under), `--version` (the CLI's start-up), both git hooks as git runs them (pre-receive
validating the example's commit, post-receive of a push with no `serve` running), `validate`,
importing the three clients a no-op `apply` observes through (the Docker SDK,
httpx and the `ollama` client), loading the example and importing those clients in one process
(what a no-op `apply` cannot go under while it observes through them), the no-op
`apply`, `status` after it and the in-process reconcile. Every apply must report zero actions.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import bench_stack
from reconciler.desired.load import load_desired
from reconciler.desired.source import DirSource
from reconciler.gitops import ZERO, git, init_repo
from reconciler.reconcile import reconcile
from reconciler.report.events import EventBus, Recorder
from tests.e2e.stack import Stack

KiB = 1024
ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"validate": 250.0, "apply (no-op)": 400.0, "in-process reconcile": 100.0}


def timed(cmd: list[str], *, stdin: str = "", cwd: Path = ROOT, expect: str = "") -> float:
    start = time.perf_counter()
    result = subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )
    elapsed = (time.perf_counter() - start) * 1000
    if result.returncode != 0 or expect not in result.stdout + result.stderr:
        raise RuntimeError(f"{cmd[2:5]} exited {result.returncode}: {result.stdout}{result.stderr}")
    return elapsed


# What any no-op `apply` does before it observes anything: load and validate the desired state it
# applies, and import the three clients it observes through.
FLOOR = """
from pathlib import Path
from reconciler.desired.load import load_desired
from reconciler.desired.source import DirSource
load_desired(DirSource(Path({repo!r})))
import docker, httpx, ollama
"""


def in_process(stack: Stack) -> float:
    start = time.perf_counter()
    desired = load_desired(DirSource(stack.repo, revision=f"bench{uuid.uuid4().hex[:8]}"))
    report = reconcile(desired, stack.runtime, EventBus(Recorder()))
    if report.result != "converged" or report.actions_run != 0:
        raise RuntimeError(f"not a no-op: {report.result}, {report.actions_run} actions, {report.notes}")
    return (time.perf_counter() - start) * 1000


def commands(stack: Stack, bare: Path, head: str) -> dict[str, Callable[[], float]]:
    cli = [sys.executable, "-m", "reconciler.cli"]
    hook = [*cli, "hook", "--repo", str(bare), "--state-dir", str(bare.parent / "state")]
    update = f"{ZERO} {head} refs/heads/main\n"
    return {
        "python -c pass (the floor)": lambda: timed([sys.executable, "-c", "pass"]),
        "reconciler --version": lambda: timed([*cli, "--version"]),
        "validate": lambda: timed([*cli, "validate", str(ROOT / "desired_state")], expect="ok:"),
        "hook pre-receive": lambda: timed([*hook, "pre-receive"], stdin=update, cwd=bare, expect="valid"),
        "hook post-receive": lambda: timed(
            [*hook, "post-receive"], stdin=update, cwd=bare, expect="not running"
        ),
        "import docker, httpx, ollama": lambda: timed([sys.executable, "-c", "import docker, httpx, ollama"]),
        "load + those imports": lambda: timed([sys.executable, "-c", FLOOR.format(repo=str(stack.repo))]),
        "apply (no-op)": lambda: timed(
            [*cli, "apply", "--repo", str(stack.repo), "--state-dir", str(stack.state.root)],
            expect="no changes",
        ),
        # after an apply, which writes the status it reads (Ready: exit 0)
        "status": lambda: timed([*cli, "status", "--state-dir", str(stack.state.root)], expect="Ready"),
        "in-process reconcile": lambda: in_process(stack),
    }


def stats(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[max(0, round(0.95 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15, help="runs of each (default 15)")
    args = parser.parse_args()

    with bench_stack() as stack, tempfile.TemporaryDirectory() as tmp:
        main_model = stack.registry.push_model("bench-main", "q4", size_bytes=512 * KiB, seed="main")
        fast = stack.registry.push_model("bench-fast", "mini", size_bytes=256 * KiB, seed="fast")
        stack.set_models({"name": main_model.name, "keep_loaded": True, "num_ctx": 256}, fast.name)
        first = stack.apply()
        if first.result != "converged" or first.actions_run == 0:
            raise RuntimeError(f"converging failed: {first.result} {first.notes}")
        bare = Path(tmp) / "desired-state.git"
        init_repo(bare, seed=ROOT / "desired_state", state_dir=Path(tmp) / "state")
        runs = commands(stack, bare, git("rev-parse", "refs/heads/main", cwd=bare))
        for run in runs.values():  # warm-up: caches, the first observation
            run()
        figures: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.runs):
            for name, run in runs.items():
                figures[name].append(run())

    floor = statistics.median(figures["python -c pass (the floor)"])
    print(f"start-up and a no-op apply (2 models, 1 pinned), {args.runs} runs each, interleaved")
    print(f"{'':<28} {'median ms':>10} {'p95 ms':>8} {'x floor':>8}  target")
    for name, values in figures.items():
        median, p95 = stats(values)
        target = TARGETS.get(name)
        verdict = "" if target is None else f"< {target:.0f} ms {'MEETS' if median < target else 'MISSES'}"
        print(f"{name:<28} {median:>10.1f} {p95:>8.1f} {median / floor:>8.1f}  {verdict}")


if __name__ == "__main__":
    main()
