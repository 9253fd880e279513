"""What `validate` advises beside the problems: valid states that will not work as meant
(pure). Typed by kind; the text is for people."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from reconciler.desired.schema import DesiredState

AdviceKind = Literal["voice_needs_https"]


@dataclass(frozen=True)
class Advice:
    kind: AdviceKind
    file: str
    field: str
    message: str
    fix: str


def _lan(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return not ip.is_loopback  # 0.0.0.0 / :: included: they serve the LAN too


def voice_over_http(desired: DesiredState) -> Advice | None:
    """Browsers give a page the microphone only on HTTPS or on localhost (a secure context),
    so voice chat served over plain HTTP works on the server itself and nowhere else."""
    webui = desired.openwebui
    if webui is None or not webui.voice.enabled:
        return None
    exposure = webui.exposure
    if exposure.mode == "proxy" and exposure.tls.enabled:
        return None
    addresses = exposure.addresses if exposure.addresses is not None else desired.server.lan_addresses
    lan = [a for a in addresses if _lan(a)]
    if not lan:
        return None
    return Advice(
        kind="voice_needs_https",
        file="openwebui.yaml",
        field="voice.enabled",
        message=f"voice is on but OpenWebUI is served over plain HTTP to {', '.join(lan)}: browsers "
        "give the microphone only on HTTPS or localhost, so voice works on the server itself only",
        fix="serve it over HTTPS with the local CA: exposure: {mode: proxy, tls: {enabled: true}} "
        "(see desired_state/OPENWEBUI.md to trust the CA on phones and laptops), or set "
        "voice.enabled: false",
    )


def advice(desired: DesiredState) -> list[Advice]:
    return [a for a in (voice_over_http(desired),) if a is not None]
