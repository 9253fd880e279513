"""One observation of the whole server: Docker, Ollama, GPU, disk, registry, OpenWebUI, Kamal.

The observers are handed `Readers` (how to reach each part) and never the reconciler's
memory: the reconcile adds that (`reconciler.memory.with_memory`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import docker
import httpx
import ollama

from reconciler.desired.images import ImageRef
from reconciler.desired.refs import ModelRef, canonical, parse_ref
from reconciler.desired.schema import DerivedModel, DesiredState
from reconciler.errors import ReconcilerError
from reconciler.observe.disk import blob_sizes, gguf_magic_ok, observe_disk, read_manifests
from reconciler.observe.docker import observe_container, volume_mountpoint
from reconciler.observe.gpu import observe_gpus
from reconciler.observe.host import observe_addresses
from reconciler.observe.image_tags import check_images
from reconciler.observe.kamal import observe_kamal
from reconciler.observe.ollama import OllamaView, observe_ollama
from reconciler.observe.openwebui import observe_openwebui
from reconciler.observe.registry import lookup_all
from reconciler.observed import (
    ContainerObs,
    ImageTagsObs,
    ModelObs,
    Observed,
    OpenWebUIObs,
    RemoteManifest,
)
from reconciler.openwebui.client import LoginLocked, OpenWebUIClient


@dataclass(frozen=True)
class Readers:
    """How the observers reach the server (the reconcile builds it from its runtime)."""

    docker: docker.DockerClient
    ollama_url: str
    ollama: ollama.Client
    http: httpx.Client
    registry_http: httpx.Client
    registry_timeout: float
    openwebui: Callable[[], OpenWebUIClient]  # signs in when called
    tls_dir: Path  # the LAN certificate kamal-proxy serves


def _architecture_wanted(desired: DesiredState) -> set[str]:
    """The models whose full architecture (`/api/show` tensors too) the VRAM estimate needs:
    the weights of pinned models."""
    wanted = set()
    for m in desired.ollama.all_models():
        if m.keep_loaded:
            wanted.add(canonical(m.from_ if isinstance(m, DerivedModel) else m.name))
    return wanted


def _show_wanted(desired: DesiredState) -> set[str]:
    """The models `/api/show` is asked about: every desired one (can Ollama read it, what can
    it do) and the bases of pinned derived models (their architecture)."""
    wanted = set()
    for m in desired.ollama.all_models():
        wanted.add(canonical(m.name))
        if isinstance(m, DerivedModel):
            wanted.add(canonical(m.from_))
    return wanted


@dataclass(frozen=True)
class _Volume:
    """The models volume as the host sees it."""

    mount: str | None

    @property
    def models_dir(self) -> Path | None:
        return Path(self.mount) / "models" if self.mount else None

    @property
    def readable(self) -> bool:
        return self.models_dir is not None and self.models_dir.is_dir()


def _ollama(
    desired: DesiredState, readers: Readers, container: ContainerObs | None, volume: _Volume, at: datetime
) -> OllamaView:
    if container is None or not container.running:
        return OllamaView(reachable=False)
    models_dir = volume.models_dir if volume.readable else None
    return observe_ollama(
        readers.ollama,
        readers.http,
        readers.ollama_url,
        blobs=read_manifests(models_dir) if models_dir is not None else {},
        want_show=_show_wanted(desired),
        want_architecture=_architecture_wanted(desired),
        on_disk=blob_sizes(models_dir) if models_dir is not None else None,
        is_gguf=lambda digest: gguf_magic_ok(models_dir, digest) if models_dir is not None else None,
        at=at,
    )


DueChecks = Callable[[dict[str, ModelObs]], list[ModelRef]]  # present models → those to look up


def _remote(
    desired: DesiredState, readers: Readers, view: OllamaView, due_checks: DueChecks | None
) -> tuple[tuple[RemoteManifest, ...], dict[str, str]]:
    """The registry's manifests of the desired models Ollama does not have (usable), and of the
    present ones whose update check is due (looked up the same way; never drift)."""
    present = {m.name: m for m in view.models if m.broken is None}
    missing = [parse_ref(m.name) for m in desired.ollama.models if canonical(m.name) not in present]
    due = due_checks(present) if due_checks is not None else []
    if not view.reachable or not (missing or due):
        return (), {}
    return lookup_all(
        missing + due, desired.ollama.registries, readers.registry_timeout, client=readers.registry_http
    )


def observe_webui(readers: Readers, own_bases: set[str]) -> OpenWebUIObs:
    """OpenWebUI through its API, the files of the reconciler's own knowledge bases included."""
    try:
        client = readers.openwebui()
    except LoginLocked as exc:
        return OpenWebUIObs(reachable=False, error=exc.message[:300], login_locked=True)
    except ReconcilerError as exc:  # signing in failed (a missing admin key): it cannot be read
        return OpenWebUIObs(reachable=False, error=str(exc)[:300])
    return observe_openwebui(client, own_bases)


def observe_server(
    desired: DesiredState,
    readers: Readers,
    at: datetime,
    *,
    openwebui: set[str] | None = None,
    due_checks: DueChecks | None = None,
    images: Sequence[ImageRef] = (),
    image_tags: dict[str, ImageTagsObs] | None = None,
) -> Observed:
    """Everything the planner compares with `desired`. `openwebui`: the ids of the reconciler's
    own knowledge bases, when OpenWebUI is deployed and to be looked at (None: it is not).
    `due_checks`: which present models' registry check is due (the update policy's, given by the
    caller); `images`: the images whose tag lists to look at, `image_tags` the last looks."""
    spec = desired.ollama.container
    container = observe_container(readers.docker, spec.name)
    volume = _Volume(volume_mountpoint(readers.docker, spec.volume))
    disk_path = volume.mount or str(readers.docker.info().get("DockerRootDir", "/"))
    gpus, gpu_error = observe_gpus()
    view = _ollama(desired, readers, container, volume, at)
    remote, remote_errors = _remote(desired, readers, view, due_checks)
    image_checks = check_images(
        images, desired.ollama.registries, readers.registry_http, image_tags or {}, at
    )
    return Observed(
        container=container,
        ollama_reachable=view.reachable,
        ollama_version=view.version,
        models=view.models,
        loaded=view.loaded,
        gpus=gpus,
        gpu_error=gpu_error,
        openwebui=observe_webui(readers, openwebui) if openwebui is not None and desired.openwebui else None,
        kamal=observe_kamal(readers.docker, desired, readers.tls_dir),
        disk=observe_disk(disk_path, volume.models_dir),
        remote=remote,
        remote_errors=remote_errors,
        host_addresses=observe_addresses(),
        at=at,
        clock=at.astimezone(),  # the server's time zone: update windows are in it
        image_checks=image_checks,
    )
