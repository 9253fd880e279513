"""GPU observation: the parse step, and a machine without NVML."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from reconciler.observe import gpu
from reconciler.observe.gpu import observe_gpus, parse_gpus
from reconciler.observed import GpuObs

GiB = 2**30
MiB = 2**20


def raw_3070() -> dict[str, Any]:
    return {
        "index": 0,
        "name": "NVIDIA GeForce RTX 3070",
        "uuid": "GPU-3f1c2a9e-0000-1111-2222-333344445555",
        "total": 8 * GiB,
        "used": 6 * GiB,
        "free": 2 * GiB,
        "processes": [{"pid": 4242, "used": 5 * GiB}, {"pid": 77, "used": None}],
    }


def test_parse_gpus() -> None:
    (g,) = parse_gpus([raw_3070()])
    assert g == GpuObs(
        index=0,
        name="NVIDIA GeForce RTX 3070",
        uuid="GPU-3f1c2a9e-0000-1111-2222-333344445555",
        total=8 * GiB,
        used=6 * GiB,
        free=2 * GiB,
        processes=((4242, 5 * GiB), (77, 0)),
    )


def test_parse_sorts_by_index_and_decodes_bytes() -> None:
    second = {**raw_3070(), "index": 1, "name": b"Tesla T4", "uuid": b"GPU-x", "processes": []}
    gpus = parse_gpus([second, raw_3070()])
    assert [g.index for g in gpus] == [0, 1]
    assert (gpus[1].name, gpus[1].uuid) == ("Tesla T4", "GPU-x")


def test_parse_odd_values_become_zero() -> None:
    (g,) = parse_gpus([{"index": 0, "total": None, "used": -1, "free": True}])
    assert (g.total, g.used, g.free, g.processes) == (0, 0, 0, ())


def test_no_nvml_here_is_an_observation() -> None:
    gpus, reason = observe_gpus()
    if gpus:  # pragma: no cover - only on a machine with a GPU
        pytest.skip("this machine has a GPU")
    assert gpus == ()
    assert reason
    assert isinstance(reason, str)


def test_missing_package_is_an_observation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    assert observe_gpus() == ((), "the NVML Python package (nvidia-ml-py) is not installed")


def test_any_error_is_an_observation(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> list[dict[str, Any]]:
        raise RuntimeError("driver/library version mismatch")

    monkeypatch.setattr(gpu, "read_nvml", broken)
    assert observe_gpus() == ((), "NVML error: driver/library version mismatch")


def test_zero_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "read_nvml", list)
    assert observe_gpus() == ((), "NVML sees no GPU")


def test_gpus_and_no_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "read_nvml", lambda: [raw_3070()])
    gpus, reason = observe_gpus()
    assert reason is None
    assert gpus[0].free == 2 * GiB


class _FakeNvml:
    """The slice of pynvml read_nvml() calls, for an idle H200 as NVML v1 and v2 report it."""

    class NVMLError(Exception):
        pass

    nvmlMemory_v2 = 0x2000028

    def __init__(self, v2: bool) -> None:
        self.v2 = v2

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return b"NVIDIA H200"

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return "GPU-835a"

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:
        raise self.NVMLError("Not Supported")

    def nvmlDeviceGetMemoryInfo(self, handle: int, version: int | None = None) -> Any:
        from types import SimpleNamespace

        total, reserved = 143771 * MiB, 615 * MiB
        if version is None:
            return SimpleNamespace(total=total, used=reserved, free=total - reserved)
        if not self.v2:
            raise self.NVMLError("Function Not Found")
        return SimpleNamespace(total=total, reserved=reserved, used=0, free=total - reserved)


@pytest.mark.parametrize("v2", [True, False])
def test_memory_is_read_as_nvidia_smi_reads_it_with_v1_as_fallback(
    monkeypatch: pytest.MonkeyPatch, v2: bool
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _FakeNvml(v2))
    (g,) = parse_gpus(gpu.read_nvml())
    assert (g.total - g.free) == 615 * MiB  # the driver's reserve is never free, either way
    assert (g.used, g.reserved) == ((0, 615 * MiB) if v2 else (615 * MiB, 0))
    assert g.processes == ()  # per-process figures unsupported: the totals still stand
