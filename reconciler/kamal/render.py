"""The Kamal project for OpenWebUI, rendered from the desired state (pure: no I/O).

`render(desired, version)` gives `config/deploy.yml`, the wrapper Dockerfile (`FROM` the
OpenWebUI image + the `service` label Kamal insists on) and the secrets Kamal needs, by NAME
with the references their values come from. Secret values never pass through here.

How OpenWebUI reaches Ollama: Kamal runs every app container on its own Docker network
`kamal` (`--network kamal` is hard-wired in Kamal 2.11's `docker run`), and Docker 20.10
refuses a second `--network` at create time. So the Ollama container is attached to `kamal`
with the alias `ollama`, and OpenWebUI's containers are attached to Ollama's own network,
where Ollama always has that alias (see `reconciler.plan.kamal.link_actions`, run by the
Kamal hooks). OpenWebUI is pointed at Ollama's container NAME (`http://ollama:11434` for the
example), which Docker resolves on both networks and which is unique on the engine: the alias
is not, once a second Ollama (a leftover, another stack on the same engine) sits on `kamal`,
and Docker then answers for either.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from reconciler.desired.schema import DesiredState, OpenWebUISpec, SecretRef
from reconciler.desired.webui_env import render_value
from reconciler.labels import ROLE, VERSION_LABEL
from reconciler.plan.container import bind_addresses

APP_PORT = 8080
DATA_MOUNT = "/app/backend/data"
OLLAMA_INNER_PORT = 11434
REGISTRY_SECRET = "KAMAL_REGISTRY_PASSWORD"  # noqa: S105 (a name, not a value)
WEBUI_SECRET = "WEBUI_SECRET_KEY"  # noqa: S105
OPENAI_KEYS_SECRET = "OPENAI_API_KEYS"  # noqa: S105
TLS_CERT_SECRET = "OPENWEBUI_TLS_CERTIFICATE_PEM"  # noqa: S105
TLS_KEY_SECRET = "OPENWEBUI_TLS_PRIVATE_KEY_PEM"  # noqa: S105
HOOKS = ("docker-setup", "pre-app-boot", "post-deploy")
RESPONSE_TIMEOUT_S = 600


@dataclass(frozen=True)
class SecretNeed:
    """One secret Kamal needs: its NAME, where its value comes from, never the value.

    The value is the references' values joined by `;` (OpenWebUI's list syntax). With no
    reference, `fallback` says what to use instead: `generate` (a random key kept in the
    project directory, stable across deploys), `placeholder` (a registry without auth) or
    `tls_certificate` / `tls_private_key` (the LAN certificate the reconciler keeps under its
    state directory, see `reconciler.openwebui.tls`)."""

    name: str
    refs: tuple[SecretRef, ...] = ()
    fallback: Literal["generate", "placeholder", "none", "tls_certificate", "tls_private_key"] = "none"


@dataclass(frozen=True)
class Timing:
    """How long Kamal waits for a new container; tests make these small.

    `health_interval` / `health_start_period`: in published mode Kamal waits until Docker calls
    the new container healthy, and OpenWebUI's image checks `/health` at Docker's default
    30 s interval, so every deploy (with the old version already stopped to free the port)
    would last at least 30 s however fast OpenWebUI boots; checked every 5 s it is ready as
    soon as it answers, and failures while it boots (20-30 s) do not count."""

    readiness_delay: int = 3
    deploy_timeout: int = 180
    drain_timeout: int = 10
    retain_containers: int = 3
    health_interval: int = 5
    health_start_period: int = 120


@dataclass(frozen=True)
class RenderedProject:
    service: str
    version: str
    image: str  # <registry>/<repository>, no tag
    deploy_yml: str
    dockerfile: str
    secrets: tuple[SecretNeed, ...]
    config: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def image_ref(self) -> str:
        return f"{self.image}:{self.version}"

    @property
    def secret_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.secrets)


def _webui(desired: DesiredState) -> OpenWebUISpec:
    if desired.openwebui is None:
        raise ValueError("the desired state has no openwebui.yaml: nothing for Kamal to deploy")
    return desired.openwebui


def ollama_base_url(desired: DesiredState) -> str:
    """The managed Ollama by its container name (unique on the engine, unlike the alias)."""
    return f"http://{desired.ollama.container.name}:{OLLAMA_INNER_PORT}"


def clear_env(desired: DesiredState, ollama_url: str | None = None) -> dict[str, str]:
    """OpenWebUI's non-secret settings (names from open-webui 0.12's config.py/env.py).
    `ENABLE_PERSISTENT_CONFIG=False` makes them win over what an earlier boot (or a click in the
    admin UI) stored in the database, on every start: git is the truth. `ollama_url` overrides
    the managed container's address (tests run OpenWebUI outside Docker)."""
    w = _webui(desired)
    env: dict[str, str] = {
        "OLLAMA_BASE_URL": ollama_url or ollama_base_url(desired),
        "ENABLE_OLLAMA_API": "True",
        "WEBUI_AUTH": "True" if w.auth else "False",
        "ENABLE_PERSISTENT_CONFIG": "True" if w.persistent_config else "False",
        "ENABLE_OPENAI_API": "True" if w.cloud else "False",
        "OFFLINE_MODE": "True",  # no Hugging Face downloads, no update checks: a LAN box
        "HF_HUB_OFFLINE": "1",
        "ENABLE_VERSION_UPDATE_CHECK": "False",
        "RAG_EMBEDDING_ENGINE": w.rag.embedding_engine,
        "RAG_EMBEDDING_MODEL": w.rag.embedding_model,
        "CHUNK_SIZE": str(w.rag.chunk_size),
        "CHUNK_OVERLAP": str(w.rag.chunk_overlap),
        "RAG_TOP_K": str(w.rag.top_k),
        "SCARF_NO_ANALYTICS": "true",
        "DO_NOT_TRACK": "true",
        "ANONYMIZED_TELEMETRY": "false",
    }
    if w.rag.embedding_engine == "ollama":
        env["RAG_OLLAMA_BASE_URL"] = env["OLLAMA_BASE_URL"]
    if not w.auth:
        env["ENABLE_SIGNUP"] = "False"  # nobody creates accounts: they would lock the no-login mode
    if w.default_models:
        env["DEFAULT_MODELS"] = ",".join(w.default_models)
    if w.task_model:
        env["TASK_MODEL"] = w.task_model
    if w.voice.enabled:
        env["AUDIO_STT_ENGINE"] = w.voice.stt_engine
        env["WHISPER_MODEL"] = w.voice.stt_model
        env["AUDIO_TTS_ENGINE"] = w.voice.tts_engine
        env["AUDIO_TTS_VOICE"] = w.voice.tts_voice
    else:
        env["USER_PERMISSIONS_CHAT_STT"] = "False"
        env["USER_PERMISSIONS_CHAT_TTS"] = "False"
        env["USER_PERMISSIONS_CHAT_CALL"] = "False"
    if w.cloud:
        env["OPENAI_API_BASE_URLS"] = ";".join(c.base_url for c in w.cloud)
    configs = openai_api_configs(w)
    if configs:
        env["OPENAI_API_CONFIGS"] = json.dumps(configs, separators=(",", ":"))
    # The owner's other settings (the schema refuses MANAGED_WEBUI_ENV and secret values);
    # those given by reference go to Kamal's secrets (secret_needs), not here.
    for name, value in w.env.items():
        if not isinstance(value, SecretRef):
            env[name] = render_value(name, value)
    return dict(sorted(env.items()))


