"""Which way of passing the GPU to the Ollama container works on this server, once found.

Docker has three: a device request (`docker run --gpus all`, needs the NVIDIA Container
Toolkit's hook), a CDI device (`--device nvidia.com/gpu=all`, needs a CDI spec such as
`nvidia-ctk cdi generate` writes and a Docker that reads CDI) and the `nvidia` runtime
(`--runtime=nvidia`, the older nvidia-docker2 way). The container executor tries them in that
order, the one recorded here first, and records the one that worked; `reconciler doctor`
reports it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from reconciler.state.store import read_model, write_atomic

GpuMode = Literal["device-request", "cdi", "runtime"]
GPU_MODES: tuple[GpuMode, ...] = ("device-request", "cdi", "runtime")
FILE = "gpu-passthrough.json"


def flag(mode: GpuMode, gpus: str | tuple[str, ...] = "all") -> str:
    """The `docker run` flag that means the same."""
    ids = "all" if gpus == "all" else ",".join(gpus)
    if mode == "device-request":
        return f"--gpus {ids}" if gpus == "all" else f"--gpus device={ids}"
    if mode == "cdi":
        return f"--device nvidia.com/gpu={ids}"
    return "--runtime=nvidia"


class GpuPassthrough(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    mode: GpuMode
    at: datetime
    container: str


def load_passthrough(root: Path) -> GpuPassthrough | None:
    return read_model(root / FILE, GpuPassthrough, lambda _: None)


def save_passthrough(root: Path, mode: GpuMode, container: str) -> None:
    record = GpuPassthrough(mode=mode, at=datetime.now(UTC), container=container)
    write_atomic(root / FILE, record.model_dump_json(indent=1))


def try_order(recorded: GpuMode | None) -> tuple[GpuMode, ...]:
    """The recorded mode first, then the others in their usual order."""
    return tuple(dict.fromkeys([*([recorded] if recorded else []), *GPU_MODES]))
