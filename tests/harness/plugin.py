"""pytest fixtures for the Docker-backed e2e harness (``pytest_plugins = ["tests.harness.plugin"]``).

Everything created carries the label ``reconciler.test=1`` and is removed at teardown; nothing
else on the engine is touched. Images are cached between sessions (see images.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
import httpx
import ollama
import pytest
from docker.models.containers import Container
from docker.models.networks import Network
from docker.models.volumes import Volume

from tests.harness.dockerd import ensure_dockerd, stop_dockerd
from tests.harness.images import TEST_LABEL, ensure_base_image, ensure_fake_ollama_image
from tests.harness.registry import Registry, RegistryLogin, free_port

FAKE_MODELS_DIR = "/root/.ollama/models"

# Small defaults so tiny test models (hundreds of KB to a few MB) behave like big ones on a GPU.
DEFAULT_FAKE_ENV: dict[str, str] = {
    "FAKE_OLLAMA_OVERHEAD": str(256 * 1024),
    "OLLAMA_CONTEXT_LENGTH": "256",
}


@dataclass
class FakeOllama:
    """A running fake-ollama container."""

    url: str
    container: Container
    volume: Volume
    client: ollama.Client
    port: int
    network: str
    env: dict[str, str] = field(default_factory=dict)
    http: httpx.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30)

    # -- test-only endpoints ---------------------------------------------------------------------
    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.http.get("/__fake/events").json()["events"]
        return [e for e in events if kind is None or e.get("type") == kind]

    def clear_events(self) -> None:
        self.http.delete("/__fake/events")

    def fault(self, **spec: Any) -> None:
        """e.g. ``fault(status=500, paths=["/api/tags"], count=3)`` or ``fault(hang_seconds=30)``."""
        self.http.post("/__fake/fault", json=spec).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/__fake/fault").raise_for_status()

    def set_pull_rate(self, bytes_per_s: int | None) -> None:
        self.http.post("/__fake/config", json={"pull_rate": bytes_per_s}).raise_for_status()

    def public_key(self) -> str:
        """The server's ``~/.ollama/id_ed25519.pub`` (what a registry login lets in)."""
        return self.exec("cat", "/root/.ollama/id_ed25519.pub").strip()

    # -- inspection ------------------------------------------------------------------------------
    def exec(self, *cmd: str) -> str:
        code, out = self.container.exec_run(list(cmd))
        text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
        if code != 0:
            raise RuntimeError(f"{cmd} exited {code}: {text}")
        return text

    def blob_files(self) -> dict[str, int]:
        """``{file name: size}`` of everything in ``blobs/`` (partials included)."""
        return blob_files(self.container)

    def manifest_files(self) -> list[str]:
        out = self.exec("find", f"{FAKE_MODELS_DIR}/manifests", "-type", "f")
        return sorted(line.removeprefix(f"{FAKE_MODELS_DIR}/manifests/") for line in out.split())

    def logs(self) -> str:
        return self.container.logs().decode(errors="replace")

    def restart(self) -> None:
        self.container.restart(timeout=5)
        wait_for_ollama(self.url, self.container)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client._client.close()
        self.http.close()


_BLOBS_SCRIPT = (
    "import os,json;d='" + FAKE_MODELS_DIR + "/blobs';"
    "print(json.dumps({n: os.path.getsize(os.path.join(d,n)) for n in os.listdir(d)} "
    "if os.path.isdir(d) else {}))"
)


def blob_files(container: Container) -> dict[str, int]:
    """``{file name: size}`` of the blobs (partials included) in a fake-ollama container."""
    code, out = container.exec_run(["python3", "-c", _BLOBS_SCRIPT])
    text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
    if code != 0:
        raise RuntimeError(f"listing blobs exited {code}: {text}")
    result: dict[str, int] = json.loads(text)
    return result


