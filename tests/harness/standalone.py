"""The e2e harness outside pytest, for the benchmarks and the README's demo.

    with harness_stack() as stack:   # tests.e2e.stack.Stack
        model = stack.registry.push_model("bench", "t", size_bytes=64 * MiB, seed="bench")
        stack.set_models(model.name)
        stack.apply()

Brings up what the e2e fixtures do — the Docker engine (started only if none answers), the
offline images, a user-defined network, the registry container on 127.0.0.1, a temporary
desired-state dir and state dir — and removes all of it at exit: the Ollama container and
its volume, the registry, the network, the temporary dirs, and dockerd if this process
started it (unless RECONCILER_KEEP_DOCKERD=1). Images are a cache and stay.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
from docker.models.networks import Network

from tests.e2e.stack import Stack
from tests.harness.dockerd import ensure_dockerd, stop_dockerd
from tests.harness.images import TEST_LABEL, ensure_base_image, ensure_fake_ollama_image
from tests.harness.registry import Registry

MiB = 1024 * 1024


@contextlib.contextmanager
def harness_stack() -> Iterator[Stack]:
    started = ensure_dockerd()
    client = docker.from_env(timeout=120)
    try:
        ensure_base_image(client)
        image = ensure_fake_ollama_image(client)
        network = client.networks.create(
            f"rcl-run-{uuid.uuid4().hex[:8]}", driver="bridge", labels=dict(TEST_LABEL)
        )
        try:
            registry = Registry(client, network)
            try:
                with tempfile.TemporaryDirectory(prefix="rcl-run-") as tmp:
                    stack = Stack(Path(tmp), client, registry, network, image)
                    try:
                        yield stack
                    finally:
                        stack.cleanup()
            finally:
                registry.stop()
        finally:
            _remove_network(network)
    finally:
        client.close()
        if started and os.environ.get("RECONCILER_KEEP_DOCKERD") != "1":
            stop_dockerd()


def _remove_network(network: Network) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        network.reload()
        for container in network.containers:
            with contextlib.suppress(docker.errors.APIError):
                network.disconnect(container, force=True)
        network.remove()
