"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.models.networks import Network

from tests.e2e.gitops import GitOps
from tests.e2e.stack import Stack
from tests.harness.registry import Registry


@pytest.fixture
def stack(tmp_path: Path, docker_client: docker.DockerClient, registry: Registry, test_network: Network,
          fake_ollama_image: str) -> Iterator[Stack]:  # fmt: skip
    s = Stack(tmp_path, docker_client, registry, test_network, fake_ollama_image)
    try:
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def gitops(stack: Stack, tmp_path: Path) -> Iterator[GitOps]:
    ops = GitOps(stack, tmp_path / "gitops")
    try:
        yield ops
    finally:
        ops.stop_serve()
