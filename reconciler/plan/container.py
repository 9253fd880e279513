"""The Ollama container's concrete spec, derived from the desired state (pure)."""

from __future__ import annotations

import ipaddress

from reconciler.desired.schema import DesiredState
from reconciler.plan.actions import ContainerSpec

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
