"""Shared set-up for the real-Kamal tests: a desired state pointing Kamal at this machine."""

from __future__ import annotations

import contextlib
import uuid

import docker
import docker.errors

from reconciler.desired.schema import (
    Budgets,
    DesiredState,
    DiskBudget,
    Exposure,
    KamalRegistry,
    KamalSpec,
    OllamaContainer,
    OllamaSpec,
    OpenWebUISpec,
    Publish,
    ServerSpec,
)
from reconciler.labels import KAMAL_NETWORK
from tests.harness.kamal_fixtures import Sshd
from tests.harness.registry import Registry, free_port


def make_desired(
    *,
    sshd: Sshd,
    registry: Registry,
    standin: str,
    ollama_image: str,
    mode: str = "published",
    suffix: str | None = None,
) -> DesiredState:
    sfx = suffix or uuid.uuid4().hex[:6]
    return DesiredState(
        server=ServerSpec(budgets=Budgets(disk=DiskBudget(models=2**30, min_free=0))),
        ollama=OllamaSpec(
            container=OllamaContainer(
                name=f"rcl-test-kollama-{sfx}",
                image=ollama_image,
                gpus="none",
                volume=f"rcl-test-kollama-{sfx}",
                network=f"rcl-test-kllm-{sfx}",
                publish=Publish(port=free_port(), addresses=["127.0.0.1"]),
            )
        ),
        openwebui=OpenWebUISpec(
            image=standin,
            exposure=Exposure(mode=mode, port=free_port(), addresses=["127.0.0.1"]),  # type: ignore[arg-type]
            kamal=KamalSpec(
                service=f"rcl-owui-{sfx}",
                servers=["127.0.0.1"],
                ssh_port=sshd.port,
                ssh_keys=[str(sshd.key)],
                registry=KamalRegistry(server=f"127.0.0.1:{registry.port}"),
                image=f"rcl-owui-{sfx}",
                data_volume=f"rcl-test-owui-{sfx}",
            ),
        ),
    )


def cleanup(client: docker.DockerClient, desired: DesiredState) -> None:
    """Remove what the deploys created for this desired state (and only that)."""
    assert desired.openwebui is not None
    k = desired.openwebui.kamal
    c = desired.ollama.container
    for container in client.containers.list(all=True, filters={"label": f"service={k.service}"}):
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
    with contextlib.suppress(docker.errors.NotFound):
        client.containers.get(c.name).remove(force=True)
    for image in client.images.list(filters={"label": f"service={k.service}"}):
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(str(image.id), force=True)
    for volume in (k.data_volume, c.volume):
        with contextlib.suppress(docker.errors.APIError):
            client.volumes.get(volume).remove(force=True)
    for name in (c.network, KAMAL_NETWORK):
        for net in client.networks.list(names=[name]):
            net.reload()
            if net.name == name and not net.containers:
                with contextlib.suppress(docker.errors.APIError):
                    net.remove()
