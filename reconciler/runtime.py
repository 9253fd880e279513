"""How the reconciler reaches the server: clients, timeouts, the state directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import docker

from reconciler.apply.container import ready_url
from reconciler.desired.schema import DesiredState
from reconciler.plan.container import container_spec
from reconciler.state.store import StateStore


@dataclass
class Runtime:
    docker: docker.DockerClient
    state: StateStore
    ollama_url: str | None = None  # default: the container's first published address
    api_timeout: float = 10.0
    pull_timeout: float = 120.0  # per read while streaming a pull
    registry_timeout: float = 20.0
    ready_timeout: float = 60.0

    def ollama_base(self, desired: DesiredState) -> str:
        if self.ollama_url:
            return self.ollama_url.rstrip("/")
        return ready_url(container_spec(desired)).removesuffix("/api/version")


def default_state_dir() -> Path:
    import os

    return Path(os.environ.get("RECONCILER_STATE_DIR", "/var/lib/reconciler"))
