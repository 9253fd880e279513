"""This machine's own IP addresses (read with psutil, parsed apart), so the planner can tell a
`server.yaml` lan_address that is not this host's before Docker fails to bind it."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from typing import Any

import psutil


def parse_addresses(interfaces: Mapping[str, Iterable[Any]]) -> tuple[str, ...]:
    """IPv4/IPv6 addresses of every interface, as ipaddress writes them (zone ids dropped)."""
    found: set[str] = set()
    for entries in interfaces.values():
        for entry in entries:
            if entry.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                found.add(str(ipaddress.ip_address(str(entry.address).split("%", 1)[0])))
            except ValueError:
                continue
    return tuple(sorted(found))


def observe_addresses() -> tuple[str, ...] | None:
    try:
        return parse_addresses(psutil.net_if_addrs())
    except OSError:
        return None
