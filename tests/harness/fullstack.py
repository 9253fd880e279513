"""The whole example desired state on this machine, for the README's demo and the e2e tests.

    with full_stack(progress=print, cloud=True) as fs:
        fs.apply()                  # `reconciler apply` of the bare repo: Ollama, models, Kamal, API
        fs.ops.start_serve(env=fs.env)

What comes up, all on this machine and offline:
- the real Docker engine; the fake Ollama image (the reconciler creates its container); the
  OpenWebUI image built from the real `open-webui` package (`openwebui_image.py`, tagged as
  the official image so `desired_state/openwebui.yaml`'s `image:` is used as it is);
- a registry holding small copies of the example's models (same names, architectures and
  GGUF shapes as the real ones, a few MiB each) and a second one Kamal pushes OpenWebUI to,
  whose storage is kept under /var/cache/reconciler-tests/kamal-registry so OpenWebUI's ~1 GB
  of compressed layers are pushed once, not on every run (a fresh registry costs ~2.5 min);
- an sshd on 127.0.0.1 letting root in with a generated key, so the real Kamal deploys to this
  machine over SSH as it would to a server;
- with `cloud=True`, an OpenAI-compatible "cloud" endpoint: another fake Ollama serving `/v1`
  with an API key, on Ollama's network as `cloud.test`, its key passed to the reconciler by
  reference (`{env: RCL_CLOUD_API_KEY}`);
- the bare desired-state repo made by `reconciler init` from `desired_state/` (every file,
  knowledge included), with model names pointing at the local registry, the GPU simulated (an
  RTX 3070's 8 GiB), OpenWebUI served as the example says — HTTPS through kamal-proxy with
  the reconciler's LAN CA (the harness's stand-in image `basecamp/kamal-proxy:v0.9.2`, which
  Kamal boots unchanged) — on ports of its own, on 127.0.0.1 and one non-loopback address of
  this machine (`lan_address()`, the "LAN" a phone would open), and Kamal pointed at the sshd
  and the registry; a clone to push from. Kamal's one `kamal-proxy` container and its state
  volume are removed before (a leftover would be started as it is) and after.

Everything it starts is written to a manifest (a JSON file when a path is given) as it starts,
and removed from that manifest at the end, or by `teardown_manifest(path)` from another
process (`scripts/demo.sh --down`). Images are a cache and stay.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import psutil
import yaml
from cryptography import x509

from reconciler.labels import KAMAL_NETWORK
from reconciler.openwebui.client import OpenWebUIClient, connect
from reconciler.serverconfig import CONFIG_ENV
from tests.e2e.gitops import GitOps
from tests.e2e.stack import Stack
from tests.harness.dockerd import ensure_dockerd
from tests.harness.images import TEST_LABEL, ensure_base_image, ensure_fake_ollama_image
from tests.harness.kamal_fixtures import Sshd, running_sshd
from tests.harness.kamal_proxy_image import ensure_kamal_proxy_image
from tests.harness.openwebui import CACHE
from tests.harness.openwebui_image import BROKEN_TAG, OFFICIAL_TAG, ensure_openwebui_image
from tests.harness.plugin import wait_for_ollama
from tests.harness.registry import Registry, free_port
from tests.harness.server_config import write_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "desired_state"
FAMILY = ROOT / "examples" / "family"
KAMAL_REGISTRY_STORAGE = CACHE / "kamal-registry"
WRAPPER_REPOSITORY = "openwebui-local"  # the example's default kamal.image: one repo, pushed once
CLOUD_ALIAS = "cloud.test"
CLOUD_KEY_ENV = "RCL_CLOUD_API_KEY"
CLOUD_MODEL = "gpt-4o-mini"
KiB, MiB, GiB = 1024, 2**20, 2**30

Progress = Callable[[str], None]

# The example's models as small copies: (model, tag, architecture, blocks, heads, kv heads,
# embedding length — as in the real models' GGUF headers — and the copy's file size).
MODELS: dict[str, tuple[str, str, str, int, int, int, int, int]] = {
    "llama3:8b-instruct-q4_K_M": ("llama3", "8b-instruct-q4_K_M", "llama", 32, 32, 8, 4096, 6 * MiB),
    "phi3:mini": ("phi3", "mini", "phi3", 32, 32, 32, 3072, 3 * MiB),
    "deepseek-r1:7b": ("deepseek-r1", "7b", "qwen2", 28, 28, 4, 3584, 5 * MiB),
    "nomic-embed-text": ("nomic-embed-text", "latest", "nomic-bert", 12, 12, 12, 768, 1 * MiB),
}


# ── what was started, so it can be removed (also from another process) ──────────────────────


@dataclass
class Manifest:
    path: Path | None = None
    pids: list[int] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)  # Kamal services: containers and images
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    owner_pid: int = field(default_factory=os.getpid)

    def add(self, kind: str, value: Any) -> None:
        getattr(self, kind).append(value)
        self.save()

    def save(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            data = {k: v for k, v in asdict(self).items() if k != "path"}
            self.path.write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls(path=path, **json.loads(path.read_text()))

    def teardown(self, client: docker.DockerClient) -> list[str]:
        """Remove everything listed, newest first; return what was removed."""
        done: list[str] = []
        for pid in reversed(self.pids):
            if _stop_pid(pid):
                done.append(f"process {pid}")
        for service in self.services:
            for c in client.containers.list(all=True, filters={"label": f"service={service}"}):
                with contextlib.suppress(docker.errors.APIError):
                    c.remove(force=True)
                    done.append(f"container {c.name}")
        for name in reversed(self.containers):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                client.containers.get(name).remove(force=True)
                done.append(f"container {name}")
        return done + self._teardown_rest(client)

    def _teardown_rest(self, client: docker.DockerClient) -> list[str]:
        done: list[str] = []
        for service in self.services:
            for image in client.images.list(filters={"label": f"service={service}"}):
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(str(image.id), force=True)
                    done.append(f"image {image.tags[0] if image.tags else image.short_id}")
        for name in reversed(self.volumes):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                client.volumes.get(name).remove(force=True)
                done.append(f"volume {name}")
        for name in reversed(self.networks):
            done += _remove_network(client, name, force=name != KAMAL_NETWORK)
        for path in reversed(self.dirs):
            if Path(path).exists():
                shutil.rmtree(path, ignore_errors=True)
                done.append(f"directory {path}")
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        return done


def _stop_pid(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def _remove_network(client: docker.DockerClient, name: str, *, force: bool) -> list[str]:
    """Our own networks are emptied first; Kamal's shared `kamal` network only when empty."""
    for net in client.networks.list(names=[name]):
        if net.name != name:
            continue
        net.reload()
        if net.containers and not force:
            return []
        for container in net.containers:
            with contextlib.suppress(docker.errors.APIError):
                net.disconnect(container, force=True)
        with contextlib.suppress(docker.errors.APIError):
            net.remove()
            return [f"network {name}"]
    return []


