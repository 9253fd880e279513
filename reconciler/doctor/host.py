"""This host's network: its addresses (for `lan_addresses`) and who listens on a port (psutil)."""

from __future__ import annotations

import ipaddress
import re
import socket

import psutil

# Interfaces that are not the LAN: loopback, container bridges and their veths, VPN tunnels.
_VIRTUAL = re.compile(r"^(lo|docker\d*|br-|veth|virbr|cni|flannel|cali|vxlan|kube|tun|tap|wg|tailscale|zt)")


def host_addresses() -> list[tuple[str, str]]:
    """Every IPv4/IPv6 address on this host, with its interface."""
    found = []
    for nic, addrs in psutil.net_if_addrs().items():
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                found.append((a.address.split("%")[0], nic))
    return found


def lan_candidates(addresses: list[tuple[str, str]] | None = None) -> list[str]:
    """The private IPv4 addresses of physical-looking interfaces: what bootstrap writes into
    `server.yaml` lan_addresses. Loopback, link-local, container bridges and tunnels are left out."""
    out = []
    for address, nic in addresses if addresses is not None else host_addresses():
        ip = ipaddress.ip_address(address)
        if ip.version != 4 or _VIRTUAL.match(nic) or ip.is_loopback or ip.is_link_local:
            continue
        if ip.is_private:
            out.append(str(ip))
    return sorted(dict.fromkeys(out), key=lambda a: ipaddress.ip_address(a))


def listener(port: int) -> str:
    """Who listens on TCP `port`, as `pid N (name)`, or why that cannot be told."""
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError):
        return "another process (run as root to see which)"
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            try:
                return f"pid {c.pid} ({psutil.Process(c.pid).name()})"
            except psutil.Error:
                return f"pid {c.pid}"
    return "another process"
