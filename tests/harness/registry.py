"""A real OCI registry (Debian's docker-registry, distribution 2.8) holding Ollama-style models.

The container joins a test network with the alias ``registry.test`` and listens on port P
inside; P is also published on ``127.0.0.1:P``. So the model name
``registry.test:P/library/<model>:<tag>`` works from containers on the network (pull with
``insecure=True``), while the host pushes to ``http://127.0.0.1:P``.

Models are pushed the way ``ollama push`` does (reference §3): blobs with the v2 upload API,
then a Docker v2 schema 2 manifest whose layers carry Ollama's media types.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
from docker.models.containers import Container
from docker.models.networks import Network

from tests.harness.fake_ollama.store import (
    MT_CONFIG,
    MT_MANIFEST,
    MT_MODEL,
    MT_PARAMS,
    MT_SYSTEM,
    MT_TEMPLATE,
    go_json,
)
from tests.harness.gguf import GGUFSpec, file_type_name, human_number, make_gguf
from tests.harness.images import TEST_LABEL, ensure_registry_image

REGISTRY_ALIAS = "registry.test"
LOGIN_REGISTRY_ALIAS = "registry-auth.test"
_HARNESS = Path(__file__).resolve().parent
_AUTH_CONFIG = """\
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
auth:
  token:
    realm: http://{host}/token
    service: {host}
    issuer: rcl-test-token-server
    rootcertbundle: /auth/root.crt
"""


@dataclass
class RegistryLogin:
    """Who the login registry lets in (see registry_front.py): HTTP Basic users (pull and push
    everywhere), Ollama public keys (``ssh-ed25519 …``, pull everywhere), and the namespaces
    anyone may pull."""

    users: dict[str, str] = field(default_factory=lambda: {"rcl-user": "rcl-test-password"})
    public: list[str] = field(default_factory=lambda: ["library"])
    ollama_keys: list[str] = field(default_factory=list)


class _TokenAuth(httpx.Auth):
    """The Docker token flow for the harness's own pushes: on a 401 challenge fetch a token
    from the realm with Basic credentials and retry."""

    def __init__(self, user: str, password: str, local_url: str, host: str) -> None:
        self.basic = httpx.BasicAuth(user, password)
        self.local_url, self.host = local_url, host
        self.token: str | None = None

    def auth_flow(self, request: httpx.Request) -> Any:
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        challenge = response.headers.get("www-authenticate", "")
        if response.status_code != 401 or not challenge.startswith("Bearer "):
            return
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params["realm"].replace(f"http://{self.host}", self.local_url)
        token_request = httpx.Request(
            "GET", realm, params={k: params[k] for k in ("service", "scope") if k in params}
        )
        token_response = yield next(self.basic.auth_flow(token_request))
        token_response.read()
        self.token = str(token_response.json()["token"])
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class PushedLayer:
    media_type: str
    digest: str
    size: int


@dataclass
class PushedModel:
    """What ``Registry.push_model`` stored. ``manifest_digest`` (hex, no prefix) equals the
    digest the fake — and real Ollama — reports in /api/tags, because the manifest is pushed in
    Go's compact json.Marshal form, which is what Ollama writes to disk."""

    name: str  # "registry.test:P/<ns>/<model>:<tag>" — what to pull from inside the network
    repo: str  # "<ns>/<model>"
    tag: str
    manifest: dict[str, Any]
    manifest_bytes: bytes
    config: PushedLayer
    layers: list[PushedLayer]
    spec: GGUFSpec
    gguf: bytes = field(repr=False)

    @property
    def manifest_digest(self) -> str:
        return hashlib.sha256(self.manifest_bytes).hexdigest()

    @property
    def model_layer(self) -> PushedLayer:
        return next(x for x in self.layers if x.media_type == MT_MODEL)

    @property
    def total_size(self) -> int:
        """/api/tags ``size``: all layers plus the config (server/manifest.go Manifest.Size)."""
        return self.config.size + sum(x.size for x in self.layers)

    @property
    def digests(self) -> list[str]:
        return [x.digest for x in self.layers] + [self.config.digest]


