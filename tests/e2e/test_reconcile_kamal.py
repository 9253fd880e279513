"""OpenWebUI through the reconciler itself (not the executor alone): the first reconcile
runs `kamal setup`; an Ollama-only change runs no Kamal at all; an OpenWebUI change
deploys a new version; going back to the previous state uses `kamal rollback`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from reconciler.desired.schema import DesiredState
from reconciler.kamal.render import Timing
from reconciler.observe.kamal import running_versions
from reconciler.plan.kamal import deploy_hash
from reconciler.reconcile import ReconcileReport, reconcile
from reconciler.report.events import EventBus, Recorder
from reconciler.runtime import Runtime
from reconciler.state.store import StateStore
from tests.e2e.kamal_support import cleanup, make_desired
from tests.harness.kamal_fixtures import Sshd
from tests.harness.registry import Registry

pytestmark = pytest.mark.e2e


class Server:
    def __init__(self, client: docker.DockerClient, desired: DesiredState, state: Path) -> None:
        self.client, self.desired = client, desired
        self.runtime = Runtime(
            docker=client,
            state=StateStore(state),
            ready_timeout=30,
            registry_timeout=10,
            kamal_timing=Timing(readiness_delay=1, deploy_timeout=12, drain_timeout=2),
        )
        self.recorder = Recorder()
        self.standin: tuple[str, str] = ("", "")

    def reconcile(self, desired: DesiredState) -> ReconcileReport:
        self.desired = desired
        self.recorder.events.clear()
        return reconcile(desired, self.runtime, EventBus(self.recorder))

    def kamal_commands(self) -> list[str]:
        return [e["command"] for e in self.recorder.named("kamal.start")]

    def get(self, path: str) -> Any:
        assert self.desired.openwebui is not None
        return httpx.get(f"http://127.0.0.1:{self.desired.openwebui.exposure.port}{path}", timeout=5).json()


@pytest.fixture
def server(
    docker_client: docker.DockerClient,
    sshd: Sshd,
    registry: Registry,
    openwebui_standin: tuple[str, str],
    fake_ollama_image: str,
    tmp_path: Path,
) -> Iterator[Server]:
    desired = make_desired(
        sshd=sshd, registry=registry, standin=openwebui_standin[0], ollama_image=fake_ollama_image
    )
    s = Server(docker_client, desired, tmp_path / "state")
    s.standin = openwebui_standin
    try:
        yield s
    finally:
        cleanup(docker_client, s.desired)


def _webui(desired: DesiredState, **update: Any) -> DesiredState:
    assert desired.openwebui is not None
    return desired.model_copy(update={"openwebui": desired.openwebui.model_copy(update=update)})


def _ollama_env(desired: DesiredState, **env: Any) -> DesiredState:
    c = desired.ollama.container
    container = c.model_copy(update={"env": c.env.model_copy(update=env)})
    return desired.model_copy(update={"ollama": desired.ollama.model_copy(update={"container": container})})


def test_kamal_runs_only_when_openwebui_changes_and_a_revert_rolls_back(server: Server) -> None:
    first = server.desired
    report = server.reconcile(first)
    assert report.result in ("converged", "degraded"), report.notes
    assert server.kamal_commands() == ["setup"]
    assert server.get("/health") == {"status": True}
    assert "version" in server.get("/ollama")  # OpenWebUI reaches the managed Ollama by name
    assert server.runtime.state.load().deployed.openwebui_spec_hash == deploy_hash(first)

    ollama_only = _ollama_env(first, OLLAMA_NUM_PARALLEL=2)
    report = server.reconcile(ollama_only)
    # the container and the link it needs to Kamal's network (planned since the link became an
    # action); OpenWebUI's settings wait for Ollama to answer again
    assert [a.kind for a in report.plans[0].actions] == ["container", "networks"]
    assert server.kamal_commands() == []  # no Kamal at all
    assert "version" in server.get("/ollama")  # still linked after Ollama was recreated

    changed = _webui(ollama_only, task_model="phi3:mini")
    server.reconcile(changed)
    assert server.kamal_commands() == ["deploy"]
    assert server.get("/env")["TASK_MODEL"] == "phi3:mini"

    server.reconcile(ollama_only)  # `git revert` of the OpenWebUI change
    assert server.kamal_commands() == ["rollback"]
    assert running_versions(server.client, first.openwebui.kamal.service) == (deploy_hash(ollama_only),)  # type: ignore[union-attr]
    assert "TASK_MODEL" not in server.get("/env") or server.get("/env")["TASK_MODEL"] != "phi3:mini"

    # `updates.images: auto` with OpenWebUI opted in: a newer release is deployed by Kamal; a
    # later one whose container does not become healthy is held back (the one before it serves
    # on) and is not deployed again.
    _auto_openwebui_release(server, ollama_only)


def _auto_openwebui_release(server: Server, base: DesiredState) -> None:
    from datetime import UTC, datetime, timedelta

    from reconciler.desired.schema import UpdatePolicy
    from reconciler.observed import ImageTagsObs
    from reconciler.plan.image_tags import effective

    good, broken = (server.client.images.get(i) for i in server.standin)
    repository = f"local/rcl-owui-release-{uuid.uuid4().hex[:6]}"
    for image, tag in ((good, "1.0.0"), (good, "1.0.1"), (broken, "1.0.2")):
        image.tag(repository, tag)
    local = datetime.now(UTC).astimezone()
    window = f"{local - timedelta(hours=1):%H:%M}-{local + timedelta(hours=1):%H:%M}"

    def published(*tags: str) -> None:  # what the registry's tag list said at the last check
        seen = ImageTagsObs(
            image=f"registry-1.docker.io/{repository}", checked_at=datetime.now(UTC), tags=tags
        )
        server.runtime.state.update(lambda m: m.model_copy(update={"image_tags": {seen.image: seen}}))

    auto = _webui(base, image=f"{repository}:1.0.0")
    policy = UpdatePolicy(images="auto", auto_images=["openwebui"], window=window)
    auto = auto.model_copy(update={"ollama": auto.ollama.model_copy(update={"updates": policy})})
    try:
        published("1.0.0", "1.0.1")
        taken = server.reconcile(auto)
        assert taken.result == "converged", ([p.actions for p in taken.plans], taken.failures)
        assert [a.kind for a in taken.plans[0].actions] == ["update_image"]
        assert server.kamal_commands() == ["deploy"]
        moved = effective(auto, taken.last_observed)  # type: ignore[arg-type]
        assert moved.openwebui is not None and moved.openwebui.image == f"{repository}:1.0.1"
        assert running_versions(server.client, moved.openwebui.kamal.service) == (deploy_hash(moved),)

        published("1.0.0", "1.0.1", "1.0.2")
        failing = server.reconcile(auto)  # 1.0.2 does not become healthy
        assert failing.result == "failed" and server.kamal_commands() == ["deploy"]
        held = server.reconcile(auto)  # 1.0.1 serves on: nothing deployed, nothing retried
        assert held.result == "converged" and server.kamal_commands() == []
        # Only the link Kamal's restart of the old container dropped is made again.
        assert {a.kind for p in held.plans for a in p.actions} <= {"networks"}
        calm = server.reconcile(auto)
        assert calm.actions_run == 0 and server.kamal_commands() == []
        assert any(n.kind == "image_held_back" for n in calm.notes)
        assert running_versions(server.client, moved.openwebui.kamal.service) == (deploy_hash(moved),)
        assert server.get("/health") == {"status": True}
    finally:
        for tag in ("1.0.0", "1.0.1", "1.0.2"):
            server.client.images.remove(f"{repository}:{tag}", noprune=True)
