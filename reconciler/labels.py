"""Docker labels the reconciler puts on what it creates, in one place."""

from __future__ import annotations

SPEC_HASH = "reconciler.spec-hash"  # hash of the ContainerSpec the container was created from
MANAGED = "reconciler.managed"  # "1" on containers, volumes and networks the reconciler created
GPU_PASSTHROUGH = (
    "reconciler.gpu-passthrough"  # how the GPU reached the container: device-request, cdi, runtime
)
