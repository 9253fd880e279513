"""The Ollama container: its concrete spec, derived from the desired state, and what to do
about the one observed (pure). The planner and the Kamal hooks decide it here alike."""

from __future__ import annotations

import ipaddress

from reconciler.desired.schema import DesiredState
from reconciler.observed import ContainerObs
from reconciler.plan.actions import ContainerSpec, EnsureContainer
from reconciler.plan.hashing import spec_hash

LOOPBACK = "127.0.0.1"


def bind_addresses(explicit: list[str] | None, lan: list[str]) -> tuple[str, ...]:
    """Explicit addresses win; otherwise loopback plus the LAN addresses. Never 0.0.0.0
    unless the user wrote it."""
    if explicit is not None:
        return tuple(dict.fromkeys(explicit))
    return tuple(dict.fromkeys([LOOPBACK, *lan]))


def container_spec(desired: DesiredState) -> ContainerSpec:
    c = desired.ollama.container
    env = c.env.as_environment()
    env["OLLAMA_HOST"] = "0.0.0.0:11434"  # inside the container; the host side is bound below
    return ContainerSpec(
        name=c.name,
        image=c.image,
        env=dict(sorted(env.items())),
        gpus=c.gpus if isinstance(c.gpus, str) else tuple(c.gpus),
        volume=c.volume,
        network=c.network,
        port=c.publish.port,
        bind_addresses=bind_addresses(c.publish.addresses, desired.server.lan_addresses),
        restart=c.restart,
    )


def ready_url(spec: ContainerSpec) -> str:
    """The API address to probe: the first bound address (a wildcard reads as loopback)."""
    address = spec.bind_addresses[0] if spec.bind_addresses else "127.0.0.1"
    ip = ipaddress.ip_address(address)
    if ip.is_unspecified:
        ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"http://{host}:{spec.port}/api/version"


def container_action(desired: DesiredState, seen: ContainerObs | None) -> EnsureContainer | None:
    spec = container_spec(desired)
    wanted = spec_hash(spec)
    if seen is None:
        return EnsureContainer(op="create", spec=spec, spec_hash=wanted, reason="no Ollama container")
    if seen.spec_hash != wanted:
        why = "its spec changed" if seen.spec_hash else "it was not created by the reconciler"
        return EnsureContainer(
            op="recreate",
            spec=spec,
            spec_hash=wanted,
            reason=f"{why} ({seen.spec_hash or 'no label'} → {wanted}); the models volume is kept",
        )
    if not seen.running:
        why = f"container is {seen.status or 'stopped'}"
        return EnsureContainer(op="start", spec=spec, spec_hash=wanted, reason=why)
    if seen.health == "unhealthy":
        return EnsureContainer(op="recreate", spec=spec, spec_hash=wanted, reason="container is unhealthy")
    return None
