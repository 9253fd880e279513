"""GPU memory and utilisation sampled through NVML while a benchmark runs.

Read step: `GpuSampler` opens NVML once (nvmlInit, the handles, the driver version) and reads
nvmlDeviceGetMemoryInfo (v2, as nvidia-smi) and nvmlDeviceGetUtilizationRates on every
`sample()`; `close()` shuts NVML down. Parse step: `summarize_samples`. A machine without the
library, the driver or a GPU gives a reason instead of samples, never an error.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from reconciler.observe.gpu import _memory, _reason, _text


@dataclass(frozen=True)
class GpuIdentity:
    name: str
    driver: str
    total: int  # bytes, all GPUs


@dataclass(frozen=True)
class GpuSample:
    used: int  # bytes in use, all GPUs (NVML v2: without the driver's reserve)
    util: float  # mean utilisation of the GPUs over NVML's last sample period, in %


class GpuSampler:
    def __init__(self) -> None:
        self.reason: str | None = None
        self.identity: GpuIdentity | None = None
        self._nvml: Any = None
        self._handles: list[Any] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            if not self._handles:
                self.close()
                self.reason = "NVML sees no GPU"
                return
            names = sorted({_text(pynvml.nvmlDeviceGetName(h)) for h in self._handles})
            total = sum(_memory(pynvml, h).total for h in self._handles)
            driver = _text(pynvml.nvmlSystemGetDriverVersion())
            self.identity = GpuIdentity(name=" + ".join(names), driver=driver, total=int(total))
        except Exception as exc:  # any NVML failure is an observation
            self.close()
            self.reason = _reason(exc)

    def sample(self) -> GpuSample | None:
        if self._nvml is None:
            return None
        try:
            used = sum(int(_memory(self._nvml, h).used) for h in self._handles)
            utils = [float(self._nvml.nvmlDeviceGetUtilizationRates(h).gpu) for h in self._handles]
        except Exception:  # a GPU that stops answering mid-run leaves the samples taken so far
            return None
        return GpuSample(used=used, util=sum(utils) / len(utils))

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):  # shutting down: nothing left to report
                self._nvml.nvmlShutdown()
        self._nvml = None
        self._handles = []


def summarize_samples(samples: list[GpuSample]) -> tuple[int | None, float | None]:
    """(most memory in use, mean utilisation) over the samples, or Nones without any."""
    if not samples:
        return None, None
    return max(s.used for s in samples), sum(s.util for s in samples) / len(samples)
