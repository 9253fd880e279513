"""Which secrets a commit may use and where each one goes (pure: no I/O).

A secret reference names a secret; the server's owner decides, outside git, which names may
be used and where each may be sent (`/etc/reconciler/reconciler.toml`, read by
`reconciler.serverconfig`):

    [secrets]
    dir = "/etc/reconciler/secrets"   # {file: NAME} resolves only to a file in this folder
    env = ["OPENAI_API_KEY"]          # the only names {env: NAME} may use
    [secrets.send_to]                 # secret NAME → the hosts it may be sent to, besides this one
    OPENAI_API_KEY = ["api.openai.com"]
    TAVILY_KEY = ["openwebui-env:TAVILY_API_KEY"]   # a secret given to an OpenWebUI setting

`secret_uses` says, for every reference in a desired state, where its value would travel
(the hosts and the container image it is handed to); `refusal` says why a use is not allowed
by a policy. A commit picks among the secrets and destinations the owner allowed, never
both a secret and a host of its own choosing. This machine (loopback) and the default
OpenWebUI image are always allowed destinations.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pydantic import BaseModel

from reconciler.desired.redact import shown
from reconciler.desired.schema import DesiredState, OllamaSpec, OpenWebUISpec, SecretRef, ServerSpec

Path = tuple[str | int, ...]
DEFAULT_CONFIG = "/etc/reconciler/reconciler.toml"
DEFAULT_DIR = "/etc/reconciler/secrets"
IMAGE_PREFIX = "image:"
# An `env` setting of OpenWebUI given a secret: OpenWebUI sends it wherever that setting's
# service is, so the owner names the setting itself (`openwebui-env:TAVILY_API_KEY`).
SETTING_PREFIX = "openwebui-env:"


@dataclass(frozen=True)
class SecretPolicy:
    """What the server's owner allows. `present` is False when the config file is missing:
    then no secret may be used."""

    source: str = DEFAULT_CONFIG
    present: bool = False
    dir: str | None = None
    env: frozenset[str] = frozenset()
    send_to: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class SecretUse:
    """One reference, where it is written, and every destination its value reaches."""

    file: str
    path: Path
    ref: SecretRef
    destinations: tuple[str, ...]


def host_of(address: str) -> str:
    """The host of a URL, `host:port` or `[v6]:port`, lower-cased, without brackets."""
    text = address.strip()
    if "://" in text:
        return (urlsplit(text).hostname or "").lower()
    if text.startswith("["):
        return text[1:].split("]", 1)[0].lower()
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text.lower()


def image_repository(image: str) -> str:
    """`ghcr.io/open-webui/open-webui:v0.12.4@sha256:…` → `ghcr.io/open-webui/open-webui`."""
    name = image.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def is_this_host(destination: str) -> bool:
    if destination == "localhost":
        return True
    try:
        return ipaddress.ip_address(destination).is_loopback
    except ValueError:
        return False


def _default_image() -> str:
    return IMAGE_PREFIX + image_repository(str(OpenWebUISpec.model_fields["image"].default))


def always_allowed(destination: str) -> bool:
    return is_this_host(destination) or destination == _default_image()


def _refs(node: object, path: Path) -> Iterator[tuple[Path, SecretRef]]:
    if isinstance(node, SecretRef):
        yield path, node
    elif isinstance(node, BaseModel):
        for name, info in type(node).model_fields.items():
            yield from _refs(getattr(node, name), (*path, info.alias or name))
    elif isinstance(node, list | tuple):
        for index, item in enumerate(node):
            yield from _refs(item, (*path, index))
    elif isinstance(node, dict):
        for key, item in node.items():
            yield from _refs(item, (*path, str(key)))


def _webui_destinations(webui: OpenWebUISpec, path: Path) -> tuple[str, ...] | None:
    servers = tuple(host_of(h) for h in webui.kamal.servers)
    in_container = (*servers, IMAGE_PREFIX + image_repository(webui.image))
    match path:
        case ("cloud", int(index), "api_key"):
            return (host_of(webui.cloud[index].base_url), *in_container)
        case ("kamal", "registry", "password"):
            return (host_of(webui.kamal.registry.server), *servers)
        case ("kamal", "webui_secret_key"):
            return in_container
        case ("env", str(name)):
            return (*in_container, SETTING_PREFIX + name)
        case ("users", int(index), "password"):
            admin = webui.admin() if webui.auth else None
            if admin is not None and webui.users[index] is admin:
                return (*in_container, "127.0.0.1")  # WEBUI_ADMIN_PASSWORD, and the sign-in
            return ("127.0.0.1",)  # the reconciler creates the account through the API on loopback
        case ("admin_token",):
            return ("127.0.0.1",)  # the reconciler calls OpenWebUI's API on loopback
    return None


def _ollama_destinations(ollama: OllamaSpec, path: Path) -> tuple[str, ...] | None:
    match path:
        case ("registries", int(index), *_):
            registry = ollama.registries[index]
            hosts = [host_of(registry.host)]
            if registry.url:
                hosts.append(host_of(registry.url))
            return tuple(hosts)
    return None


def _server_destinations(server: ServerSpec, path: Path) -> tuple[str, ...] | None:
    match path:
        case ("notify", int(index), "url"):
            return (server.notify[index].to,)
    return None


def secret_uses(
    ollama: OllamaSpec, webui: OpenWebUISpec | None, server: ServerSpec | None = None
) -> list[SecretUse]:
    """Every secret reference of the state with its destinations. A reference in a field
    this table does not know gets no destination, so `refusal` refuses it: a new secret
    field is allowed only once it says where its value goes."""
    uses: list[SecretUse] = []
    if server is not None:
        for path, ref in _refs(server, ()):
            uses.append(SecretUse("server.yaml", path, ref, _dedupe(_server_destinations(server, path))))
    for path, ref in _refs(ollama, ()):
        uses.append(SecretUse("ollama.yaml", path, ref, _dedupe(_ollama_destinations(ollama, path))))
    if webui is not None:
        for path, ref in _refs(webui, ()):
            uses.append(SecretUse("openwebui.yaml", path, ref, _dedupe(_webui_destinations(webui, path))))
    return uses


def uses_of(desired: DesiredState) -> list[SecretUse]:
    return secret_uses(desired.ollama, desired.openwebui, desired.server)


def destinations_of(desired: DesiredState, ref: SecretRef) -> tuple[str, ...]:
    """Everywhere `ref`'s value goes in this state (every field that names it)."""
    found: list[str] = []
    for use in uses_of(desired):
        if use.ref == ref:
            found += use.destinations or ("(unknown)",)
    return _dedupe(tuple(found)) or ("(unknown)",)


