"""The only code that changes the Ollama container: create, recreate or start it.

Equivalent of Ollama's documented `docker run -d --gpus=all -v ollama:/root/.ollama
-p 11434:11434 --name ollama ollama/ollama` (docs/docker.mdx), with ports bound only to the
listed addresses, our labels, a restart policy and a network alias OpenWebUI uses. The
models volume is never removed. Readiness is `GET /api/version` (the image has no
HEALTHCHECK; reference §7).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
import docker.types
import httpx

from reconciler.errors import (
    Conflict,
    ContainerFailed,
    ContainerNotReady,
    EngineBusy,
    ImageNotInRegistry,
    RegistryUnreachable,
)
from reconciler.labels import MANAGED, SPEC_HASH
from reconciler.observe.docker import observe_container
from reconciler.observed import ContainerObs
from reconciler.plan.actions import ContainerSpec, EnsureContainer
from reconciler.plan.container import ready_url

MODELS_MOUNT = "/root/.ollama"
API_PORT = "11434/tcp"
STOP_TIMEOUT_S = 10
POLL_S = 0.2
LOG_LINES = 20
# The engine's answer to a pull of an image its registry does not have or will not give us
# (404 "manifest unknown" / "pull access denied", 401/403): the same pull fails again.
_NOT_IN_REGISTRY = (401, 403, 404)

Event = Callable[[str, dict[str, Any]], None]


def _device_requests(gpus: str | tuple[str, ...]) -> list[docker.types.DeviceRequest]:
    """`--gpus all` ⇔ Count -1 with capability gpu; a list ⇔ those DeviceIDs; none ⇔ nothing."""
    if gpus == "none":
        return []
    if gpus == "all":
        return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return [docker.types.DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])]


def create_kwargs(spec: ContainerSpec, spec_hash: str) -> dict[str, Any]:
    """Keyword arguments for `client.containers.create` (pure)."""
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "name": spec.name,
        "environment": dict(spec.env),
        "labels": {SPEC_HASH: spec_hash, MANAGED: "1"},
        "volumes": {spec.volume: {"bind": MODELS_MOUNT, "mode": "rw"}},
        "ports": {API_PORT: [(address, spec.port) for address in spec.bind_addresses]},
        "network": spec.network,
        "networking_config": {spec.network: {"Aliases": [spec.network_alias]}},
        "detach": True,
    }
    requests = _device_requests(spec.gpus)
    if requests:
        kwargs["device_requests"] = requests
    if spec.restart != "no":
        kwargs["restart_policy"] = {"Name": spec.restart}
    return kwargs


def _emit(on_event: Event | None, event: str, **data: Any) -> None:
    if on_event is not None:
        on_event(event, data)


def _ensure_network(client: docker.DockerClient, name: str, on_event: Event | None) -> None:
    if client.networks.list(names=[name]):
        return
    client.networks.create(name, driver="bridge", labels={MANAGED: "1"}, check_duplicate=True)
    _emit(on_event, "network_created", network=name)


def _ensure_volume(client: docker.DockerClient, name: str, on_event: Event | None) -> None:
    try:
        client.volumes.get(name)
    except docker.errors.NotFound:
        client.volumes.create(name=name, labels={MANAGED: "1"})
        _emit(on_event, "volume_created", volume=name)


def _ensure_image(client: docker.DockerClient, image: str, on_event: Event | None) -> None:
    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(image)
    except docker.errors.APIError as exc:
        if exc.status_code in _NOT_IN_REGISTRY:
            raise ImageNotInRegistry(image, _short(exc)) from exc
        raise RegistryUnreachable(image, _short(exc)) from exc
    except docker.errors.DockerException as exc:
        raise RegistryUnreachable(image, _short(exc)) from exc
    _emit(on_event, "image_pulled", image=image)


def _short(exc: BaseException) -> str:
    """The engine's own explanation, first line only."""
    text = str(getattr(exc, "explanation", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _remove_existing(client: docker.DockerClient, name: str, on_event: Event | None) -> None:
    try:
        old = client.containers.get(name)
    except docker.errors.NotFound:
        return
    try:
        old.stop(timeout=STOP_TIMEOUT_S)
        old.remove(v=False)  # the named models volume is never removed
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        raise EngineBusy(f"could not remove the old container {name}: {_short(exc)}") from exc
    _emit(on_event, "container_removed", container=name, id=old.id)


def _create_and_start(client: docker.DockerClient, action: EnsureContainer, on_event: Event | None) -> None:
    spec = action.spec
    _ensure_image(client, spec.image, on_event)
    _remove_existing(client, spec.name, on_event)
    try:
        container = client.containers.create(**create_kwargs(spec, action.spec_hash))
        _emit(on_event, "container_created", container=spec.name, id=container.id)
        container.start()
    except docker.errors.APIError as exc:
        hint = (
            " (GPU passthrough needs the NVIDIA Container Toolkit: `nvidia-ctk runtime configure "
            "--runtime=docker`, or set container.gpus: none)"
            if spec.gpus != "none" and "gpu" in str(exc).lower()
            else ""
        )
        raise ContainerFailed(f"could not start container {spec.name}: {_short(exc)}{hint}") from exc
    _emit(on_event, "container_started", container=spec.name)


def _start(client: docker.DockerClient, action: EnsureContainer, on_event: Event | None) -> None:
    try:
        container = client.containers.get(action.spec.name)
    except docker.errors.NotFound:
        _create_and_start(client, action, on_event)  # gone since it was observed
        return
    try:
        container.start()
    except docker.errors.APIError as exc:
        raise ContainerFailed(f"could not start container {action.spec.name}: {_short(exc)}") from exc
    _emit(on_event, "container_started", container=action.spec.name)


def _logs(client: docker.DockerClient, name: str) -> str:
    try:
        raw = client.containers.get(name).logs(tail=LOG_LINES)
    except docker.errors.DockerException as exc:
        return f"(logs unavailable: {_short(exc)})"
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def wait_ready(url: str, timeout: float) -> bool:
    """Poll `url` every POLL_S seconds until it answers 200, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=min(2.0, max(timeout, 0.1)), trust_env=False) as http:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if http.get(url).status_code == 200:
                    return True
            if time.monotonic() + POLL_S > deadline:
                return False
            time.sleep(POLL_S)


def ensure_container(
    client: docker.DockerClient,
    action: EnsureContainer,
    *,
    ready_timeout: float = 60.0,
    on_event: Event | None = None,
) -> ContainerObs:
    """Carry out `action` and return the container as observed once its API answers.

    Raises ImageNotInRegistry / ContainerFailed (permanent), RegistryUnreachable, EngineBusy or
    ContainerNotReady (with its last log lines; temporary).
    """
    spec = action.spec
    _ensure_network(client, spec.network, on_event)
    _ensure_volume(client, spec.volume, on_event)
    if action.op == "start":
        _start(client, action, on_event)
    else:
        _create_and_start(client, action, on_event)
    url = ready_url(spec)
    started = time.monotonic()
    if not wait_ready(url, ready_timeout):
        raise ContainerNotReady(spec.name, url, ready_timeout, _logs(client, spec.name))
    _emit(on_event, "container_ready", container=spec.name, seconds=round(time.monotonic() - started, 3))
    seen = observe_container(client, spec.name)
    if seen is None:
        raise Conflict(f"container {spec.name} disappeared right after it answered")
    return seen
