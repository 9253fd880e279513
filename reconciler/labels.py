"""The marks the reconciler (and Kamal) put on what they create, in one place: read by the
observers, compared by the planner, written by the executors."""

from __future__ import annotations

# Docker labels of the Ollama container (and the volume and network made for it)
SPEC_HASH = "reconciler.spec-hash"  # hash of the ContainerSpec the container was created from
MANAGED = "reconciler.managed"  # "1" on containers, volumes and networks the reconciler created
GPU_PASSTHROUGH = (
    "reconciler.gpu-passthrough"  # how the GPU reached the container: device-request, cdi, runtime
)

# What Kamal 2.11 puts on OpenWebUI's containers, and the names the reconciler adds
KAMAL_SERVICE = "service"  # label: the Kamal service
KAMAL_ROLE = "role"  # label: the role; OpenWebUI's app containers are `web`
ROLE = "web"
VERSION_LABEL = "reconciler.kamal-version"  # on the wrapper image, so on every app container
KAMAL_NETWORK = "kamal"  # the network Kamal runs every app container on
OLLAMA_ALIAS = "ollama"  # Ollama's name on that network: OLLAMA_BASE_URL=http://ollama:11434

# OpenWebUI: what marks the rows and files the reconciler owns
MANAGED_TAG = "reconciler"  # meta.tags entry and meta key on the model rows the reconciler owns
PATH_KEY = "reconciler_path"  # in a file's meta.data: its path under knowledge/<name>/