def openai_api_configs(w: OpenWebUISpec) -> dict[str, dict[str, object]]:
    """Per-connection settings by connection index (routers/openai.py of open-webui 0.12.4,
    `get_all_models_responses`): with `model_ids` set, OpenWebUI lists exactly those models
    for that connection and does not fetch the provider's catalogue."""
    return {
        str(index): {"enable": True, "model_ids": list(c.models)}
        for index, c in enumerate(w.cloud)
        if c.models
    }


def secret_needs(desired: DesiredState) -> tuple[SecretNeed, ...]:
    w = _webui(desired)
    k = w.kamal
    needs = [
        SecretNeed(
            REGISTRY_SECRET,
            (k.registry.password,) if k.registry.password else (),
            "none" if k.registry.password else "placeholder",
        ),
        SecretNeed(
            WEBUI_SECRET,
            (k.webui_secret_key,) if k.webui_secret_key else (),
            "none" if k.webui_secret_key else "generate",
        ),
    ]
    if w.cloud:
        needs.append(SecretNeed(OPENAI_KEYS_SECRET, tuple(c.api_key for c in w.cloud)))
    for name, ref in sorted(w.env_secrets().items()):
        needs.append(SecretNeed(name, (ref,)))
    if tls_enabled(desired):
        needs.append(SecretNeed(TLS_CERT_SECRET, (), "tls_certificate"))
        needs.append(SecretNeed(TLS_KEY_SECRET, (), "tls_private_key"))
    return tuple(needs)


def tls_enabled(desired: DesiredState) -> bool:
    w = desired.openwebui
    return w is not None and w.exposure.mode == "proxy" and w.exposure.tls.enabled


