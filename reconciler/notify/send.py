"""Send notices through Apprise to the URLs of server.yaml `notify:`.

A URL is resolved through the one secrets resolver for the host it goes to (`to`), only
when a notice is sent, and never leaves this module: events name the target by its host and
reference, a body never contains the URL (it is scrubbed out, should a message quote it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

import apprise

from reconciler.desired.schema import NotifyTarget
from reconciler.notify.decide import Notice
from reconciler.secrets import SecretUnavailable, resolve_secret

# Schemes whose host part is where the notification goes (Apprise's webhook and Gotify
# plugins): it must be the `to` the secrets policy allowed. Other schemes name a service.
HOST_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms", "gotify", "gotifys"})
Emit = Callable[..., None]

logging.getLogger("apprise").setLevel(logging.CRITICAL)  # its log lines may quote a URL


def _wrong_host(url: str, to: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme.lower() in HOST_SCHEMES and (parts.hostname or "").lower() != to:
        return f"its URL does not point at {to}"
    return None


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "[secret]") if secret else text


def send(targets: list[NotifyTarget], notices: list[Notice], emit: Emit) -> list[Notice]:
    """Send each notice to the targets that want its event; the notices delivered to at least
    one target (or wanted by none) are returned, so a failed send is tried again next time."""
    delivered = []
    for notice in notices:
        wanted = [t for t in targets if notice.event in t.events]
        if notice.quiet or not wanted:
            delivered.append(notice)
            continue
        if any(_deliver(t, notice, emit) for t in wanted):
            delivered.append(notice)
    return delivered


def _deliver(target: NotifyTarget, notice: Notice, emit: Emit) -> bool:
    where = {"notice": notice.event, "to": target.to, "url": target.url.describe()}
    try:
        url = resolve_secret(target.url, (target.to,))
    except SecretUnavailable as exc:
        emit("notify.failed", error=str(exc), **where)
        return False
    problem = _wrong_host(url, target.to)
    sender = apprise.Apprise()
    if problem is None and not sender.add(url):
        problem = "it is not an Apprise URL Apprise can send to"
    if problem is not None:
        emit("notify.failed", error=f"not sent to {target.url.describe()}: {problem}", **where)
        return False
    ok = sender.notify(title=_scrub(notice.title, url), body=_scrub(notice.body, url))
    emit(
        "notify.sent" if ok else "notify.failed",
        **where,
        **({} if ok else {"error": "Apprise could not send it"}),
    )
    return bool(ok)
