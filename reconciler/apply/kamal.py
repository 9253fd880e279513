"""OpenWebUI's versions through Kamal, its LAN certificate and the networks it reaches Ollama
over: the executors (each runs the action it is handed; the Kamal tool is driven by
`reconciler.kamal`) and the effect each promises."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import docker.errors

from reconciler.apply.context import ExecContext
from reconciler.apply.world import World
from reconciler.errors import Conflict, EngineBusy, KamalFailed
from reconciler.kamal import deploy
from reconciler.kamal.tls import CA_DAYS, SERVER_DAYS, ensure_tls, tls_hosts
from reconciler.labels import KAMAL_NETWORK
from reconciler.observe.kamal import version_unhealthy
from reconciler.observed import CertificateObs, KamalApp, KamalObs
from reconciler.plan.actions import FreePort, KamalDeploy, KamalRollback, LinkNetworks, RenewCertificate
from reconciler.report.events import EventName


def _target(ctx: ExecContext) -> deploy.Target:
    def emit(name: EventName, data: dict[str, Any]) -> None:
        ctx.events.emit(name, **data)

    return deploy.Target(workdir=ctx.kamal_workdir, docker=ctx.docker, emit=emit, timing=ctx.kamal_timing)


def _remember_version(ctx: ExecContext, version: str) -> None:
    update = {"openwebui_spec_hash": version, "openwebui_failed_hash": None}
    ctx.remember(lambda m: m.model_copy(update={"deployed": m.deployed.model_copy(update=update)}))


def run_deploy(action: KamalDeploy, ctx: ExecContext) -> None:
    try:
        deploy.deploy(ctx.desired, action.version, _target(ctx), first=action.first)
    except KamalFailed:
        webui = ctx.desired.openwebui
        if webui is not None and version_unhealthy(ctx.docker, webui.kamal.service, action.version):
            failed = {"openwebui_failed_hash": action.version}
            ctx.remember(lambda m: m.model_copy(update={"deployed": m.deployed.model_copy(update=failed)}))
        raise
    _remember_version(ctx, action.version)


def run_rollback(action: KamalRollback, ctx: ExecContext) -> None:
    deploy.rollback(ctx.desired, action.version, _target(ctx))
    _remember_version(ctx, action.version)


def run_renew(action: RenewCertificate, ctx: ExecContext) -> None:
    names, addresses = tls_hosts(ctx.desired)
    state = ensure_tls(
        ctx.state.root / "tls", names, addresses, now=ctx.now(), renew=True, new_ca=action.new_ca
    )
    ctx.events.emit("tls.renewed", not_after=state.not_after.isoformat(), ca_created=state.ca_created)


def run_links(action: LinkNetworks, ctx: ExecContext) -> None:
    for link in action.links:
        try:
            network = ctx.docker.networks.get(link.network)
            aliases = [link.alias] if link.alias else None
            network.connect(ctx.docker.containers.get(link.container), aliases=aliases)
        except docker.errors.NotFound as exc:
            raise Conflict(
                f"cannot attach {link.container} to {link.network}: {exc.explanation or exc}"
            ) from exc
        except docker.errors.APIError as exc:
            if exc.status_code == 403:  # already attached (Docker's own answer): done
                continue
            raise EngineBusy(
                f"cannot attach {link.container} to {link.network}: {exc.explanation or exc}"
            ) from exc


def run_free_port(action: FreePort, ctx: ExecContext) -> None:
    for name in action.containers:
        with contextlib.suppress(docker.errors.NotFound):  # gone already: the port is free
            ctx.docker.containers.get(name).stop(timeout=10)


# ───────────────────────────── the effects (pure) ─────────────────────────────


def _kamal(world: World) -> KamalObs:
    return world.kamal or KamalObs()


def version_deployed(action: KamalDeploy | KamalRollback, world: World) -> None:
    """The version runs; Kamal's hooks have linked it and Ollama (the same LinkNetworks)."""
    world.deployed = world.deployed.model_copy(update={"openwebui_spec_hash": action.version})
    kamal = _kamal(world)
    ollama = world.container
    if ollama is not None:
        world.container = ollama.model_copy(
            update={"networks": tuple(sorted({*ollama.networks, KAMAL_NETWORK}))}
        )
    networks = tuple(sorted({KAMAL_NETWORK, *(ollama.networks if ollama else ())}))
    apps = [a.model_copy(update={"running": False}) for a in kamal.apps if a.version != action.version]
    apps.append(
        KamalApp(name=f"openwebui-{action.version}", version=action.version, running=True, networks=networks)
    )
    world.kamal = kamal.model_copy(update={"apps": tuple(apps), "kamal_network": True})


def renewed(action: RenewCertificate, world: World) -> None:
    at = world.start.at
    kamal = _kamal(world)
    if at is None or kamal.certificate is None:
        return
    cert = CertificateObs(
        not_after=at + timedelta(days=SERVER_DAYS), ca_not_after=kamal.certificate.ca_not_after
    )
    if action.new_ca:
        cert = cert.model_copy(update={"ca_not_after": at + timedelta(days=CA_DAYS)})
    world.kamal = kamal.model_copy(update={"certificate": cert})


def linked(action: LinkNetworks, world: World) -> None:
    kamal = _kamal(world)
    adds: dict[str, set[str]] = {}
    for link in action.links:
        adds.setdefault(link.container, set()).add(link.network)
    apps = tuple(
        a.model_copy(update={"networks": tuple(sorted({*a.networks, *adds.get(a.name, ())}))})
        for a in kamal.apps
    )
    world.kamal = kamal.model_copy(update={"apps": apps})
    if world.container is not None and world.container.name in adds:
        nets = tuple(sorted({*world.container.networks, *adds[world.container.name]}))
        world.container = world.container.model_copy(update={"networks": nets})


def port_freed(action: FreePort, world: World) -> None:
    kamal = _kamal(world)
    apps = tuple(
        a.model_copy(update={"running": False}) if a.name in action.containers else a for a in kamal.apps
    )
    world.kamal = kamal.model_copy(update={"apps": apps})
