"""The Kamal executor with the REAL kamal 2.11, deploying to this machine over SSH.

One module-scoped deployment is walked through its life: `kamal setup`, an env change (new
version, data volume kept), a hand-typed `kamal deploy` that brings a stopped Ollama back
through the hooks, a broken image that fails while the old version keeps serving, and a
rollback. Ollama is the harness's fake (`gpus: none`). OpenWebUI is a small stand-in image
(seconds a deploy); the checks look into the running container (its environment, a file in the
data volume, Ollama's API from inside). The same life on the real OpenWebUI image (a settings
change, a rollback, a broken image, data kept) is `tests/e2e/test_fullstack.py`'s: here on the
real image it took 553 s of a 2-core machine, for nothing that test does not already check."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from reconciler.desired.schema import DesiredState
from reconciler.ensure_ollama import HookFailed, SshConfig, ensure_ollama_on_hosts
from reconciler.errors import Conflict, KamalFailed
from reconciler.kamal import deploy as kamal
from reconciler.kamal.cli import kamal_binary
from reconciler.kamal.render import Timing
from reconciler.labels import KAMAL_NETWORK
from reconciler.observe.kamal import app_containers, running_versions
from reconciler.observed import KamalObs
from reconciler.plan.kamal import deploy_hash
from tests.e2e.kamal_support import cleanup, make_desired
from tests.harness.kamal_fixtures import Sshd, ensure_standin_images
from tests.harness.registry import Registry

pytestmark = pytest.mark.e2e

TIMING = Timing(readiness_delay=1, deploy_timeout=12, drain_timeout=2, health_interval=1)
PROBE_OLLAMA = (
    "import json, os, urllib.request; print(json.load(urllib.request.urlopen("
    "os.environ['OLLAMA_BASE_URL'] + '/api/version', timeout=5))['version'])"
)


@dataclass(frozen=True)
class Images:
    good: str
    broken: str
    timing: Timing


@pytest.fixture(scope="module")
def images(docker_client: docker.DockerClient, base_image: str) -> Images:
    """The OpenWebUI stand-in image to deploy and its broken twin."""
    good, broken = ensure_standin_images(docker_client)
    return Images(good, broken, TIMING)


class Deployment:
    def __init__(
        self, client: docker.DockerClient, desired: DesiredState, workdir: Path, timing: Timing
    ) -> None:
        self.client = client
        self.desired = desired
        self.workdir = workdir
        self.timing = timing
        self.events: list[tuple[str, dict[str, Any]]] = []

    @property
    def url(self) -> str:
        assert self.desired.openwebui is not None
        return f"http://127.0.0.1:{self.desired.openwebui.exposure.port}"

    @property
    def service(self) -> str:
        assert self.desired.openwebui is not None
        return self.desired.openwebui.kamal.service

    def emit(self, event: str, data: dict[str, Any]) -> None:
        self.events.append((event, data))

    def deploy(self, desired: DesiredState, *, first: bool = False) -> str:
        version = deploy_hash(desired)
        assert version is not None
        kamal.deploy(desired, version, self.target(), first=first)
        self.desired = desired
        return version

    def target(self) -> kamal.Target:
        return kamal.Target(
            workdir=self.workdir,
            docker=self.client,
            emit=self.emit,
            timing=self.timing,
            lock_retries=1,
            lock_wait_s=1,
        )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def container(self) -> Any:
        (running,) = executor_containers(self.client, self.service)
        return running

    def env(self) -> dict[str, str]:
        items = self.container().attrs["Config"]["Env"]
        return {key: value for key, _, value in (item.partition("=") for item in items)}

    def exec(self, *command: str) -> str:
        code, out = self.container().exec_run(list(command))
        assert code == 0, out
        return bytes(out).decode()

    def write_data(self, name: str, text: str) -> None:
        self.exec("python3", "-c", f"open('/app/backend/data/{name}', 'w').write({text!r})")

    def read_data(self, name: str) -> str:
        return self.exec("cat", f"/app/backend/data/{name}")

    def reaches_ollama(self) -> bool:
        """From inside OpenWebUI's container, as OpenWebUI itself calls OLLAMA_BASE_URL."""
        return bool(self.exec("python3", "-c", PROBE_OLLAMA).strip())