def wait_for_ollama(url: str, container: Container | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            resp = httpx.get(f"{url}/api/version", timeout=2)
            if resp.status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        if container is not None:
            container.reload()
            if container.status == "exited":
                break
        time.sleep(0.1)
    logs = container.logs(tail=40).decode(errors="replace") if container is not None else ""
    raise RuntimeError(f"fake ollama at {url} did not answer /api/version: {last}\n{logs}")


_ENGINE_OWNER = pytest.StashKey[bool]()


def _keep_dockerd() -> bool:
    return os.environ.get("RECONCILER_KEEP_DOCKERD") == "1"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under xdist the controller owns the engine: a worker that started it would stop it when its
    queue runs dry while the other worker is still mid-test (and restart it under the other's
    containers), so the workers only ever find it running."""
    config = session.config
    if config.pluginmanager.hasplugin("dsession"):  # the xdist controller, before it starts workers
        config.stash[_ENGINE_OWNER] = ensure_dockerd()


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_ENGINE_OWNER, False) and not _keep_dockerd():
        stop_dockerd()


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client for the host engine; starts ``dockerd`` when none answers and stops it at the end
    of the session only if this session started it (unless ``RECONCILER_KEEP_DOCKERD=1``)."""
    started = ensure_dockerd()
    client = docker.from_env()
    try:
        yield client
    finally:
        client.close()
        if started and not _keep_dockerd():
            stop_dockerd()


@pytest.fixture(scope="session")
def base_image(docker_client: docker.DockerClient) -> str:
    return ensure_base_image(docker_client)


@pytest.fixture(scope="session")
def fake_ollama_image(docker_client: docker.DockerClient, base_image: str) -> str:
    return ensure_fake_ollama_image(docker_client)


@pytest.fixture(scope="session")
def test_network(docker_client: docker.DockerClient) -> Iterator[Network]:
    network = docker_client.networks.create(
        f"rcl-test-{uuid.uuid4().hex[:8]}", driver="bridge", labels=dict(TEST_LABEL)
    )
    try:
        yield network
    finally:
        network.reload()
        for container in network.containers:
            with contextlib.suppress(docker.errors.APIError):
                network.disconnect(container, force=True)
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()


@pytest.fixture(scope="session")
def registry(
    docker_client: docker.DockerClient, test_network: Network, base_image: str
) -> Iterator[Registry]:
    reg = Registry(docker_client, test_network)
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def login_registry(
    docker_client: docker.DockerClient, test_network: Network, base_image: str
) -> Iterator[Registry]:
    """A registry that demands a token (alias ``registry-auth.test``): anyone may pull
    ``library/*``, the ``private`` namespace needs a login (see RegistryLogin)."""
    reg = Registry(docker_client, test_network, login=RegistryLogin())
    try:
        yield reg
    finally:
        reg.stop()


FakeOllamaFactory = Callable[..., FakeOllama]


@pytest.fixture
def fake_ollama(
    docker_client: docker.DockerClient, fake_ollama_image: str, test_network: Network
) -> Iterator[FakeOllamaFactory]:
    """Factory: ``fake_ollama(env={...}, volume=None, defaults=True) -> FakeOllama``.

    Starts the fake on the test network with a fresh named volume on /root/.ollama (or the given
    volume name), publishes 11434 on 127.0.0.1:<free port> and waits for /api/version. ``env``
    is merged over ``DEFAULT_FAKE_ENV`` (small overhead, num_ctx 256) unless ``defaults=False``.
    Containers and volumes it created are removed after the test.
    """
    created: list[FakeOllama] = []
    own_volumes: list[Volume] = []

    def start(
        env: dict[str, str] | None = None,
        *,
        volume: str | None = None,
        defaults: bool = True,
        name: str | None = None,
    ) -> FakeOllama:
        suffix = uuid.uuid4().hex[:8]
        if volume is None:
            vol = docker_client.volumes.create(f"rcl-test-ollama-{suffix}", labels=dict(TEST_LABEL))
            own_volumes.append(vol)
        else:
            vol = docker_client.volumes.get(volume)
        full_env = {**(DEFAULT_FAKE_ENV if defaults else {}), **(env or {})}
        port = free_port()
        container = docker_client.containers.run(
            fake_ollama_image,
            name=name or f"rcl-test-ollama-{suffix}",
            detach=True,
            labels=dict(TEST_LABEL),
            environment=full_env,
            ports={"11434/tcp": ("127.0.0.1", port)},
            volumes={vol.name: {"bind": "/root/.ollama", "mode": "rw"}},
            network=test_network.name,
        )
        url = f"http://127.0.0.1:{port}"
        fake = FakeOllama(
            url=url,
            container=container,
            volume=vol,
            client=ollama.Client(host=url, timeout=30),
            port=port,
            network=str(test_network.name),
            env=full_env,
        )
        created.append(fake)
        wait_for_ollama(url, container)
        return fake

    try:
        yield start
    finally:
        for fake in created:
            fake.close()
            with contextlib.suppress(docker.errors.NotFound):
                fake.container.remove(force=True)
        for vol in own_volumes:
            with contextlib.suppress(docker.errors.NotFound):
                vol.remove(force=True)