def teardown_manifest(path: Path) -> list[str]:
    """`demo.sh --down`: remove what a (kept, or killed) run listed in its manifest."""
    manifest = Manifest.load(path)
    client = docker.from_env(timeout=120)
    try:
        return manifest.teardown(client)
    finally:
        client.close()


# ── the stack ────────────────────────────────────────────────────────────────────────────────


@dataclass
class Cloud:
    url: str  # from this machine (the test reads the fake's record here)
    key: str  # the secret the reconciler passes by reference; never in git, logs or the page
    model: str  # the model id it serves (`/v1/models`)


@dataclass
class FullStack:
    client: docker.DockerClient
    root: Path
    manifest: Manifest
    registry: Registry
    kamal_registry: Registry
    sshd: Sshd
    stack: Stack
    ops: GitOps
    local: dict[str, str]  # example model name → its name in the local registry
    service: str
    data_volume: str
    webui_port: int
    cloud: Cloud | None
    env: dict[str, str]  # what `serve` and `apply` run with (the cloud key's variable)

    lan_address: str  # a non-loopback address of this machine kamal-proxy also serves on

    @property
    def webui_url(self) -> str:
        """OpenWebUI through kamal-proxy (the stand-in), HTTPS with the reconciler's LAN CA."""
        return f"https://127.0.0.1:{self.webui_port}"

    @property
    def lan_url(self) -> str:
        return f"https://{self.lan_address}:{self.webui_port}"

    @property
    def ca_path(self) -> Path:
        return self.state_dir / "tls" / "ca.crt"

    def verify(self) -> ssl.SSLContext:
        """Trusts only the reconciler's LAN CA."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def served_certificate(self) -> x509.Certificate:
        """The certificate kamal-proxy serves on the LAN address (verified against the CA)."""
        with (
            socket.create_connection((self.lan_address, self.webui_port), timeout=10) as raw,
            self.verify().wrap_socket(raw, server_hostname=self.lan_address) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)

    def http(self, timeout: float = 30, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.webui_url, verify=self.verify(), timeout=timeout, **kwargs)

    @property
    def ollama_url(self) -> str:
        return self.stack.url

    @property
    def state_dir(self) -> Path:
        return self.ops.state_dir

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "reconciler.cli", *args]

    def apply(
        self, *extra: str, capture: bool = True, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        """`reconciler apply` of the bare repo's head, as the owner would run it once."""
        command = self.cli("apply", "--repo", str(self.ops.bare), "--state-dir", str(self.state_dir), *extra)
        return subprocess.run(
            command,
            env={**os.environ, **self.env},
            capture_output=capture,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start_serve(self) -> None:
        self.ops.start_serve(env=self.env)
        assert self.ops.proc is not None
        self.manifest.add("pids", self.ops.proc.pid)

    def webui(self, timeout: float = 60) -> OpenWebUIClient:
        """A client signed in as OpenWebUI's built-in admin (no-login mode)."""
        return connect(self.webui_url, auth=False, timeout=timeout, http=self.http(timeout))

    def token(self) -> str:
        """The built-in admin's session token (no-login mode), as the browser gets it."""
        with self.http() as http:
            answer = http.post("/api/v1/auths/signin", json={"email": "", "password": ""})
        answer.raise_for_status()
        return str(answer.json()["token"])

    def chat_completion(self, model: str, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """One chat through OpenWebUI's own API (what its page sends), not streamed."""
        with self.http(timeout=180) as http:
            answer = http.post(
                "/api/chat/completions",
                headers={"Authorization": f"Bearer {self.token()}"},
                json={"model": model, "messages": messages, "stream": False, **extra},
            )
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        return body

    def chat(self, model: str, messages: list[dict[str, Any]], **extra: Any) -> str:
        return str(self.chat_completion(model, messages, **extra)["choices"][0]["message"]["content"])

    def running_webui(self) -> list[Any]:
        found = self.client.containers.list(filters={"label": f"service={self.service}"})
        return [c for c in found if c.labels.get("role") == "web"]

    def ollama_events(self, kind: str | None = None) -> list[dict[str, Any]]:
        events = httpx.get(f"{self.ollama_url}/__fake/events", timeout=10).json()["events"]
        return [e for e in events if kind is None or e.get("type") == kind]

    def cloud_events(self, kind: str | None = None) -> list[dict[str, Any]]:
        assert self.cloud is not None
        events = httpx.get(f"{self.cloud.url}/__fake/events", timeout=10).json()["events"]
        return [e for e in events if kind is None or e.get("type") == kind]


def _lock_cache(progress: Progress) -> tuple[Path | None, Any]:
    """The Kamal registry's kept storage, if no other run is using it (else a temporary one)."""
    KAMAL_REGISTRY_STORAGE.mkdir(parents=True, exist_ok=True)
    handle = (KAMAL_REGISTRY_STORAGE.parent / ".kamal-registry.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        progress("another run holds the cached OpenWebUI registry: pushing OpenWebUI afresh (~3 min)")
        return None, None
    return KAMAL_REGISTRY_STORAGE, handle


@contextlib.contextmanager
def kamal_registry(
    client: docker.DockerClient, progress: Progress = lambda _line: None
) -> Iterator[Registry]:
    """The registry Kamal pushes OpenWebUI to, on a network of its own (its alias must not
    shadow the model registry's), with the kept storage when no other run holds it."""
    storage, lock = _lock_cache(progress)
    network = client.networks.create(
        f"rcl-kreg-{uuid.uuid4().hex[:8]}", driver="bridge", labels=dict(TEST_LABEL)
    )
    try:
        registry = Registry(client, network, storage=storage)
        try:
            yield registry
        finally:
            registry.stop()
    finally:
        _remove_network(client, str(network.name), force=True)
        if lock is not None:
            lock.close()


def _push_models(registry: Registry, progress: Progress) -> dict[str, str]:
    local = {}
    for name, (model, tag, arch, blocks, heads, kv, emb, size) in MODELS.items():
        pushed = registry.push_model(
            model,
            tag,
            arch=arch,
            block_count=blocks,
            head_count=heads,
            head_count_kv=kv,
            embedding_length=emb,
            size_bytes=size,
            seed=model,
            pooling_type=1 if arch == "nomic-bert" else None,  # an embedding model (mean pooling)
        )
        local[name] = pushed.name
        progress(f"  {name} -> {pushed.name} ({pushed.total_size / MiB:.1f} MiB)")
    return local


def _start_cloud(
    client: docker.DockerClient, image: str, network: str, registry: Registry, manifest: Manifest
) -> Cloud:
    """The "cloud": a fake Ollama with an API key on its `/v1`, serving one model by name."""
    key = "sk-rcl-" + secrets.token_hex(16)
    port = free_port()
    name = f"rcl-cloud-{uuid.uuid4().hex[:8]}"
    manifest.add("containers", name)
    container = client.containers.run(
        image,
        name=name,
        detach=True,
        labels=dict(TEST_LABEL),
        environment={"FAKE_OPENAI_API_KEY": key},
        ports={"11434/tcp": ("127.0.0.1", port)},
        network=network,
        networking_config={network: client.api.create_endpoint_config(aliases=[CLOUD_ALIAS])},
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_ollama(url, container)
    source = registry.push_model(CLOUD_MODEL, "latest", size_bytes=2 * MiB, seed="cloud")
    with httpx.Client(base_url=url, timeout=60) as http:
        http.post(
            "/api/pull", json={"model": source.name, "insecure": True, "stream": False}
        ).raise_for_status()
        http.post(
            "/api/create", json={"model": CLOUD_MODEL, "from": source.name, "stream": False}
        ).raise_for_status()
        http.request("DELETE", "/api/delete", json={"model": source.name}).raise_for_status()
        http.delete("/__fake/events")
    return Cloud(url=url, key=key, model=f"{CLOUD_MODEL}:latest")


@contextlib.contextmanager
def _server_config(path: str | None) -> Iterator[None]:
    """`$RECONCILER_CONFIG` for this process (and so the hooks its pushes run) while inside."""
    if path is None:
        yield
        return
    saved = os.environ.get(CONFIG_ENV)
    os.environ[CONFIG_ENV] = path
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(CONFIG_ENV, None)
        else:
            os.environ[CONFIG_ENV] = saved


def _allow_cloud_key(root: Path, cloud: Cloud, files: Mapping[str, str]) -> dict[str, str]:
    """The server's reconciler.toml allowing the cloud key's variable, sent to the cloud only
    (besides this machine and OpenWebUI's image, and the harness's broken twin of that image,
    which the lifecycle test deploys), and the secret `files` in its secrets directory; the
    environment `apply` and `serve` run in."""
    send_to = {CLOUD_KEY_ENV: [CLOUD_ALIAS, "image:" + BROKEN_TAG.split(":", 1)[0]]}
    config = write_config(root / "etc" / "reconciler.toml", env=[CLOUD_KEY_ENV], files=files, send_to=send_to)
    return {CLOUD_KEY_ENV: cloud.key, CONFIG_ENV: str(config)}


def lan_address() -> str:
    """A non-loopback IPv4 address of this machine (a real interface first, else a bridge's)."""
    found: list[tuple[bool, str]] = []
    for name, addresses in psutil.net_if_addrs().items():
        for a in addresses:
            if a.family.name == "AF_INET" and not ipaddress.ip_address(a.address).is_loopback:
                found.append((name.startswith(("docker", "br-", "veth")), a.address))
    if not found:
        raise RuntimeError("this machine has no non-loopback IPv4 address to serve the LAN origin on")
    return sorted(found)[0][1]


KAMAL_PROXY = "kamal-proxy"  # the one name Kamal gives it (configuration/proxy/boot.rb)
KAMAL_PROXY_CONFIG = "kamal-proxy-config"  # its state volume (commands/proxy.rb)


def _fresh_kamal_proxy(client: docker.DockerClient, manifest: Manifest) -> None:
    """The stand-in loaded as `basecamp/kamal-proxy:v0.9.2`, and no proxy an earlier run left:
    Kamal would start that one as it is (`start || run`), with its ports and its saved routes."""
    ensure_kamal_proxy_image(client)
    for old in client.containers.list(all=True, filters={"name": f"^{KAMAL_PROXY}$"}):
        if old.labels.get("reconciler.test") != "1":
            raise RuntimeError("a kamal-proxy that is not the harness's runs on this engine")
        old.remove(force=True)
    with contextlib.suppress(docker.errors.NotFound):
        client.volumes.get(KAMAL_PROXY_CONFIG).remove(force=True)
    manifest.add("containers", KAMAL_PROXY)
    manifest.add("volumes", KAMAL_PROXY_CONFIG)


def _desired_files(
    repo: Path, stack: Stack, local: dict[str, str], kamal: dict[str, Any], port: int, cloud: Cloud | None
) -> None:
    """desired_state/ with the names and addresses of this machine."""
    shutil.copytree(EXAMPLE / "knowledge", repo / "knowledge", dirs_exist_ok=True)
    stack.ollama = _ollama_yaml(stack, local)
    stack.server = yaml.safe_load((EXAMPLE / "server.yaml").read_text())
    stack.server["lan_addresses"] = []
    stack.write()
    (repo / "openwebui.yaml").write_text(
        yaml.safe_dump(_openwebui_yaml(local, kamal, port, cloud), sort_keys=False)
    )


def _ollama_yaml(stack: Stack, local: dict[str, str], example: Path = EXAMPLE) -> dict[str, Any]:
    ollama: dict[str, Any] = yaml.safe_load((example / "ollama.yaml").read_text())
    for entry in ollama["models"]:
        entry["name"] = local[entry["name"]]
    for entry in ollama.get("derived", []):
        entry["from"] = local[entry["from"]]
    bench = ollama.get("benchmarks") or {}
    host = stack.registry.host

    def elsewhere(name: str) -> str:
        return local.get(name) or f"{host}/library/{name}"

    bench["models"] = [elsewhere(n) for n in bench.get("models", [])]
    bench["candidates"] = {
        elsewhere(k): [elsewhere(v) for v in vs] for k, vs in (bench.get("candidates") or {}).items()
    }
    bench["on_change"] = False  # the demo and tests must not depend on the hour: no night benchmark
    container = dict(stack.ollama["container"])  # the harness's fake, named for this run
    container["env"] = {
        **ollama["container"]["env"],
        "OLLAMA_CONTEXT_LENGTH": 4096,
        "extra": {"FAKE_OLLAMA_GPU_VRAM": str(8 * GiB)},  # an RTX 3070
    }
    ollama["container"] = container
    ollama["registries"] = stack.ollama["registries"]
    return ollama


def _openwebui_yaml(
    local: dict[str, str], kamal: dict[str, Any], port: int, cloud: Cloud | None, example: Path = EXAMPLE
) -> dict[str, Any]:
    webui: dict[str, Any] = yaml.safe_load((example / "openwebui.yaml").read_text())
    if webui["image"] != OFFICIAL_TAG:
        raise RuntimeError(
            f"desired_state/openwebui.yaml names {webui['image']}; the harness builds {OFFICIAL_TAG}"
        )
    # the example's HTTPS through kamal-proxy, on ports of their own and on loopback plus one
    # non-loopback address of this machine (the "LAN" a phone would open)
    webui["exposure"] = {
        **webui["exposure"],
        "https_port": port,
        "http_port": free_port(),
        "addresses": ["127.0.0.1", lan_address()],
    }
    webui["default_models"] = [local[m] for m in webui["default_models"]]
    webui["task_model"] = local[webui["task_model"]]
    webui["rag"]["embedding_model"] = local[webui["rag"]["embedding_model"]]
    for preset in webui["presets"]:
        preset["base"] = local.get(preset["base"], preset["base"])
    if "model_access" in webui:
        webui["model_access"] = {local.get(k, k): v for k, v in webui["model_access"].items()}
    if cloud is not None:
        webui["cloud"] = [
            {
                "name": "cloud",
                "base_url": f"http://{CLOUD_ALIAS}:11434/v1",
                "api_key": {"env": CLOUD_KEY_ENV},
                "models": [cloud.model],
            }
        ]
        webui["presets"].append(
            {
                "id": "cloud-mini",
                "name": "Cloud mini",
                "base": f"cloud/{cloud.model}",
                "system": "You are the cloud model. Keep the work context.",
                "knowledge": ["work"],
            }
        )
    webui["kamal"] = kamal
    return webui


def family_files(fs: FullStack) -> dict[str, str]:
    """examples/family/ for this machine, as one commit over the running example (the family
    moves in): its models under their local names, its knowledge, Kamal, ports and addresses as
    they are. The example's own knowledge folders are for the caller to remove."""
    current = yaml.safe_load((fs.ops.work / "openwebui.yaml").read_text())
    webui = _openwebui_yaml(fs.local, current["kamal"], fs.webui_port, None, example=FAMILY)
    webui["exposure"] = {**webui["exposure"], "http_port": current["exposure"]["http_port"]}
    server = yaml.safe_load((FAMILY / "server.yaml").read_text())
    server["lan_addresses"] = []
    files = {
        "openwebui.yaml": yaml.safe_dump(webui, sort_keys=False),
        "ollama.yaml": yaml.safe_dump(_ollama_yaml(fs.stack, fs.local, example=FAMILY), sort_keys=False),
        "server.yaml": yaml.safe_dump(server, sort_keys=False),
    }
    for path in sorted((FAMILY / "knowledge").rglob("*")):
        if path.is_file():
            files[str(path.relative_to(FAMILY))] = path.read_text()
    return files


@contextlib.contextmanager
def full_stack(
    progress: Progress = lambda _line: None,
    *,
    cloud: bool = False,
    manifest_path: Path | None = None,
    webui_port: int | None = None,
    secret_files: Mapping[str, str] | None = None,
) -> Iterator[FullStack]:
    """`secret_files`: name → value, in the server's secrets directory (with `cloud`)."""
    ensure_dockerd()
    client = docker.from_env(timeout=600)
    manifest = Manifest(path=manifest_path)
    manifest.save()
    try:
        with _up(client, manifest, progress, cloud, webui_port, secret_files or {}) as fs:
            yield fs
    finally:
        manifest.teardown(client)
        client.close()


@contextlib.contextmanager
def _up(
    client: docker.DockerClient,
    manifest: Manifest,
    progress: Progress,
    cloud: bool,
    webui_port: int | None,
    secret_files: Mapping[str, str],
) -> Iterator[FullStack]:
    ensure_base_image(client)
    fake_image = ensure_fake_ollama_image(client)
    report = ensure_openwebui_image(client, progress)
    if report.built:
        progress(f"built {report.image} in {report.seconds:.0f} s ({report.size_bytes / GiB:.1f} GiB)")
    sfx = uuid.uuid4().hex[:8]
    root = Path(tempfile.mkdtemp(prefix="rcl-full-"))
    manifest.add("dirs", str(root))
    network = client.networks.create(f"rcl-full-{sfx}", driver="bridge", labels=dict(TEST_LABEL))
    manifest.add("networks", str(network.name))
    registry = Registry(client, network)
    manifest.add("containers", registry.container.name)
    manifest.add("dirs", str(registry.storage))
    progress("pushing small copies of the example's models to the local registry")
    local = _push_models(registry, progress)
    the_cloud = _start_cloud(client, fake_image, str(network.name), registry, manifest) if cloud else None
    with kamal_registry(client, progress) as kreg, running_sshd() as sshd:
        manifest.add("containers", kreg.container.name)
        manifest.add("networks", kreg.network_name)
        sshd_pid = sshd.key.parent / "sshd.pid"
        if sshd_pid.is_file():
            manifest.add("pids", int(sshd_pid.read_text().split()[0]))
        manifest.add("dirs", str(sshd.key.parent))
        stack = Stack(root, client, registry, network, fake_image)
        manifest.add("containers", stack.name)
        manifest.add("volumes", stack.volume)
        service, data_volume = f"openwebui-{sfx}", f"rcl-owui-data-{sfx}"
        manifest.add("services", service)
        manifest.add("volumes", data_volume)
        manifest.add("networks", KAMAL_NETWORK)
        _fresh_kamal_proxy(client, manifest)
        port = webui_port or free_port()
        kamal = {
            "service": service,
            "servers": ["127.0.0.1"],
            "ssh_port": sshd.port,
            "ssh_keys": [str(sshd.key)],
            "registry": {"server": f"127.0.0.1:{kreg.port}"},
            "image": WRAPPER_REPOSITORY,
            "data_volume": data_volume,
        }
        _desired_files(stack.repo, stack, local, kamal, port, the_cloud)
        env = _allow_cloud_key(root, the_cloud, secret_files) if the_cloud else {}
        with _server_config(env.get(CONFIG_ENV)):  # `init` and the git hooks read it too
            ops = GitOps(stack, root / "gitops")
            fs = FullStack(
                client=client,
                root=root,
                manifest=manifest,
                registry=registry,
                kamal_registry=kreg,
                sshd=sshd,
                stack=stack,
                ops=ops,
                local=local,
                service=service,
                data_volume=data_volume,
                webui_port=port,
                lan_address=lan_address(),
                cloud=the_cloud,
                env=env,
            )
            try:
                yield fs
            finally:
                ops.stop_serve()
