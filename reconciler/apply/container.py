"""The only code that changes the Ollama container: create, recreate or start it.

Equivalent of Ollama's documented `docker run -d --gpus=all -v ollama:/root/.ollama
-p 11434:11434 --name ollama ollama/ollama` (docs/docker.mdx), with ports bound only to the
listed addresses, our labels, a restart policy and a network alias OpenWebUI uses. The
models volume is never removed. When `--gpus` does not work on this server, CDI and then the
`nvidia` runtime are tried (see reconciler.state.gpu); the one that worked is recorded.
Readiness is `GET /api/version` (the image has no HEALTHCHECK; reference §7).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import docker.types
import httpx

from reconciler.apply.context import ExecContext
from reconciler.apply.updates import image_failed
from reconciler.apply.world import World
from reconciler.desired.images import parse_image
from reconciler.errors import (
    Conflict,
    ContainerFailed,
    ContainerNotReady,
    EngineBusy,
    GpuPassthroughFailed,
    ImageNotInRegistry,
    RegistryUnreachable,
)
from reconciler.labels import GPU_PASSTHROUGH, MANAGED, SPEC, SPEC_HASH
from reconciler.observe.docker import observe_container
from reconciler.observed import ContainerObs
from reconciler.plan.actions import ContainerSpec, EnsureContainer
from reconciler.plan.container import ready_url
from reconciler.plan.container_diff import label_form
from reconciler.report.events import EventSink, notify
from reconciler.state.gpu import GPU_MODES, GpuMode, flag, load_passthrough, save_passthrough, try_order

MODELS_MOUNT = "/root/.ollama"
API_PORT = "11434/tcp"
STOP_TIMEOUT_S = 10
POLL_S = 0.2
LOG_LINES = 20
# The engine's answer to a pull of an image its registry does not have or will not give us
# (404 "manifest unknown" / "pull access denied", 401/403): the same pull fails again.
_NOT_IN_REGISTRY = (401, 403, 404)

Event = EventSink


def gpu_kwargs(gpus: str | tuple[str, ...], mode: GpuMode) -> dict[str, Any]:
    """Keyword arguments that hand the GPUs to the container in one of Docker's three ways.

    `--gpus all` ⇔ a device request with Count -1 and capability gpu (a list ⇔ those
    DeviceIDs); CDI ⇔ a device request with Driver "cdi" for `nvidia.com/gpu=<id>`; the runtime
    ⇔ Runtime "nvidia" with NVIDIA_VISIBLE_DEVICES (nvidia-container-runtime's variables)."""
    ids = ["all"] if gpus == "all" else list(gpus)
    if mode == "device-request":
        if gpus == "all":
            return {"device_requests": [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]}
        return {"device_requests": [docker.types.DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]}
    if mode == "cdi":
        names = [f"nvidia.com/gpu={i}" for i in ids]
        return {"device_requests": [docker.types.DeviceRequest(driver="cdi", device_ids=names)]}
    return {
        "runtime": "nvidia",
        "environment": {
            "NVIDIA_VISIBLE_DEVICES": ",".join(ids),
            "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
        },
    }


def create_kwargs(
    spec: ContainerSpec, spec_hash: str, gpu_mode: GpuMode = "device-request"
) -> dict[str, Any]:
    """Keyword arguments for `client.containers.create` (pure)."""
    labels = {SPEC_HASH: spec_hash, SPEC: label_form(spec).model_dump_json(), MANAGED: "1"}
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "name": spec.name,
        "environment": dict(spec.env),
        "labels": labels,
        "volumes": {spec.volume: {"bind": MODELS_MOUNT, "mode": "rw"}},
        "ports": {API_PORT: [(address, spec.port) for address in spec.bind_addresses]},
        "network": spec.network,
        "networking_config": {spec.network: {"Aliases": [spec.network_alias]}},
        "detach": True,
    }
    if spec.gpus != "none":
        gpu = gpu_kwargs(spec.gpus, gpu_mode)
        kwargs["environment"] = {**gpu.pop("environment", {}), **kwargs["environment"]}
        kwargs.update(gpu)
        labels[GPU_PASSTHROUGH] = gpu_mode
    if spec.restart != "no":
        kwargs["restart_policy"] = {"Name": spec.restart}
    return kwargs


@dataclass(frozen=True)
class PassthroughMemory:
    """Where the executor keeps the GPU passthrough mode that worked (the state directory)."""

    load: Callable[[], GpuMode | None]
    save: Callable[[GpuMode], None]


def _ensure_network(client: docker.DockerClient, name: str, on_event: Event | None) -> None:
    if client.networks.list(names=[name]):
        return
    client.networks.create(name, driver="bridge", labels={MANAGED: "1"}, check_duplicate=True)
    notify(on_event, "container.network_created", network=name)


def _ensure_volume(client: docker.DockerClient, name: str, on_event: Event | None) -> None:
    try:
        client.volumes.get(name)
    except docker.errors.NotFound:
        client.volumes.create(name=name, labels={MANAGED: "1"})
        notify(on_event, "container.volume_created", volume=name)


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
    notify(on_event, "container.image_pulled", image=image)