class Registry:
    """Registry container on ``network`` (alias ``registry.test``), port P inside and outside.

    With ``login``: the registry demands a token (distribution's ``auth: token``) from a token
    server on its own host:port (registry_front.py), alias ``registry-auth.test``; the harness
    pushes with the first user's credentials."""

    def __init__(
        self,
        client: docker.DockerClient,
        network: Network | str,
        *,
        name: str | None = None,
        login: RegistryLogin | None = None,
        storage: Path | None = None,
    ) -> None:
        self.client = client
        self.network_name: str = network if isinstance(network, str) else str(network.name)
        self.image = ensure_registry_image(client)
        self.port = free_port()
        self.login = login
        alias = LOGIN_REGISTRY_ALIAS if login else REGISTRY_ALIAS
        self.host = f"{alias}:{self.port}"
        self.url = f"http://127.0.0.1:{self.port}"
        # `storage`: a directory kept after stop (a cache across runs); default a temporary one
        self._own_storage = storage is None
        self.storage = storage or Path(tempfile.mkdtemp(prefix="rcl-registry-", dir="/tmp"))
        self.auth_dir: Path | None = self._write_auth(login) if login else None
        volumes = {str(self.storage): {"bind": "/var/lib/registry", "mode": "rw"}}
        run: dict[str, Any] = {"environment": {"REGISTRY_HTTP_ADDR": f"0.0.0.0:{self.port}"}}
        if self.auth_dir is not None:
            volumes[str(self.auth_dir)] = {"bind": "/auth", "mode": "rw"}
            run = {
                "environment": {"FRONT_PORT": str(self.port), "PYTHONUNBUFFERED": "1"},
                "entrypoint": ["/bin/sh", "-c"],
                "command": ["/usr/bin/docker-registry serve /auth/config.yml & exec python3 /auth/front.py"],
            }
        self.container: Container = client.containers.run(
            self.image,
            name=name or f"rcl-test-registry-{uuid.uuid4().hex[:8]}",
            detach=True,
            labels=dict(TEST_LABEL),
            ports={f"{self.port}/tcp": ("127.0.0.1", self.port)},
            volumes=volumes,
            network=self.network_name,
            networking_config={
                self.network_name: client.api.create_endpoint_config(aliases=[alias]),
            },
            **run,
        )
        auth = None
        if login:
            user, password = next(iter(login.users.items()))
            auth = _TokenAuth(user, password, self.url, self.host)
        # Connects are retried (with backoff): under a loaded engine the published port has
        # been seen to refuse a connect right after the readiness probe answered (CI, 2 cores).
        transport = httpx.HTTPTransport(retries=4)
        self.http = httpx.Client(base_url=self.url, timeout=30, auth=auth, transport=transport)
        self._wait_ready()

    def _write_auth(self, login: RegistryLogin) -> Path:
        """The token server's signing key and certificate (made here with ``cryptography``),
        the registry's config, the access rules, and the front's source."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rcl-test-token-server")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        root = Path(tempfile.mkdtemp(prefix="rcl-registry-auth-", dir="/tmp"))
        (root / "root.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        numbers = key.private_numbers()
        der = cert.public_bytes(serialization.Encoding.DER)
        signer = {
            "issuer": "rcl-test-token-server",
            "n": str(numbers.public_numbers.n),
            "d": str(numbers.d),
            "x5c": base64.b64encode(der).decode(),
        }
        (root / "signer.json").write_text(json.dumps(signer))
        (root / "config.yml").write_text(_AUTH_CONFIG.format(host=self.host))
        shutil.copy2(_HARNESS / "registry_front.py", root / "front.py")
        shutil.copy2(_HARNESS / "fake_ollama" / "ed25519.py", root / "ed25519.py")
        self._write_access(root, login)
        return root

    @staticmethod
    def _write_access(root: Path, login: RegistryLogin) -> None:
        data = {"users": login.users, "public": login.public, "ollama_keys": login.ollama_keys}
        tmp = root / ".access.json"
        tmp.write_text(json.dumps(data))
        tmp.replace(root / "access.json")

    def allow_ollama_key(self, public_key: str) -> None:
        """Let an Ollama server (its ``id_ed25519.pub`` line) pull private namespaces."""
        assert self.login is not None and self.auth_dir is not None, "not a login registry"
        self.login.ollama_keys.append(public_key.strip())
        self._write_access(self.auth_dir, self.login)

    # -- lifecycle -------------------------------------------------------------------------------
    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        ready = (200, 401) if self.login else (200,)
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v2/", timeout=5).status_code in ready:
                    return
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.2)
        logs = self.container.logs(tail=30).decode(errors="replace")
        raise RuntimeError(f"registry on {self.url} not ready: {last}\n{logs}")

    def restart(self) -> None:
        """Start the registry container again (e.g. after an engine restart) and wait for it."""
        self.container.start()
        self._wait_ready()

    def stop(self) -> None:
        self.http.close()
        with contextlib.suppress(docker.errors.NotFound):
            self.container.remove(force=True)
        if self._own_storage:
            shutil.rmtree(self.storage, ignore_errors=True)
        if self.auth_dir is not None:
            shutil.rmtree(self.auth_dir, ignore_errors=True)

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- registry v2 API -------------------------------------------------------------------------
    def has_blob(self, repo: str, digest: str) -> bool:
        return self.http.head(f"/v2/{repo}/blobs/{digest}").status_code == 200

    def upload_blob(self, repo: str, data: bytes) -> str:
        """POST /v2/<repo>/blobs/uploads/ then a monolithic PUT ?digest=; skipped if present."""
        digest = sha256_digest(data)
        if self.has_blob(repo, digest):
            return digest
        start = self.http.post(f"/v2/{repo}/blobs/uploads/")
        if start.status_code != 202:
            raise RuntimeError(f"upload start {repo}: {start.status_code} {start.text}")
        location = start.headers["Location"]
        sep = "&" if "?" in location else "?"
        put = self.http.put(
            f"{location}{sep}digest={digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if put.status_code != 201:
            raise RuntimeError(f"upload {repo} {digest}: {put.status_code} {put.text}")
        return digest

    def put_manifest(self, repo: str, tag: str, raw: bytes) -> str:
        resp = self.http.put(
            f"/v2/{repo}/manifests/{tag}", content=raw, headers={"Content-Type": MT_MANIFEST}
        )
        if resp.status_code != 201:
            raise RuntimeError(f"manifest {repo}:{tag}: {resp.status_code} {resp.text}")
        return str(resp.headers.get("Docker-Content-Digest") or sha256_digest(raw))

    def get_manifest(self, repo: str, tag: str) -> httpx.Response:
        return self.http.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": MT_MANIFEST})

    def delete_manifest(self, repo: str, tag: str) -> None:
        resp = self.get_manifest(repo, tag)
        digest = resp.headers.get("Docker-Content-Digest")
        if resp.status_code == 200 and digest:
            self.http.delete(f"/v2/{repo}/manifests/{digest}")

    # -- models ----------------------------------------------------------------------------------
    def model_name(self, model: str, tag: str, namespace: str = "library") -> str:
        return f"{self.host}/{namespace}/{model}:{tag}"

    def push_model(
        self,
        name: str,
        tag: str,
        *,
        arch: str = "llama",
        block_count: int = 4,
        head_count: int = 4,
        head_count_kv: int = 2,
        embedding_length: int = 64,
        context_length: int = 8192,
        parameter_count: int = 8_030_261_248,
        file_type: int = 15,
        size_bytes: int = 256 * 1024,
        system: str | None = None,
        template: str | None = None,
        params: dict[str, Any] | None = None,
        namespace: str = "library",
        seed: str = "",
        share_model_blob_from: PushedModel | None = None,
        pooling_type: int | None = None,
    ) -> PushedModel:
        """Build and push an Ollama model. Same GGUF arguments (name included, it is
        ``general.name``) → same model blob digest, so two tags of a model share it; pass
        ``share_model_blob_from=<PushedModel>`` to reuse another model's GGUF bytes exactly."""
        if share_model_blob_from is not None:
            spec = share_model_blob_from.spec
            gguf = share_model_blob_from.gguf
            arch, parameter_count, file_type = spec.arch, spec.parameter_count, spec.file_type
        else:
            spec, gguf = self._spec(
                name,
                arch,
                block_count,
                head_count,
                head_count_kv,
                embedding_length,
                context_length,
                parameter_count,
                file_type,
                size_bytes,
                seed,
                pooling_type,
            )
        repo = f"{namespace}/{name}"
        blobs: list[tuple[str, bytes]] = [(MT_MODEL, gguf)]
        if template is not None:
            blobs.append((MT_TEMPLATE, template.encode()))
        if system is not None:
            blobs.append((MT_SYSTEM, system.encode()))
        if params is not None:
            blobs.append((MT_PARAMS, go_json(params)))
        layers = [PushedLayer(mt, self.upload_blob(repo, data), len(data)) for mt, data in blobs]
        config_obj = {
            "model_format": "gguf",
            "model_family": arch,
            "model_families": [arch],
            "model_type": human_number(parameter_count),
            "file_type": file_type_name(file_type),
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [x.digest for x in layers]},
        }
        config_raw = go_json(config_obj)
        config = PushedLayer(MT_CONFIG, self.upload_blob(repo, config_raw), len(config_raw))
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": x.media_type, "digest": x.digest, "size": x.size} for x in layers],
        }
        raw = go_json(manifest)
        self.put_manifest(repo, tag, raw)
        return PushedModel(
            name=self.model_name(name, tag, namespace),
            repo=repo,
            tag=tag,
            manifest=manifest,
            manifest_bytes=raw,
            config=config,
            layers=layers,
            spec=spec,
            gguf=gguf,
        )

    @staticmethod
    def _spec(
        name: str,
        arch: str,
        block_count: int,
        head_count: int,
        head_count_kv: int,
        embedding_length: int,
        context_length: int,
        parameter_count: int,
        file_type: int,
        size_bytes: int,
        seed: str,
        pooling_type: int | None = None,
    ) -> tuple[GGUFSpec, bytes]:
        spec = GGUFSpec(
            arch=arch,
            name=name,
            parameter_count=parameter_count,
            file_type=file_type,
            block_count=block_count,
            context_length=context_length,
            embedding_length=embedding_length,
            head_count=head_count,
            head_count_kv=head_count_kv,
            size_bytes=size_bytes,
            seed=seed,
            pooling_type=pooling_type,
        )
        return spec, make_gguf(spec)

    # -- faults and observation ------------------------------------------------------------------
    def blob_data_path(self, digest: str) -> Path:
        hexd = digest.split(":", 1)[-1]
        return self.storage / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd / "data"

    def corrupt_blob(self, digest: str) -> None:
        """Overwrite the stored blob bytes (same length) so its content no longer matches its
        digest. The registry keeps serving it; a client that verifies sees a digest mismatch."""
        path = self.blob_data_path(digest)
        data = bytearray(path.read_bytes())
        if not data:
            raise ValueError(f"blob {digest} is empty")
        for i in range(0, len(data), 4096):
            data[i] ^= 0xFF
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))

    def blob_requests(self, digest: str) -> list[dict[str, Any]]:
        """GETs of ``digest`` from the registry's access log: [{"status": 200|206, "bytes": N}]."""
        logs = self.container.logs().decode(errors="replace")
        pattern = re.compile(r'"GET /v2/[^ ]+/blobs/' + re.escape(digest) + r' HTTP/[0-9.]+" (\d{3}) (\d+)')
        return [{"status": int(m.group(1)), "bytes": int(m.group(2))} for m in pattern.finditer(logs)]

    def catalog(self) -> list[str]:
        return list(json.loads(self.http.get("/v2/_catalog").text).get("repositories") or [])