def tls_hosts(desired: DesiredState) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(DNS names, IP addresses) the server certificate covers: the configured names, the proxy
    host, 127.0.0.1, the LAN addresses and the explicit bind addresses (never a wildcard)."""
    webui = desired.openwebui
    if webui is None:
        return (), ()
    exposure = webui.exposure
    names = list(exposure.tls.names)
    if exposure.host and exposure.host not in names:
        names.append(exposure.host)
    addresses: list[str] = ["127.0.0.1"]
    for a in [*desired.server.lan_addresses, *(exposure.addresses or [])]:
        ip = ipaddress.ip_address(str(a))
        if not ip.is_unspecified and str(ip) not in addresses:
            addresses.append(str(ip))
    return tuple(names), tuple(addresses)


def proxy_hosts(desired: DesiredState) -> list[str]:
    """The hosts kamal-proxy serves OpenWebUI on. kamal-proxy routes a request by its Host
    header (service_map.go at v0.9.2: the exact host, then `*.domain`, then a service with no
    host), and TLS needs at least one host (deploy.go), so with TLS it is every name and address
    the certificate covers: a phone opening https://192.168.1.50/ or https://gpu-box.lan/ reaches
    it. Without TLS: the one `exposure.host`, or none (every host)."""
    webui = _webui(desired)
    if tls_enabled(desired):
        names, addresses = tls_hosts(desired)
        return [*names, *addresses]
    return [webui.exposure.host] if webui.exposure.host else []


def _publish_host(address: str) -> str:
    ip = ipaddress.ip_address(address)
    return f"[{ip}]" if ip.version == 6 else str(ip)


def publish_args(desired: DesiredState) -> list[str]:
    """`<addr>:<port>:8080` for every bind address: 127.0.0.1 + LAN unless listed explicitly;
    never a wildcard unless the owner wrote one."""
    exposure = _webui(desired).exposure
    addresses = bind_addresses(exposure.addresses, desired.server.lan_addresses)
    return [f"{_publish_host(a)}:{exposure.port}:{APP_PORT}" for a in addresses]


def deploy_config(desired: DesiredState, version: str, timing: Timing | None = None) -> dict[str, Any]:
    w = _webui(desired)
    k = w.kamal
    timing = timing or Timing()
    role: dict[str, Any] = {"hosts": list(k.servers)}
    config: dict[str, Any] = {
        "service": k.service,
        "image": k.image,
        "servers": {ROLE: role},
        "registry": {
            "server": k.registry.server,
            "username": k.registry.username,
            "password": [REGISTRY_SECRET],
        },
        "ssh": {"user": k.ssh_user, "port": k.ssh_port},
        "builder": {"arch": "amd64"},
        "env": {
            "clear": clear_env(desired),
            "secret": [
                s.name
                for s in secret_needs(desired)
                if s.name not in (REGISTRY_SECRET, TLS_CERT_SECRET, TLS_KEY_SECRET)
            ],
        },
        "volumes": [f"{k.data_volume}:{DATA_MOUNT}"],
        "readiness_delay": timing.readiness_delay,
        "deploy_timeout": timing.deploy_timeout,
        "drain_timeout": timing.drain_timeout,
        "retain_containers": timing.retain_containers,
        "hooks_output": "verbose",  # what the hooks did shows in kamal's output (and our events)
    }
    if k.ssh_keys:
        config["ssh"]["keys"] = list(k.ssh_keys)
        config["ssh"]["keys_only"] = True
    if w.exposure.mode == "proxy":
        proxy: dict[str, Any] = {
            "app_port": APP_PORT,
            "healthcheck": {"path": "/health", "interval": 1, "timeout": 5},
            # kamal-proxy waits 30 s for a response's headers by default (target.go
            # ResponseHeaderTimeout): too short for a non-streamed answer of a model that must
            # load first, or a knowledge file OpenWebUI embeds before it answers
            "response_timeout": RESPONSE_TIMEOUT_S,
            "ssl": (
                {"certificate_pem": TLS_CERT_SECRET, "private_key_pem": TLS_KEY_SECRET}
                if tls_enabled(desired)
                else False
            ),
            "run": {
                "bind_ips": [
                    str(a) for a in bind_addresses(w.exposure.addresses, desired.server.lan_addresses)
                ],
                "http_port": w.exposure.http_port,
                "https_port": w.exposure.https_port,
            },
        }
        hosts = proxy_hosts(desired)
        if hosts:
            proxy["hosts"] = hosts
        config["proxy"] = proxy
    else:
        role["proxy"] = False
        role["options"] = {
            "publish": publish_args(desired),
            "health-interval": f"{timing.health_interval}s",
            "health-start-period": f"{timing.health_start_period}s",
        }
    return config


def dockerfile(desired: DesiredState, version: str) -> str:
    w = _webui(desired)
    return f'FROM {w.image}\nLABEL service="{w.kamal.service}"\nLABEL {VERSION_LABEL}="{version}"\n'


def render(desired: DesiredState, version: str, timing: Timing | None = None) -> RenderedProject:
    """Everything the project directory holds except secret values and the hook scripts."""
    if not version or not all(ch.isalnum() or ch in "._-" for ch in version):
        raise ValueError(f"{version!r} is not a Kamal version (letters, digits, '.', '_', '-')")
    w = _webui(desired)
    config = deploy_config(desired, version, timing)
    text = (
        "# Rendered by the reconciler from the desired state; edits here are overwritten.\n"
        + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    )
    return RenderedProject(
        service=w.kamal.service,
        version=version,
        image=f"{w.kamal.registry.server}/{w.kamal.image}",
        deploy_yml=text,
        dockerfile=dockerfile(desired, version),
        secrets=secret_needs(desired),
        config=config,
    )
