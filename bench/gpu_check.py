"""The GPU observer's figures beside nvidia-smi's, and the planner under real VRAM pressure,
to check them on a GPU machine.

    .venv/bin/python bench/gpu_check.py [--pressure GIB]

Prints one line per GPU from `observe_gpus()` (MiB, as nvidia-smi's `nounits` prints them)
and the `nvidia-smi --query-gpu=index,memory.total,memory.used,memory.free` CSV beside it,
then the compute processes NVML lists. With `--pressure`, another process (PyTorch or CuPy)
takes GIB of GPU memory, and the planner is run on what NVML reports before, during and
after: a pinned model sized to fit only without that process must be warmed before, left
unloaded with a Degraded status that names the numbers during, and warmed again after.
Exit status 1 when a check fails, 2 when the observer sees no GPU at all.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.observe.gpu import observe_gpus

MiB = 2**20
QUERY = "index,memory.total,memory.used,memory.free"


def nvidia_smi() -> dict[int, tuple[int, int, int]]:
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"nvidia-smi: {exc}")
        return {}
    rows = {}
    for line in out.strip().splitlines():
        index, total, used, free = (int(x.strip()) for x in line.split(","))
        rows[index] = (total, used, free)
    return rows


def compare() -> int:
    gpus, reason = observe_gpus()
    if reason:
        print(f"observer: no GPU ({reason})")
    smi = nvidia_smi()
    print(f"{'gpu':>3}  {'observer total/used/free MiB':>32}  {'nvidia-smi total/used/free MiB':>32}")
    mismatch = False
    for g in gpus:
        ours = (g.total // MiB, g.used // MiB, g.free // MiB)
        theirs = smi.get(g.index)
        if theirs is None or any(abs(a - b) > 1 for a, b in zip(ours, theirs, strict=True)):
            mismatch = True
        shown = "/".join(map(str, theirs)) if theirs else "-"
        print(f"{g.index:>3}  {'/'.join(map(str, ours)):>32}  {shown:>32}  {g.name} {g.uuid}")
        print(f"       driver reserve {g.reserved // MiB} MiB (neither used nor free)")
        for pid, used in g.processes:
            print(f"       pid {pid}: {used // MiB} MiB")
    for index in sorted(set(smi) - {g.index for g in gpus}):
        mismatch = True
        print(f"{index:>3}  {'-':>32}  {'/'.join(map(str, smi[index])):>32}")
    if not gpus:
        return 2
    return 1 if mismatch else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pressure", type=int, metavar="GIB", help="GPU memory another process takes")
    args = parser.parse_args()
    code = compare()
    if code == 0 and args.pressure:
        from bench.gpu_pressure import run_pressure

        code = run_pressure(args.pressure)
    return code


if __name__ == "__main__":
    sys.exit(main())
