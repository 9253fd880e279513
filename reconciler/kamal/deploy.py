"""Deploy OpenWebUI with Kamal, or roll back to a version it retains: build and push the wrapper
image, write the project, run `kamal setup` (the first time) or `kamal deploy --skip-push
--version=V`, or `kamal rollback V`. What to run is the planner's (plan/kamal.py); this only
runs it.

Kamal cannot build here (every Kamal build is `docker buildx`), so the image is built with the
docker SDK's classic builder and pushed with the SDK; Kamal then pulls it on the servers
(`--skip-push`). Every output line of kamal becomes an event `kamal.output`.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from reconciler.desired.schema import DesiredState
from reconciler.errors import Conflict, KamalFailed
from reconciler.kamal.cli import LOCK_RETRIES, LOCK_WAIT_S, Emit, run_kamal
from reconciler.kamal.output import ERROR_LINES, rollback_unavailable
from reconciler.kamal.project import DESIRED_SNAPSHOT, write_project
from reconciler.kamal.render import REGISTRY_SECRET, RenderedProject, Timing, render
from reconciler.labels import KAMAL_SERVICE
from reconciler.observe.kamal import app_version, parse_app
from reconciler.report.events import notify

RESTORE_WAIT_S = 120.0


@dataclass(frozen=True)
class Target:
    """Where and how a deploy runs: the project directory, the engine, where its events go."""

    workdir: Path
    docker: docker.DockerClient
    emit: Emit | None = None
    timing: Timing | None = None
    environ: Mapping[str, str] | None = None  # where `{env: NAME}` secrets are read (tests)
    kamal_env: Mapping[str, str] | None = None
    lock_retries: int = LOCK_RETRIES
    lock_wait_s: float = LOCK_WAIT_S

    def env(self) -> dict[str, str]:
        return {
            "RECONCILER_STATE": str(self.workdir / DESIRED_SNAPSHOT),
            "RECONCILER_PYTHON": sys.executable,
            **(self.kamal_env or {}),
        }


def build_and_push(
    client: docker.DockerClient,
    project: RenderedProject,
    username: str,
    password: str,
    emit: Emit | None = None,
) -> str:
    """Build `FROM <openwebui.image>` + labels as <registry>/<image>:<version> and push it."""
    tag = project.image_ref
    try:
        client.images.build(fileobj=io.BytesIO(project.dockerfile.encode()), tag=tag, rm=True, pull=False)
    except docker.errors.BuildError as exc:
        log = [str(x.get("stream") or x.get("error") or "").strip() for x in exc.build_log]
        raise KamalFailed(f"docker build {tag}", None, [x for x in log if x][-ERROR_LINES:]) from exc
    except docker.errors.APIError as exc:
        raise KamalFailed(f"docker build {tag}", None, [str(exc.explanation or exc)]) from exc
    notify(emit, "kamal.image_built", image=tag)
    errors: list[str] = []
    try:
        for chunk in client.images.push(
            project.image,
            tag=project.version,
            auth_config={"username": username, "password": password},
            stream=True,
            decode=True,
        ):
            if isinstance(chunk, dict) and chunk.get("error"):
                errors.append(str(chunk["error"]))
    except docker.errors.APIError as exc:
        errors.append(str(exc.explanation or exc))
    if errors:
        raise KamalFailed(f"docker push {tag}", None, errors[-ERROR_LINES:])
    notify(emit, "kamal.image_pushed", image=tag)
    return tag


def prepare(desired: DesiredState, version: str, target: Target) -> tuple[RenderedProject, dict[str, str]]:
    """Render and write the project; return it and the resolved secret values."""
    project = render(desired, version, target.timing)
    values = write_project(project, desired, target.workdir, environ=target.environ)
    return project, values


def deploy(desired: DesiredState, version: str, target: Target, *, first: bool = False) -> list[str]:
    """Deploy `desired`'s OpenWebUI as Kamal version `version`; return kamal's output lines.

    Raises KamalFailed (Kamal's last error lines attached), SecretUnavailable."""
    project, values = prepare(desired, version, target)
    assert desired.openwebui is not None
    username = desired.openwebui.kamal.registry.username
    build_and_push(target.docker, project, username, values[REGISTRY_SECRET], target.emit)
    verb = "setup" if first else "deploy"
    service = desired.openwebui.kamal.service
    before = _running_apps(target.docker, service)
    notify(target.emit, "kamal.start", command=verb, version=version)
    try:
        lines = run_kamal(
            [verb, "--skip-push", f"--version={version}"],
            workdir=target.workdir,
            emit=target.emit,
            env=target.env(),
            lock_retries=target.lock_retries,
            lock_wait_s=target.lock_wait_s,
        )
    except KamalFailed:
        _restart_previous(target.docker, service, before, target.emit)
        raise
    notify(target.emit, "kamal.done", command=verb, version=version)
    return lines


def rollback(desired: DesiredState, version: str, target: Target) -> list[str]:
    """`kamal rollback <version>`. `desired` is the state that version was rendered from (a
    revert): the project is rewritten from it first, so the env Kamal boots the old container
    with is that version's. Raises Conflict when Kamal no longer has the version's container
    (the next pass observes that and deploys it instead)."""
    prepare(desired, version, target)
    notify(target.emit, "kamal.start", command="rollback", version=version)
    lines = run_kamal(
        ["rollback", f"--version={version}", version],
        workdir=target.workdir,
        emit=target.emit,
        env=target.env(),
        lock_retries=target.lock_retries,
        lock_wait_s=target.lock_wait_s,
    )
    if rollback_unavailable(lines):
        notify(target.emit, "kamal.rollback_unavailable", version=version)
        raise Conflict(
            f"Kamal has no container of OpenWebUI version {version} any more: it is deployed instead"
        )
    notify(target.emit, "kamal.done", command="rollback", version=version)
    return lines


def _running_apps(client: docker.DockerClient, service: str) -> list[Any]:
    found = client.containers.list(filters={"label": f"{KAMAL_SERVICE}={service}"})
    return [c for c in found if parse_app(c.attrs, service) is not None]


def _wait_healthy(container: Any, timeout: float) -> bool:
    """Until Docker says healthy (or running, for an image without a HEALTHCHECK)."""
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        state = container.attrs.get("State") or {}
        health = (state.get("Health") or {}).get("Status")
        if state.get("Running") and health in (None, "healthy"):
            return True
        if time.monotonic() > deadline or not state.get("Running"):
            return False
        time.sleep(0.3)


def _restart_previous(
    client: docker.DockerClient, service: str, before: list[Any], emit: Emit | None
) -> None:
    """Published mode stops the old version before the new one boots (the port cannot be shared):
    when the new one failed and nothing of the service runs any more, start the old one again."""
    if not before or _running_apps(client, service):
        return
    for container in before:
        try:
            container.start()
        except docker.errors.APIError as exc:
            notify(emit, "kamal.restore_failed", container=container.name, error=str(exc.explanation or exc))
            continue
        healthy = _wait_healthy(container, RESTORE_WAIT_S)
        notify(
            emit,
            "kamal.restored_previous",
            healthy=healthy,
            container=container.name,
            version=app_version(container.attrs, service),
        )