def executor_containers(client: docker.DockerClient, service: str) -> list[Any]:
    found = client.containers.list(filters={"label": f"service={service}"})
    return [c for c in found if c.labels.get("role") == "web"]


def _with_webui(desired: DesiredState, **update: Any) -> DesiredState:
    assert desired.openwebui is not None
    return desired.model_copy(update={"openwebui": desired.openwebui.model_copy(update=update)})


@pytest.fixture(scope="module")
def deployment(
    docker_client: docker.DockerClient,
    sshd: Sshd,
    registry: Registry,
    images: Images,
    fake_ollama_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    desired = make_desired(sshd=sshd, registry=registry, standin=images.good, ollama_image=fake_ollama_image)
    dep = Deployment(docker_client, desired, tmp_path_factory.mktemp("kamal") / "project", images.timing)
    try:
        yield dep
    finally:
        cleanup(docker_client, dep.desired)


def _step_1_setup_serves_health_and_reaches_ollama(deployment: Deployment) -> None:
    version = deployment.deploy(deployment.desired, first=True)
    assert deployment.get("/health").json() == {"status": True}
    # OpenWebUI reaches the Ollama container the hooks created, by name, over Docker networks.
    assert deployment.reaches_ollama()
    assert running_versions(deployment.client, deployment.service) == (version,)
    outputs = [d["line"] for e, d in deployment.events if e == "kamal.output"]
    assert any("docker-setup" in line for line in outputs) and any("post-deploy" in line for line in outputs)
    ollama = deployment.client.containers.get(deployment.desired.ollama.container.name)
    assert KAMAL_NETWORK in ollama.attrs["NetworkSettings"]["Networks"]


def _step_2_env_change_deploys_new_version_and_keeps_data(deployment: Deployment) -> None:
    deployment.write_data("notes.txt", "kept across deploys")
    old = running_versions(deployment.client, deployment.service)
    changed = _with_webui(deployment.desired, task_model="phi3:mini")
    version = deployment.deploy(changed)
    assert version not in old
    assert running_versions(deployment.client, deployment.service) == (version,)
    assert deployment.env()["TASK_MODEL"] == "phi3:mini"
    assert deployment.read_data("notes.txt") == "kept across deploys"
    assert deployment.reaches_ollama()


def _step_3_hand_typed_deploy_brings_ollama_back(deployment: Deployment) -> None:
    name = deployment.desired.ollama.container.name
    deployment.client.containers.get(name).stop(timeout=2)
    version = deploy_hash(deployment.desired)
    # What an operator types in the project directory (no reconciler environment).
    done = subprocess.run(
        [kamal_binary(), "deploy", "--skip-push", f"--version={version}"],
        cwd=deployment.workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert deployment.client.containers.get(name).status == "running"
    assert "start container" in done.stdout
    assert deployment.get("/health").status_code == 200
    assert deployment.reaches_ollama()


def _step_4_broken_image_fails_and_old_version_keeps_serving(deployment: Deployment, images: Images) -> None:
    good = running_versions(deployment.client, deployment.service)
    broken = _with_webui(deployment.desired, image=images.broken)
    with pytest.raises(KamalFailed) as info:
        deployment.deploy(broken)
    text = str(info.value)
    assert "ERROR" in text and ("unhealthy" in text or "not ready" in text), text
    # Published mode stopped the old version to free its port; the executor started it again.
    assert any(e == "kamal.restored_previous" and d["healthy"] for e, d in deployment.events)
    assert running_versions(deployment.client, deployment.service) == good
    assert deployment.get("/health").json() == {"status": True}


def _step_5_rollback_to_previous_version(deployment: Deployment) -> None:
    current = running_versions(deployment.client, deployment.service)
    previous = _with_webui(deployment.desired, task_model=None)  # the state of test 2's first version
    version = deploy_hash(previous)
    assert version is not None and version not in current
    assert version in KamalObs(apps=app_containers(deployment.client, deployment.service)).retained
    kamal.rollback(previous, version, deployment.target())
    deployment.desired = previous
    assert running_versions(deployment.client, deployment.service) == (version,)
    assert "TASK_MODEL" not in deployment.env()
    with pytest.raises(Conflict, match="no container of OpenWebUI version never-deployed"):
        kamal.rollback(previous, "never-deployed", deployment.target())  # Kamal pruned it: deploy it
    assert any(e == "kamal.rollback_unavailable" for e, _ in deployment.events)


def _step_6_someone_elses_lock_is_waited_for_never_released(deployment: Deployment) -> None:
    def kamal(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([kamal_binary(), *args], cwd=deployment.workdir, capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip

    version = deploy_hash(deployment.desired)
    assert kamal("lock", "acquire", "-m", "by hand", f"--version={version}").returncode == 0
    try:
        changed = _with_webui(deployment.desired, task_model="phi3:mini")
        with pytest.raises(KamalFailed) as info:
            deployment.deploy(changed)
        assert "kamal lock release" in str(info.value)
        assert not any(e == "kamal.stale_lock_released" for e, _ in deployment.events)
        assert "Message: by hand" in kamal("lock", "status").stdout  # still held
    finally:
        kamal("lock", "release")


def test_kamal_lifecycle(deployment: Deployment, images: Images) -> None:
    """One deployment through its life, in order (pytest-randomly must not shuffle these)."""
    _step_1_setup_serves_health_and_reaches_ollama(deployment)
    _step_2_env_change_deploys_new_version_and_keeps_data(deployment)
    _step_3_hand_typed_deploy_brings_ollama_back(deployment)
    _step_4_broken_image_fails_and_old_version_keeps_serving(deployment, images)
    _step_5_rollback_to_previous_version(deployment)
    _step_6_someone_elses_lock_is_waited_for_never_released(deployment)


def test_ensure_ollama_over_ssh(
    docker_client: docker.DockerClient,
    sshd: Sshd,
    registry: Registry,
    openwebui_standin: tuple[str, str],
    fake_ollama_image: str,
) -> None:
    """The hook's remote path: the host is 127.0.0.1 but forced remote, so the command runs
    through ssh to the test sshd and back into this machine's Docker."""
    desired = make_desired(
        sshd=sshd, registry=registry, standin=openwebui_standin[0], ollama_image=fake_ollama_image
    )
    name = desired.ollama.container.name
    ssh = SshConfig(
        user=sshd.user,
        port=sshd.port,
        keys=(str(sshd.key),),
        options=sshd.ssh_options(),
        remote_command=(sys.executable, "-m", "reconciler.ensure_ollama"),
    )
    try:
        results = ensure_ollama_on_hosts(desired, ["127.0.0.1"], ssh, force_remote=True)
        assert [r.remote for r in results] == [True]
        assert any("create container" in line for line in results[0].did), results
        docker_client.containers.get(name).stop(timeout=2)
        again = ensure_ollama_on_hosts(desired, ["127.0.0.1"], ssh, force_remote=True)
        assert any("start container" in line for line in again[0].did), again
        assert docker_client.containers.get(name).status == "running"
        ssh_bad = SshConfig(**{**ssh.__dict__, "port": 1})
        with pytest.raises(HookFailed, match=r"127\.0\.0\.1: ssh|127\.0\.0\.1: remote"):
            ensure_ollama_on_hosts(desired, ["127.0.0.1"], ssh_bad, force_remote=True)
    finally:
        cleanup(docker_client, desired)
