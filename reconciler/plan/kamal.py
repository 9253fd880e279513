"""OpenWebUI's version through Kamal, its LAN certificate, and the networks it reaches Ollama
over, from the desired state and what is observed (pure).

The policies live here: a version whose container Kamal still retains is rolled back to
(seconds) instead of deployed (a build, a push and a boot); the certificate kamal-proxy serves
is renewed within `RENEW_BEFORE` of its expiry, and the CA a day before that.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from reconciler.desired.schema import DesiredState
from reconciler.labels import KAMAL_NETWORK, OLLAMA_ALIAS
from reconciler.observed import CertificateObs, KamalObs, Observed
from reconciler.plan.actions import (
    Action,
    EnsureContainer,
    FreePort,
    KamalDeploy,
    KamalRollback,
    LinkNetworks,
    NetworkLink,
    RenewCertificate,
)
from reconciler.plan.hashing import spec_hash
from reconciler.plan.notes import Note, note

RENEW_BEFORE = timedelta(days=30)  # renew the server certificate when less is left
CA_RENEW_BEFORE = RENEW_BEFORE + timedelta(days=1)  # the CA must outlive the certificate it signs

Hook = Literal["", "docker-setup", "pre-app-boot", "post-deploy"]


def deploy_hash(desired: DesiredState) -> str | None:
    """The version of OpenWebUI Kamal deploys: a hash of what reaches its container (image,
    environment, exposure, how it reaches Ollama). What lives in OpenWebUI's database is not in
    it: a change there is planned as API calls (plan/openwebui.py), never a redeploy."""
    webui = desired.openwebui
    if webui is None:
        return None
    database_only = {"knowledge", "presets", "users", "groups", "model_access", "prune", "signup"}
    spec = webui.model_dump(mode="json", exclude=database_only)
    if webui.auth:  # what of the people reaches the container: signup, the first admin's env
        admin = webui.admin()
        spec["_people"] = {
            "signup": webui.signup.model_dump(mode="json"),
            "admin": admin.model_dump(mode="json") if admin else None,
        }
    c = desired.ollama.container
    spec["_ollama"] = {"name": c.name, "network": c.network}
    spec["_lan"] = list(desired.server.lan_addresses)
    return spec_hash(spec)


def renewal_due(cert: CertificateObs, at: datetime) -> RenewCertificate | None:
    """Renew the certificate within the window of its expiry (or of its CA's)."""
    new_ca = cert.ca_not_after is not None and cert.ca_not_after - at < CA_RENEW_BEFORE
    left = cert.not_after - at
    if left >= RENEW_BEFORE and not new_ca:
        return None
    days = max(left.days, 0)
    why = f"OpenWebUI's LAN TLS certificate expires {cert.not_after:%Y-%m-%d} (in {days} days)"
    if new_ca:
        why += f"; its CA expires {cert.ca_not_after:%Y-%m-%d}: devices must trust the new CA"
    return RenewCertificate(expires=cert.not_after, new_ca=new_ca, reason=f"{why}: renewing it")


def held_back(desired: DesiredState, observed: Observed) -> Note | None:
    """A version whose container did not become healthy is not deployed again for the same
    desired spec: in published mode every try stops the serving version first."""
    wanted, deployed = deploy_hash(desired), observed.deployed
    if wanted is None or wanted != deployed.openwebui_failed_hash or wanted == deployed.openwebui_spec_hash:
        return None
    serving = deployed.openwebui_spec_hash or "no version"
    return note(
        "openwebui_held_back",
        f"OpenWebUI version {wanted} held back: its container did not become healthy when it was "
        f"deployed, so {serving} keeps serving; fix openwebui.yaml (or `git revert`) and push",
    )


def _version_action(desired: DesiredState, observed: Observed, since: str) -> Action | None:
    wanted, deployed = deploy_hash(desired), observed.deployed.openwebui_spec_hash
    if wanted is None or wanted == deployed or held_back(desired, observed) is not None:
        return None
    if deployed is None:
        return KamalDeploy(version=wanted, first=True, reason=f"{since}, OpenWebUI was never deployed")
    changed = f"OpenWebUI's spec changed ({deployed} → {wanted})"
    if observed.kamal is not None and wanted in observed.kamal.retained:
        reason = f"{since}, {changed}; version {wanted} is still on the server: rolling back to it"
        return KamalRollback(version=wanted, reason=reason)
    return KamalDeploy(version=wanted, reason=f"{since}, {changed}")


def kamal_actions(desired: DesiredState, observed: Observed, since: str) -> list[Action]:
    """Deploy or roll back OpenWebUI's version; renew its certificate, then deploy the same
    version so kamal-proxy serves the new one (a deploy, never a rollback)."""
    version = _version_action(desired, observed, since)
    cert = observed.kamal.certificate if observed.kamal else None
    renew = renewal_due(cert, observed.at) if cert is not None and observed.at is not None else None
    wanted = deploy_hash(desired)
    if renew is None or wanted is None or observed.deployed.openwebui_spec_hash is None:
        return [version] if version else []
    if held_back(desired, observed) is not None:  # renewed with the next deploy of a fixed spec
        return [version] if version else []
    if version is None or isinstance(version, KamalRollback):
        version = KamalDeploy(version=wanted, reason="kamal-proxy serves the renewed certificate")
    return [renew, version]


def link_actions(
    desired: DesiredState, observed: Observed, container: EnsureContainer | None
) -> list[Action]:
    """The links OpenWebUI needs to reach Ollama that are missing. A container (re)created in
    this pass is on its own network only (with the alias) once it is up."""
    kamal = observed.kamal
    if desired.openwebui is None or kamal is None:
        return []
    ollama = desired.ollama.container
    fresh = container is not None and container.op != "start"
    on = () if fresh or observed.container is None else observed.container.networks
    links = []
    if kamal.kamal_network and KAMAL_NETWORK not in on:
        links.append(NetworkLink(container=ollama.name, network=KAMAL_NETWORK, alias=OLLAMA_ALIAS))
    links += [
        NetworkLink(container=a.name, network=ollama.network)
        for a in kamal.apps
        if ollama.network not in a.networks
    ]
    if not links:
        return []
    return [
        LinkNetworks(links=tuple(links), reason=f"OpenWebUI reaches Ollama as http://{OLLAMA_ALIAS}:11434")
    ]


def _free_port(desired: DesiredState, kamal: KamalObs) -> list[Action]:
    webui = desired.openwebui
    running = tuple(a.name for a in kamal.apps if a.running)
    if webui is None or webui.exposure.mode != "published" or not running:
        return []
    reason = (
        "without kamal-proxy old and new cannot overlap; the old one is started again if the new one fails"
    )
    return [FreePort(containers=running, port=webui.exposure.port, reason=reason)]


def hook_actions(
    desired: DesiredState, observed: Observed, container: EnsureContainer | None, hook: Hook
) -> list[Action]:
    """What a Kamal hook makes sure of on this host: the Ollama container as the planner would
    have it, the networks linked, and (pre-app-boot, published mode) the port freed."""
    actions: list[Action] = [container] if container is not None else []
    actions += link_actions(desired, observed, container)
    if hook == "pre-app-boot" and observed.kamal is not None:
        actions += _free_port(desired, observed.kamal)
    return actions
