"""One observation of the whole server: Docker, Ollama, GPU, disk, registry, memory."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from reconciler.desired.refs import canonical, parse_ref
from reconciler.desired.schema import DerivedModel, DesiredState
from reconciler.observe.disk import blob_sizes, gguf_magic_ok, observe_disk, read_manifests
from reconciler.observe.docker import observe_container, volume_mountpoint
from reconciler.observe.gpu import observe_gpus
from reconciler.observe.host import observe_addresses
from reconciler.observe.image_tags import check_images
from reconciler.observe.ollama import OllamaView, observe_ollama
from reconciler.observe.registry import lookup_all
from reconciler.observed import EvictionObs, Observed, RemoteManifest, WebUIObs
from reconciler.plan.image_tags import images_due
from reconciler.plan.update_policy import checks_due
from reconciler.runtime import Runtime
from reconciler.state.store import Memory, recent


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


def observe_server(desired: DesiredState, runtime: Runtime, memory: Memory, at: datetime) -> Observed:
    spec = desired.ollama.container
    container = observe_container(runtime.docker, spec.name)
    mount = volume_mountpoint(runtime.docker, spec.volume)
    models_dir = Path(mount) / "models" if mount else None
    readable = models_dir is not None and models_dir.is_dir()
    blobs = read_manifests(models_dir) if models_dir is not None and readable else {}
    on_disk = blob_sizes(models_dir) if models_dir is not None and readable else None
    disk_path = mount or str(runtime.docker.info().get("DockerRootDir", "/"))
    gpus, gpu_error = observe_gpus()
    view = OllamaView(reachable=False)
    if container is not None and container.running:
        url = runtime.ollama_base(desired)
        view = observe_ollama(
            runtime.ollama(url),
            runtime.http(),
            url,
            blobs=blobs,
            want_show=_show_wanted(desired),
            want_architecture=_architecture_wanted(desired),
            on_disk=on_disk,
            is_gguf=lambda digest: gguf_magic_ok(models_dir, digest) if models_dir and readable else None,
        )
    present = {m.name: m for m in view.models if m.broken is None}
    missing = [parse_ref(m.name) for m in desired.ollama.models if canonical(m.name) not in present]
    # Present models whose update check is due are looked up the same way (never drift).
    due = [parse_ref(m.name) for m in checks_due(desired, present, memory.upstream, at)]
    remote: tuple[RemoteManifest, ...] = ()
    remote_errors: dict[str, str] = {}
    if view.reachable and (missing or due):
        remote, remote_errors = lookup_all(
            missing + due, desired.ollama.registries, runtime.registry_timeout, client=runtime.registry_http()
        )
    images = images_due(desired, memory.image_tags, at)
    image_checks = check_images(
        images, desired.ollama.registries, runtime.registry_http(), memory.image_tags, at
    )
    webui = None
    if desired.openwebui is not None and memory.deployed.openwebui_settings_hash is not None:
        webui = observe_webui_state(desired, runtime)
    tls_due = None
    if desired.openwebui is not None and desired.openwebui.exposure.tls.enabled:
        from reconciler.openwebui.tls import renewal_due

        tls_due = renewal_due(runtime.state.root / "tls", at)
    observed = Observed(
        container=container,
        ollama_reachable=view.reachable,
        ollama_version=view.version,
        models=view.models,
        loaded=view.loaded,
        gpus=gpus,
        gpu_error=gpu_error,
        webui=webui,
        tls_renewal_due=tls_due,
        disk=observe_disk(disk_path, models_dir),
        remote=remote,
        remote_errors=remote_errors,
        host_addresses=observe_addresses(),
        clock=at.astimezone(),  # the server's time zone: update windows are in it
        image_checks=image_checks,
    )
    return with_memory(observed, memory, at)


def observe_webui_state(desired: DesiredState, runtime: Runtime) -> WebUIObs:
    """OpenWebUI's health, version, knowledge, presets, and any drift from the desired state."""
    from reconciler.errors import ReconcilerError
    from reconciler.openwebui.converge import observe_drift

    try:
        view, drift = observe_drift(
            desired, runtime.state.root, url=runtime.openwebui_url, timeout=runtime.api_timeout
        )
    except ReconcilerError as exc:
        return WebUIObs(reachable=False, error=str(exc)[:300])
    presets = tuple(sorted(r.id for r in view.rows.values() if r.base_model_id and r.managed))
    return WebUIObs(
        reachable=view.reachable,
        version=view.version,
        error=view.error,
        knowledge=tuple((k.name, k.file_count) for k in view.knowledge),
        presets=presets,
        drift=tuple(str(op) for op in drift),
    )


def with_memory(observed: Observed, memory: Memory, at: datetime) -> Observed:
    """The parts of an observation that come from the reconciler's own memory."""
    evictions = tuple(
        EvictionObs(model=name, count=len(found), suspects=found[-1].suspects)
        for name, history in memory.evictions.items()
        if (found := recent(history, at))
    )
    return observed.model_copy(
        update={
            "inventory": memory.inventory,
            "deployed": memory.deployed,
            "evictions": evictions,
            "warmed": tuple(sorted(memory.warmed)),
            "upstream": tuple(memory.upstream[name] for name in sorted(memory.upstream)),
            "recorded": memory.recorded,
            "applied_updates": memory.applied_updates,
            "image_tags": tuple(memory.image_tags[key] for key in sorted(memory.image_tags)),
        }
    )