def _dedupe(items: tuple[str, ...] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items or ()))


def refusal(policy: SecretPolicy, ref: SecretRef, destinations: tuple[str, ...]) -> tuple[str, str] | None:
    """(message, hint) when `policy` does not allow sending `ref` to `destinations`."""
    name = ref.env or ref.file or ""
    if not policy.present:
        return (
            f"secret {ref.describe()} cannot be used: this server allows no secrets "
            f"({policy.source} does not exist)",
            f"create {policy.source} with a [secrets] table (dir = {DEFAULT_DIR!r}, env = [...]); "
            "see docs/threat-model.md",
        )
    if ref.file is not None and policy.dir is None:
        return (
            f"secret {ref.describe()} cannot be used: {policy.source} sets no secrets directory",
            f"set [secrets] dir = {DEFAULT_DIR!r} in {policy.source} and put the file there",
        )
    if ref.env is not None and ref.env not in policy.env:
        return (
            f"secret {ref.describe()} cannot be used: {ref.env} is not in the env allow-list "
            f"of {policy.source}",
            f"on the server, add {ref.env!r} to [secrets] env in {policy.source}, or use "
            "{file: NAME} in the secrets directory",
        )
    allowed = set(policy.send_to.get(name, ()))
    for destination in destinations or ("(unknown)",):
        if destination == "(unknown)":
            return (
                f"secret {ref.describe()} is in a field that does not say where its value goes",
                "report this: the reconciler refuses a secret it cannot account for",
            )
        if not always_allowed(destination) and destination not in allowed:
            return (
                f"secret {ref.describe()} would be sent to {shown(destination)}, which {policy.source} "
                "does not allow for it",
                f"if that is intended, on the server add it to [secrets.send_to] in {policy.source}: "
                f'{name} = ["{destination}"]',
            )
    return None


def use_refusal(policy: SecretPolicy, use: SecretUse) -> tuple[str, str] | None:
    return refusal(policy, use.ref, use.destinations or ("(unknown)",))
