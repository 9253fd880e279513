"""The planner on real NVML figures while another process holds GPU memory (gpu_check --pressure).

A pinned model is sized so that its VRAM estimate fits the budget and the memory free now,
but not once GIB more are taken. The planner must warm it before, leave it unloaded with a
Degraded status naming the numbers while the memory is held, and warm it again after.
"""

from __future__ import annotations

import subprocess
import sys
from typing import IO

from reconciler.observe.gpu import observe_gpus
from reconciler.observed import GpuObs
from reconciler.plan.actions import LoadModel, Plan
from reconciler.plan.planner import plan
from reconciler.units import format_bytes
from tests.unit.factories import GiB, degraded, desired, model, observed

MODEL = "llama3:70b-pressure-check"
# Holds GIB of device memory through the framework's own allocator (cudaMalloc), then waits.
HOLDERS = {
    "torch": "import sys, torch; x = torch.empty({n}, dtype=torch.uint8, device='cuda'); "
    "x.fill_(1); torch.cuda.synchronize(); print('held', flush=True); sys.stdin.read()",
    "cupy": "import sys, cupy; x = cupy.ones({n}, dtype=cupy.uint8); "
    "cupy.cuda.Device().synchronize(); print('held', flush=True); sys.stdin.read()",
}


def hold(gib: int) -> subprocess.Popen[str] | None:
    for name, code in HOLDERS.items():
        proc = subprocess.Popen(
            [sys.executable, "-c", code.format(n=gib * GiB)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        out: IO[str] | None = proc.stdout
        if out is not None and out.readline().strip() == "held":
            print(f"pid {proc.pid} holds {gib} GiB through {name}")
            return proc
        proc.kill()
        proc.wait()
    return None


def release(proc: subprocess.Popen[str]) -> None:
    if proc.stdin:
        proc.stdin.close()
    proc.wait(timeout=60)


def check(gpus: tuple[GpuObs, ...], weights: int) -> tuple[Plan, bool, str]:
    state = desired(
        [{"name": MODEL, "keep_loaded": True, "num_ctx": 4096}],
        vram={"headroom": 0},
        disk="10TiB",
    )
    seen = observed(state, models=[model(MODEL, ("w", weights))], gpus=gpus, gpu_total=None)
    p = plan(state, seen)
    return p, *degraded(p, seen)


def _show(label: str, gpus: tuple[GpuObs, ...], p: Plan, degraded: bool, message: str) -> bool:
    loads = [a for a in p.actions if isinstance(a, LoadModel)]
    used = format_bytes(sum(g.used for g in gpus))
    free = format_bytes(sum(g.free for g in gpus))
    print(f"{label:>7}: used {used}, free {free}; plan loads {len(loads)}; Degraded={degraded} {message}")
    if p.violations:
        print(f"         refused: {'; '.join(v.message for v in p.violations)}")
    return bool(loads)


def run_pressure(gib: int) -> int:
    before, _ = observe_gpus()
    free = sum(g.free for g in before)
    if free < 2 * gib * GiB:
        print(f"pressure: {format_bytes(free)} free is too little to take {gib} GiB and still fit a model")
        return 1
    # estimate ≈ weights + 1.3 GiB (KV, graph, CUDA minimum at num_ctx 4096): half of `gib` under today's free
    weights = free - gib * GiB // 2 - 2 * GiB
    p, degraded, message = check(before, weights)
    ok = _show("before", before, p, degraded, message) and not degraded
    proc = hold(gib)
    if proc is None:
        print("pressure: neither torch nor cupy could take GPU memory")
        return 1
    try:
        during, _ = observe_gpus()
        p, degraded, message = check(during, weights)
        ok &= not _show("during", during, p, degraded, message) and degraded and "not warming" in message
        grew = sum(g.used for g in during) - sum(g.used for g in before)
        listed = [used for g in during for pid, used in g.processes if pid == proc.pid]
        print(f"         used grew {format_bytes(grew)}; NVML lists pid {proc.pid}: {bool(listed)}")
        ok &= grew >= gib * GiB
    finally:
        release(proc)
    after, _ = observe_gpus()
    p, degraded, message = check(after, weights)
    ok &= _show("after", after, p, degraded, message) and not degraded
    print("pressure: " + ("ok" if ok else "FAILED"))
    return 0 if ok else 1
