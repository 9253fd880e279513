"""Observers and the container executor against the real Docker engine and a real registry.

Uses the harness fixtures (tests/harness/plugin.py): a distribution 2.8 registry holding
Ollama-style models, and the fake-ollama image. No GPU here, so containers use `gpus: none`.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Literal

import docker
import docker.errors
import httpx
import pytest

from reconciler.apply.container import Event, PassthroughMemory, ensure_container
from reconciler.desired.refs import parse_ref
from reconciler.desired.schema import Registry as RegistrySpec
from reconciler.errors import ContainerNotReady, GpuPassthroughFailed, ImageUnavailable
from reconciler.labels import GPU_PASSTHROUGH, MANAGED, SPEC_HASH
from reconciler.observe.docker import observe_container, volume_mountpoint
from reconciler.observe.registry import MODEL_LAYER, lookup, lookup_all
from reconciler.observed import Architecture, ContainerObs
from reconciler.plan.actions import ContainerSpec, EnsureContainer
from tests.harness.registry import Registry, free_port

pytestmark = pytest.mark.e2e

SpecFactory = Callable[..., ContainerSpec]


def registry_spec(registry: Registry) -> list[RegistrySpec]:
    # The model names carry the in-network alias; the reconciler reaches it on loopback.
    return [RegistrySpec(host=registry.host, insecure=True, url=registry.url)]


# ─────────────────────────── registry look-up ───────────────────────────


def test_lookup_reads_blobs_and_architecture_with_a_range_request(registry: Registry) -> None:
    tag = uuid.uuid4().hex[:8]
    pushed = registry.push_model(
        "lookup",
        tag,
        arch="qwen2",
        block_count=28,
        head_count=28,
        head_count_kv=4,
        embedding_length=3584,
        context_length=32768,
        size_bytes=24 * 2**20,  # bigger than the Range asked for, so a full GET would show
        system="be brief",
    )
    with httpx.Client(timeout=10) as http:
        remote = lookup(parse_ref(pushed.name), registry_spec(registry), client=http, header_limit=2**20)
    assert remote.name == pushed.name.lower()
    expected = [(pushed.config.digest, pushed.config.size, pushed.config.media_type)]
    expected += [(x.digest, x.size, x.media_type) for x in pushed.layers]
    assert [(b.digest, b.size, b.media_type) for b in remote.blobs] == expected
    assert remote.size == pushed.total_size
    assert remote.architecture == Architecture(
        family="qwen2",
        block_count=28,
        head_count=28,
        head_count_kv=4,
        embedding_length=3584,
        context_length=32768,
        parameter_count=8_030_261_248,  # general.parameter_count, the test GGUF's default
    )
    # The access log line is written once the registry notices the client hung up.
    deadline = time.monotonic() + 10
    while not (gets := registry.blob_requests(pushed.model_layer.digest)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gets, "the model layer was never fetched"
    assert all(g["status"] == 206 for g in gets)
    assert all(g["bytes"] <= 2**20 for g in gets)
    assert pushed.model_layer.media_type == MODEL_LAYER


def test_lookup_all_reports_missing_and_unreachable(registry: Registry) -> None:
    tag = uuid.uuid4().hex[:8]
    pushed = registry.push_model("present", tag)
    dead = f"127.0.0.1:{free_port()}"
    refs = [
        parse_ref(pushed.name),
        parse_ref(registry.model_name("absent", tag)),
        parse_ref(f"{dead}/library/x:y"),
    ]
    regs = [*registry_spec(registry), RegistrySpec(host=dead, insecure=True)]
    start = time.monotonic()
    found, errors = lookup_all(refs, regs, timeout=10)
    assert time.monotonic() - start < 10
    assert [m.name for m in found] == [pushed.name.lower()]
    assert errors[registry.model_name("absent", tag).lower()].startswith("model not found in registry")
    assert errors[f"{dead}/library/x:y"].startswith(f"{dead} unreachable:")


# ─────────────────────────── the container ───────────────────────────


@pytest.fixture
def container_spec(docker_client: docker.DockerClient, fake_ollama_image: str) -> Iterator[SpecFactory]:
    """Specs with unique names; removes the containers, volumes and networks they name."""
    suffix = uuid.uuid4().hex[:8]
    names = {
        "name": f"rcl-test-ctr-{suffix}",
        "volume": f"rcl-test-vol-{suffix}",
        "network": f"rcl-test-net-{suffix}",
    }
    port = free_port()

    def make(**changes: object) -> ContainerSpec:
        spec = ContainerSpec(
            image=fake_ollama_image,
            env={"OLLAMA_HOST": "0.0.0.0:11434", "OLLAMA_NOPRUNE": "1"},
            gpus="none",
            port=port,
            bind_addresses=("127.0.0.1",),
            restart="no",
            **names,
        )
        return spec.model_copy(update=changes)

    try:
        yield make
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.containers.get(names["name"]).remove(force=True)
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.volumes.get(names["volume"]).remove(force=True)
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.networks.get(names["network"]).remove()


def ensure(
    client: docker.DockerClient,
    op: Literal["create", "recreate", "start"],
    spec: ContainerSpec,
    spec_hash: str,
    *,
    ready_timeout: float = 30.0,
    on_event: Event | None = None,
) -> ContainerObs:
    action = EnsureContainer(op=op, spec=spec, spec_hash=spec_hash, reason="e2e")
    return ensure_container(client, action, ready_timeout=ready_timeout, on_event=on_event)


def test_create_then_observe(docker_client: docker.DockerClient, container_spec: SpecFactory) -> None:
    spec = container_spec(bind_addresses=("127.0.0.1", "127.0.0.2"))
    events: list[str] = []
    seen = ensure(docker_client, "create", spec, "hash-one", on_event=lambda e, _d: events.append(e))
    assert observe_container(docker_client, spec.name) == seen
    assert seen.running
    assert seen.spec_hash == "hash-one"
    assert seen.image == spec.image
    assert events == [
        "container.network_created",
        "container.volume_created",
        "container.container_created",
        "container.container_started",
        "container.container_ready",
    ]
    attrs = docker_client.containers.get(spec.name).attrs
    assert attrs["Config"]["Labels"][MANAGED] == "1"
    bindings = attrs["HostConfig"]["PortBindings"]["11434/tcp"]
    assert bindings == [{"HostIp": a, "HostPort": str(spec.port)} for a in ("127.0.0.1", "127.0.0.2")]
    assert list(attrs["HostConfig"]["PortBindings"]) == ["11434/tcp"]
    assert "ollama" in attrs["NetworkSettings"]["Networks"][spec.network]["Aliases"]
    assert docker_client.volumes.get(spec.volume).attrs["Labels"][MANAGED] == "1"
    for address in spec.bind_addresses:
        assert httpx.get(f"http://{address}:{spec.port}/api/version").status_code == 200
    assert observe_container(docker_client, f"{spec.name}-absent") is None


def test_recreate_keeps_the_volume_and_its_files(
    docker_client: docker.DockerClient, container_spec: SpecFactory
) -> None:
    spec = container_spec()
    first = ensure(docker_client, "create", spec, "hash-one")
    mountpoint = volume_mountpoint(docker_client, spec.volume)
    assert mountpoint is not None
    docker_client.containers.get(spec.name).exec_run(
        ["python3", "-c", "open('/root/.ollama/keep','w').write('x')"]
    )

    changed = container_spec(env={**spec.env, "OLLAMA_KEEP_ALIVE": "24h"})
    events: list[str] = []
    second = ensure(docker_client, "recreate", changed, "hash-two", on_event=lambda e, _d: events.append(e))
    assert second.id != first.id
    assert second.spec_hash == "hash-two"
    assert "container.container_removed" in events
    assert "container.volume_created" not in events
    container = docker_client.containers.get(spec.name)
    assert "OLLAMA_KEEP_ALIVE=24h" in container.attrs["Config"]["Env"]
    assert container.exec_run(["cat", "/root/.ollama/keep"]).output == b"x"
    assert volume_mountpoint(docker_client, spec.volume) == mountpoint
    assert volume_mountpoint(docker_client, f"{spec.volume}-absent") is None


def test_start_a_stopped_container(docker_client: docker.DockerClient, container_spec: SpecFactory) -> None:
    spec = container_spec()
    first = ensure(docker_client, "create", spec, "hash-one")
    docker_client.containers.get(spec.name).stop(timeout=5)
    stopped = observe_container(docker_client, spec.name)
    assert stopped is not None
    assert not stopped.running
    assert stopped.status == "exited"
    again = ensure(docker_client, "start", spec, "hash-one")
    assert again.id == first.id
    assert again.running


def test_not_ready_in_time_shows_the_logs(
    docker_client: docker.DockerClient, container_spec: SpecFactory
) -> None:
    # The server listens on another port inside, so the published one never answers.
    spec = container_spec(env={"OLLAMA_HOST": "0.0.0.0:9999"})
    start = time.monotonic()
    with pytest.raises(ContainerNotReady) as err:
        ensure(docker_client, "create", spec, "hash-one", ready_timeout=1.5)
    assert 1.5 <= time.monotonic() - start < 15
    message = str(err.value)
    assert f"docker logs {spec.name}" in message
    assert "last log lines:" in message
    assert "9999" in err.value.logs
    assert docker_client.containers.get(spec.name).labels[SPEC_HASH] == "hash-one"


def test_missing_image_is_named(docker_client: docker.DockerClient, container_spec: SpecFactory) -> None:
    spec = container_spec(image=f"127.0.0.1:{free_port()}/nowhere/ollama:{uuid.uuid4().hex[:8]}")
    with pytest.raises(ImageUnavailable) as err:
        ensure(docker_client, "create", spec, "hash-one", ready_timeout=1)
    assert spec.image in str(err.value)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(spec.name)


def test_gpu_passthrough_tries_all_three_ways_then_says_how_to_fix(
    docker_client: docker.DockerClient, container_spec: SpecFactory
) -> None:
    """No NVIDIA runtime on this engine: `--gpus all`, CDI and `--runtime=nvidia` are each
    refused, the error lists the three with the engine's words and the fix, nothing is left
    running and nothing is recorded as working."""
    spec = container_spec(gpus="all")
    saved: list[str] = []
    memory = PassthroughMemory(load=lambda: None, save=saved.append)
    action = EnsureContainer(op="create", spec=spec, spec_hash="gpu", reason="e2e")
    with pytest.raises(GpuPassthroughFailed) as failed:
        ensure_container(docker_client, action, ready_timeout=10, memory=memory)
    message = str(failed.value)
    assert [how for how, _ in failed.value.attempts] == [
        "--gpus all",
        "--device nvidia.com/gpu=all",
        "--runtime=nvidia",
    ]
    assert 'could not select device driver ""' in message and "nvidia" in message
    assert "nvidia-ctk runtime configure --runtime=docker" in message
    assert "container.gpus: none" in message
    assert saved == []
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(spec.name)


def test_gpus_none_runs_on_the_cpu_without_any_gpu_flag(
    docker_client: docker.DockerClient, container_spec: SpecFactory
) -> None:
    spec = container_spec(gpus="none")
    ensure(docker_client, "create", spec, "cpu")
    host = docker_client.containers.get(spec.name).attrs["HostConfig"]
    assert not host.get("DeviceRequests") and host.get("Runtime") in (None, "", "runc")
    assert GPU_PASSTHROUGH not in docker_client.containers.get(spec.name).labels
