"""The Ollama container as the Docker engine reports it (`docker inspect`).

Read step: the docker SDK's `containers.get` / `volumes.get` (Engine API
`GET /containers/{id}/json`, `GET /volumes/{name}`). Parse step: `parse_container` reads
`State.Running`, `State.Status`, `State.Health.Status`, `Config.Image`, our label and the
networks it is attached to (`NetworkSettings.Networks`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import docker
import docker.errors

from reconciler.errors import ObservationFailed
from reconciler.labels import SPEC_HASH
from reconciler.observe._json import as_mapping
from reconciler.observed import ContainerObs


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def parse_container(attrs: Mapping[str, Any]) -> ContainerObs:
    """`docker inspect` attributes → ContainerObs (missing fields read as empty)."""
    state = as_mapping(attrs.get("State"))
    config = as_mapping(attrs.get("Config"))
    labels = as_mapping(config.get("Labels"))
    health = as_mapping(state.get("Health")).get("Status")
    spec_hash = labels.get(SPEC_HASH)
    networks = as_mapping(as_mapping(attrs.get("NetworkSettings")).get("Networks"))
    return ContainerObs(
        name=_str(attrs.get("Name")).lstrip("/"),
        id=_str(attrs.get("Id")),
        running=state.get("Running") is True,
        status=_str(state.get("Status")),
        health=health if isinstance(health, str) and health else None,
        image=_str(config.get("Image")),
        spec_hash=spec_hash if isinstance(spec_hash, str) and spec_hash else None,
        networks=tuple(sorted(networks)),
    )


def observe_container(client: docker.DockerClient, name: str) -> ContainerObs | None:
    """The container called `name`, or None when there is none."""
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        return None
    except docker.errors.DockerException as exc:
        raise ObservationFailed(f"cannot inspect container {name}: {exc}") from exc
    return parse_container(container.attrs)


def volume_mountpoint(client: docker.DockerClient, volume: str) -> str | None:
    """Where the named volume lives on the host (its `Mountpoint`), or None when it is missing."""
    try:
        attrs = client.volumes.get(volume).attrs
    except docker.errors.NotFound:
        return None
    except docker.errors.DockerException as exc:
        raise ObservationFailed(f"cannot inspect volume {volume}: {exc}") from exc
    mountpoint = attrs.get("Mountpoint")
    return mountpoint if isinstance(mountpoint, str) and mountpoint else None
