"""What Kamal left on this machine for OpenWebUI, and the LAN certificate it serves (a reader).

Read steps: the docker SDK's container and network lists (Kamal's labels `service`, `role`),
the certificate files under the state directory. Parse steps: `parse_app` (the version from our
image label, else the container name Kamal gives, else `KAMAL_VERSION` in its environment) and
`parse_certificate` (the expiry dates); tested without Docker.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors

from reconciler.desired.schema import DesiredState
from reconciler.errors import ObservationFailed
from reconciler.labels import KAMAL_NETWORK, KAMAL_ROLE, KAMAL_SERVICE, ROLE, VERSION_LABEL
from reconciler.observe._json import as_mapping
from reconciler.observed import CertificateObs, KamalApp, KamalObs


def app_version(attrs: Mapping[str, Any], service: str) -> str | None:
    labels = as_mapping(as_mapping(attrs.get("Config")).get("Labels"))
    version = labels.get(VERSION_LABEL)
    if isinstance(version, str) and version:
        return version
    name = str(attrs.get("Name") or "").lstrip("/")
    prefix = f"{service}-{ROLE}-"
    if name.startswith(prefix) and "_replaced_" not in name:
        return name[len(prefix) :]
    for item in as_mapping(attrs.get("Config")).get("Env") or []:
        if isinstance(item, str) and item.startswith("KAMAL_VERSION="):
            return item.split("=", 1)[1].strip('"')
    return None


def parse_app(attrs: Mapping[str, Any], service: str) -> KamalApp | None:
    """`docker inspect` of a container → one of the service's app containers, or None."""
    labels = as_mapping(as_mapping(attrs.get("Config")).get("Labels"))
    if labels.get(KAMAL_SERVICE) != service or labels.get(KAMAL_ROLE) != ROLE:
        return None
    return KamalApp(
        name=str(attrs.get("Name") or "").lstrip("/"),
        version=app_version(attrs, service),
        running=as_mapping(attrs.get("State")).get("Running") is True,
        health=as_mapping(as_mapping(attrs.get("State")).get("Health")).get("Status"),
        networks=tuple(sorted(as_mapping(as_mapping(attrs.get("NetworkSettings")).get("Networks")))),
    )


def parse_certificate(cert_pem: bytes, ca_pem: bytes | None) -> CertificateObs:
    from cryptography import x509  # only where a certificate was made: ~25 ms to import

    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem) if ca_pem else None
    return CertificateObs(
        not_after=cert.not_valid_after_utc, ca_not_after=ca.not_valid_after_utc if ca else None
    )


def read_certificate(directory: Path) -> CertificateObs | None:
    """The server certificate under `directory` (None: never made, or unreadable: the next
    deploy makes it)."""
    try:
        cert = (directory / "server.crt").read_bytes()
    except OSError:
        return None
    try:
        ca: bytes | None = (directory / "ca.crt").read_bytes()
    except OSError:
        ca = None
    try:
        return parse_certificate(cert, ca)
    except ValueError:
        return None


def app_containers(client: docker.DockerClient, service: str) -> tuple[KamalApp, ...]:
    """The service's app containers in any state (stopped ones are what a rollback starts)."""
    try:
        found = client.containers.list(all=True, filters={"label": f"{KAMAL_SERVICE}={service}"})
    except docker.errors.DockerException as exc:
        raise ObservationFailed(f"cannot list OpenWebUI's containers: {exc}") from exc
    apps = (parse_app(c.attrs, service) for c in found)
    return tuple(sorted((a for a in apps if a is not None), key=lambda a: a.name))


def running_versions(client: docker.DockerClient, service: str) -> tuple[str, ...]:
    """Versions of the service's running app containers."""
    return KamalObs(apps=app_containers(client, service)).running


def version_unhealthy(client: docker.DockerClient, service: str, version: str) -> bool:
    """A failed deploy got as far as a container of `version`, and it is not running healthy:
    the image (or its settings) is at fault, not the way there (SSH, the registry, a lock)."""
    return any(a.unhealthy for a in app_containers(client, service) if a.version == version)


def observe_kamal(client: docker.DockerClient, desired: DesiredState, tls_dir: Path) -> KamalObs | None:
    webui = desired.openwebui
    if webui is None:
        return None
    try:
        kamal_network = any(n.name == KAMAL_NETWORK for n in client.networks.list(names=[KAMAL_NETWORK]))
    except docker.errors.DockerException as exc:
        raise ObservationFailed(f"cannot list Docker networks: {exc}") from exc
    return KamalObs(
        apps=app_containers(client, webui.kamal.service),
        kamal_network=kamal_network,
        certificate=read_certificate(tls_dir) if webui.exposure.tls.enabled else None,
    )