def _short(exc: BaseException) -> str:
    """The engine's own explanation, first line only."""
    text = str(getattr(exc, "explanation", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _remove_existing(client: docker.DockerClient, name: str, on_event: Event | None) -> GpuMode | None:
    """Remove the old container (never its volume); return the GPU mode it was created with."""
    try:
        old = client.containers.get(name)
    except docker.errors.NotFound:
        return None
    label = (old.labels or {}).get(GPU_PASSTHROUGH)
    mode: GpuMode | None = label if label in GPU_MODES else None
    try:
        old.stop(timeout=STOP_TIMEOUT_S)
        old.remove(v=False)  # the named models volume is never removed
    except docker.errors.NotFound:
        return mode
    except docker.errors.APIError as exc:
        raise EngineBusy(f"could not remove the old container {name}: {_short(exc)}") from exc
    notify(on_event, "container.container_removed", container=name, id=old.id)
    return mode


def _discard(client: docker.DockerClient, name: str) -> None:
    """Remove a container that was created but would not start (a failed GPU attempt)."""
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        client.containers.get(name).remove(v=False, force=True)


def _create_and_start(
    client: docker.DockerClient,
    action: EnsureContainer,
    on_event: Event | None,
    memory: PassthroughMemory | None = None,
) -> None:
    spec = action.spec
    _ensure_image(client, spec.image, on_event)
    previous = _remove_existing(client, spec.name, on_event)
    if spec.gpus == "none":
        _create_start_once(client, create_kwargs(spec, action.spec_hash), on_event)
        notify(on_event, "container.container_started", container=spec.name)
        return
    recorded = (memory.load() if memory else None) or previous
    failures: list[tuple[GpuMode, str]] = []
    for mode in try_order(recorded):
        try:
            _create_start_once(client, create_kwargs(spec, action.spec_hash, mode), on_event)
        except ContainerFailed as exc:
            failures.append((mode, exc.engine_error))
            _discard(client, spec.name)
            continue
        if memory is not None and mode != recorded:
            memory.save(mode)
        tried = [flag(m, spec.gpus) for m, _ in failures]
        used = flag(mode, spec.gpus)
        notify(on_event, "container.gpu_passthrough", container=spec.name, mode=mode, flag=used, failed=tried)
        notify(on_event, "container.container_started", container=spec.name)
        return
    if len({error for _, error in failures}) == 1:  # the same refusal whatever the GPU flag
        raise ContainerFailed(f"could not start container {spec.name}: {failures[0][1]}")
    raise GpuPassthroughFailed(spec.name, [(flag(m, spec.gpus), error) for m, error in failures])


def _create_start_once(client: docker.DockerClient, kwargs: dict[str, Any], on_event: Event | None) -> None:
    name = kwargs["name"]
    try:
        container = client.containers.create(**kwargs)
        notify(on_event, "container.container_created", container=name, id=container.id)
        container.start()
    except docker.errors.APIError as exc:
        raise ContainerFailed(f"could not start container {name}: {_short(exc)}", _short(exc)) from exc


def _start(
    client: docker.DockerClient,
    action: EnsureContainer,
    on_event: Event | None,
    memory: PassthroughMemory | None,
) -> None:
    try:
        container = client.containers.get(action.spec.name)
    except docker.errors.NotFound:
        _create_and_start(client, action, on_event, memory)  # gone since it was observed
        return
    try:
        container.start()
    except docker.errors.APIError as exc:
        raise ContainerFailed(f"could not start container {action.spec.name}: {_short(exc)}") from exc
    notify(on_event, "container.container_started", container=action.spec.name)


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
    memory: PassthroughMemory | None = None,
) -> ContainerObs:
    """Carry out `action` and return the container as observed once its API answers.

    With GPUs, the three passthrough modes are tried in turn (the one `memory` recorded
    first) and the one that started is recorded. Raises ImageNotInRegistry, ContainerFailed or
    GpuPassthroughFailed (no mode worked; permanent), RegistryUnreachable, EngineBusy or
    ContainerNotReady (with its last log lines; temporary).
    """
    spec = action.spec
    _ensure_network(client, spec.network, on_event)
    _ensure_volume(client, spec.volume, on_event)
    if action.op == "start":
        _start(client, action, on_event, memory)
    else:
        _create_and_start(client, action, on_event, memory)
    url = ready_url(spec)
    started = time.monotonic()
    if not wait_ready(url, ready_timeout):
        raise ContainerNotReady(spec.name, url, ready_timeout, _logs(client, spec.name))
    notify(
        on_event,
        "container.container_ready",
        container=spec.name,
        seconds=round(time.monotonic() - started, 3),
    )
    seen = observe_container(client, spec.name)
    if seen is None:
        raise Conflict(f"container {spec.name} disappeared right after it answered")
    return seen


def run_container(action: EnsureContainer, ctx: ExecContext) -> None:
    root, name = ctx.state.root, action.spec.name
    memory = PassthroughMemory(
        load=lambda: getattr(load_passthrough(root), "mode", None),
        save=lambda mode: save_passthrough(root, mode, name),
    )
    try:
        seen = ensure_container(
            ctx.docker,
            action,
            ready_timeout=ctx.ready_timeout,
            on_event=lambda event, data: ctx.events.emit(event, **data),
            memory=memory,
        )
    except (ContainerFailed, ContainerNotReady, ImageNotInRegistry) as exc:
        if action.update_of is not None:  # a release `auto` moved to: held back, never looped
            tag = parse_image(action.spec.image).tag or ""
            ctx.remember(lambda m: image_failed(m, action.update_of or "", tag))
            ctx.events.emit("update.image_failed", image=action.update_of, tag=tag, error=str(exc))
        raise
    ctx.container_id = seen.id


def container_effect(action: EnsureContainer, world: World) -> None:
    world.container = ContainerObs(
        name=action.spec.name,
        running=True,
        status="running",
        image=action.spec.image,
        spec_hash=action.spec_hash,
        networks=(action.spec.network,),
    )
    world.reachable = True
    if action.op != "start":
        world.loaded.clear()
