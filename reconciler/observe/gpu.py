"""GPU memory as NVML reports it (the numbers `nvidia-smi` prints).

Read step: `read_nvml()` calls NVML through `pynvml` (package nvidia-ml-py; API per
NVIDIA's NVML reference: nvmlDeviceGetMemoryInfo, nvmlDeviceGetComputeRunningProcesses)
and returns plain dicts. Parse step: `parse_gpus()` builds `GpuObs`. A machine without the
library, the driver or a GPU is a normal observation, reported as a reason, never raised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.observed import GpuObs

RawGpu = dict[str, Any]


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _memory(pynvml: Any, handle: object) -> Any:
    """nvmlDeviceGetMemoryInfo_v2, as nvidia-smi reads it: `used` without the driver's
    reserve (v1 counts it as used: 615 MiB on an idle H200). v1 where the driver or the
    package predates v2."""
    version = getattr(pynvml, "nvmlMemory_v2", None)
    if version is not None:
        try:
            return pynvml.nvmlDeviceGetMemoryInfo(handle, version=version)
        except pynvml.NVMLError:
            pass
    return pynvml.nvmlDeviceGetMemoryInfo(handle)


def read_nvml() -> list[RawGpu]:
    """Every GPU NVML sees, as plain data. Raises whatever pynvml raises (ImportError, NVMLError)."""
    import pynvml  # imported here: a machine without the package still plans

    pynvml.nvmlInit()
    try:
        gpus: list[RawGpu] = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = _memory(pynvml, handle)
            try:
                procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except pynvml.NVMLError:
                procs = []  # not supported or no permission: the totals still stand
            gpus.append(
                {
                    "index": index,
                    "name": _text(pynvml.nvmlDeviceGetName(handle)),
                    "uuid": _text(pynvml.nvmlDeviceGetUUID(handle)),
                    "total": memory.total,
                    "used": memory.used,
                    "free": memory.free,
                    "reserved": getattr(memory, "reserved", 0),
                    "processes": [{"pid": p.pid, "used": p.usedGpuMemory} for p in procs],
                }
            )
        return gpus
    finally:
        pynvml.nvmlShutdown()


def _bytes(value: object) -> int:
    # NVML reports an unknown per-process figure as None (NVML_VALUE_NOT_AVAILABLE).
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def parse_gpus(raw: Sequence[Mapping[str, Any]]) -> tuple[GpuObs, ...]:
    """`read_nvml()`'s dicts → GpuObs, sorted by index."""
    gpus = []
    for gpu in raw:
        processes = tuple(
            (int(p["pid"]), _bytes(p.get("used"))) for p in gpu.get("processes", ()) if "pid" in p
        )
        gpus.append(
            GpuObs(
                index=int(gpu["index"]),
                name=_text(gpu.get("name", "")),
                uuid=_text(gpu.get("uuid", "")),
                total=_bytes(gpu.get("total")),
                used=_bytes(gpu.get("used")),
                free=_bytes(gpu.get("free")),
                reserved=_bytes(gpu.get("reserved", 0)),
                processes=processes,
            )
        )
    return tuple(sorted(gpus, key=lambda g: g.index))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ImportError):
        return "the NVML Python package (nvidia-ml-py) is not installed"
    text = str(exc) or type(exc).__name__
    name = type(exc).__name__
    if name == "NVMLError_LibraryNotFound":
        return "NVML library not found (no NVIDIA driver on this machine?)"
    if name == "NVMLError_DriverNotLoaded":
        return "the NVIDIA driver is not loaded"
    if name == "NVMLError_NoPermission":
        return "no permission to query NVML"
    return f"NVML error: {text}"


def observe_gpus() -> tuple[tuple[GpuObs, ...], str | None]:
    """The GPUs and no reason, or no GPUs and why none were seen."""
    try:
        gpus = parse_gpus(read_nvml())
    except Exception as exc:  # any NVML failure is an observation, not a crash
        return (), _reason(exc)
    if not gpus:
        return (), "NVML sees no GPU"
    return gpus, None
