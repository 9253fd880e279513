"""Look a model up in its registry before pulling it: layer sizes and architecture.

The protocol is what `ollama pull` speaks (Ollama `server/images.go` `pullModelManifest`,
Docker Registry HTTP API v2): `GET /v2/<ns>/<model>/manifests/<tag>` with the Docker v2
manifest media type, a bearer token fetched from the `WWW-Authenticate` challenge on 401
(anonymous first, then with the registry's `login` for a private repository), blobs by digest
under `/v2/<ns>/<model>/blobs/<digest>` (often a redirect to a CDN).
The manifest's digest is the sha256 of the bytes served: Ollama writes those bytes to disk as
they came (v0.32.15 server/images.go PullModel, `os.WriteFile(fp, manifestData)`), and
`/api/tags` lists the sha256 of that file in hex (manifest/manifest.go ParseNamedManifest),
so the two compare.
The architecture comes from the first bytes of the GGUF model layer, fetched with a Range
request so a multi-GB blob is never downloaded here.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import httpx

from reconciler.desired.refs import ModelRef
from reconciler.desired.schema import Registry
from reconciler.errors import ObservationFailed
from reconciler.http import http_client
from reconciler.observe.disk import parse_manifest_file
from reconciler.observe.gguf import DEFAULT_LIMIT, parse_architecture
from reconciler.observed import Architecture, Blob, RemoteManifest

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MODEL_LAYER = "application/vnd.ollama.image.model"
_MAX_MANIFEST = 4 * 2**20
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_WORKERS = 8


class LookupFailed(ObservationFailed):
    """A short reason the user sees next to the model; never carries credentials."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def base_url(host: str, registries: list[Registry]) -> str:
    """Where the reconciler reaches `host`: the declared url, else http(s)://host."""
    for reg in registries:
        if reg.host.lower() == host.lower():
            if reg.url:
                return reg.url.rstrip("/")
            return f"http://{host}" if reg.insecure else f"https://{host}"
    return f"https://{host}"


def parse_manifest(name: str, body: bytes) -> tuple[Blob, ...]:
    """The config blob and the layers of a Docker v2 manifest, in manifest order."""
    blobs = parse_manifest_file(body)
    if blobs is not None:
        return blobs
    if b'"manifests"' in body:
        raise LookupFailed(f"registry sent an image index for {name}, not an Ollama model manifest")
    raise LookupFailed(f"registry sent an invalid manifest for {name}")


def parse_challenge(header: str) -> dict[str, str] | None:
    """`Bearer realm="…",service="…",scope="…"` → its parameters; None for other schemes."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    params = dict(_CHALLENGE_PARAM.findall(rest))
    realm = params.get("realm", "")
    return params if realm.startswith(("https://", "http://")) else None


@dataclass(frozen=True)
class _Login:
    username: str
    password: str = field(repr=False)
    reference: str  # how the password is referenced, for messages (never the value)


def registry_login(reg: Registry | None, contacted: str) -> _Login | None:
    """The credentials of a registry entry, the password resolved (through the one resolver,
    which checks the server's secrets policy) for the registry's host and `contacted`, the
    host of the token realm it is sent to."""
    if reg is None or reg.login is None:
        return None
    from reconciler.desired.secrets import host_of
    from reconciler.secrets import SecretUnavailable, resolve_secret

    try:
        password = resolve_secret(reg.login.password, (host_of(reg.host), host_of(contacted)))
    except SecretUnavailable as exc:
        raise LookupFailed(f"{reg.host} needs its login for this model: {exc}") from None
    return _Login(reg.login.username, password, reg.login.password.describe())


class _Session:
    """One look-up's requests through the OCI token challenge (distribution's token auth, what
    Ollama answers a 401 with: server/images.go makeRequestWithRetry, server/auth.go): an
    anonymous token first, then — for a private repository — one got with the registry's login."""

    def __init__(self, client: httpx.Client, host: str, base: str, registry: Registry | None) -> None:
        self.client = client
        self.host = host
        self.base = base
        self.registry = registry
        self.token: str | None = None
        self.tried_login = False

    def _headers(self, extra: dict[str, str]) -> dict[str, str]:
        if self.token is None:
            return extra
        return {**extra, "Authorization": f"Bearer {self.token}"}

    def _realm(self, realm: str) -> tuple[str, bool] | None:
        """Where to fetch the token, and whether it is the registry's own host. A realm there is
        reached the way the registry is (its declared `url`); another host only over HTTPS,
        and never with the login."""
        parts = httpx.URL(realm)
        if parts.netloc.decode().lower() == self.host.lower():
            return str(httpx.URL(self.base).copy_with(path=parts.path, query=parts.query or None)), True
        return (realm, False) if parts.scheme == "https" else None

    def _authenticate(self, response: httpx.Response) -> bool:
        """A token for the challenge: anonymous the first time, with the login after (or at
        once when the token server refuses anonymous requests). False: nothing more to try."""
        params = parse_challenge(response.headers.get("www-authenticate", ""))
        found = self._realm(params["realm"]) if params is not None else None
        if params is None or found is None:
            return False
        realm, own_host = found
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        if self.token is None and not self.tried_login and self._fetch(realm, query, None):
            return True
        if self.tried_login or not own_host:
            return False
        self.tried_login = True
        login = registry_login(self.registry, realm)
        return login is not None and self._fetch(realm, query, login)

    def _fetch(self, realm: str, query: dict[str, str], login: _Login | None) -> bool:
        auth = httpx.BasicAuth(login.username, login.password) if login else None
        answer = self.client.get(realm, params=query, auth=auth)
        if answer.status_code in (401, 403) and login is not None:
            raise LookupFailed(f"{self.host} refused the login of {login.username} ({login.reference})")
        if answer.status_code != 200:
            return False
        try:
            data = answer.json()
        except ValueError:
            return False
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            return False
        self.token = token
        return True

    def read(self, url: str, headers: dict[str, str], limit: int) -> bytes:
        """GET `url` (through the token challenge) and return at most `limit` bytes."""
        for _ in range(3):
            with self.client.stream("GET", url, headers=self._headers(headers)) as response:
                if response.status_code == 401 and self._authenticate(response):
                    continue
                _check_status(response, self.host, self.registry)
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise LookupFailed(f"{self.host} sent a manifest larger than {limit} bytes")
                return bytes(body)
        raise LookupFailed(f"{self.host} kept refusing the token it issued (HTTP 401)")

    def architecture(self, url: str, limit: int) -> Architecture | None:
        headers = {"Range": f"bytes=0-{limit - 1}"}
        for _ in range(3):
            with self.client.stream(
                "GET", url, headers=self._headers(headers), follow_redirects=True
            ) as response:
                if response.status_code == 401 and self._authenticate(response):
                    continue
                if response.status_code not in (200, 206):
                    return None
                return parse_architecture(response.iter_bytes(), limit=limit)
        return None


def _check_status(response: httpx.Response, host: str, registry: Registry | None = None) -> None:
    code = response.status_code
    if code < 400:
        return
    if code == 404:
        raise LookupFailed(f"model not found in registry {host}")
    if code in (401, 403):
        if registry is None or registry.login is None:
            raise LookupFailed(
                f"{host} refused anonymous access (HTTP {code}): give its entry under `registries` "
                "in ollama.yaml a `login` (username, password: {env: NAME})"
            )
        raise LookupFailed(f"{host} refused {registry.login.username} (HTTP {code})")
    raise LookupFailed(f"{host} answered HTTP {code}")


def _transport_reason(host: str, exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"{host} did not answer in time"
    reason = str(exc) or type(exc).__name__
    if "SSL" in reason or "certificate" in reason.lower():
        return (
            f"{host} unreachable over HTTPS: {reason} (a plain-HTTP registry is declared "
            "under `registries` with insecure: true)"
        )
    return f"{host} unreachable: {reason}"


def lookup(
    ref: ModelRef,
    registries: list[Registry],
    *,
    client: httpx.Client,
    header_limit: int = DEFAULT_LIMIT,
) -> RemoteManifest:
    """The manifest of `ref` as its registry lists it, and the model layer's architecture.

    Raises LookupFailed with a short reason. A model layer whose header cannot be read
    leaves `architecture` None rather than failing the look-up.
    """
    base = base_url(ref.host, registries)
    repo = f"{base}/v2/{ref.namespace}/{ref.model}"
    declared = next((r for r in registries if r.host.lower() == ref.host.lower()), None)
    session = _Session(client, ref.host, base, declared)
    try:
        body = session.read(f"{repo}/manifests/{ref.tag}", {"Accept": MANIFEST_V2}, _MAX_MANIFEST)
    except httpx.HTTPError as exc:
        raise LookupFailed(_transport_reason(ref.host, exc)) from None
    blobs = parse_manifest(ref.canonical, body)
    architecture = None
    model = next((b for b in blobs if b.media_type == MODEL_LAYER), None)
    if model is not None:
        try:
            architecture = session.architecture(f"{repo}/blobs/{model.digest}", header_limit)
        except httpx.HTTPError:
            architecture = None  # sizes are what matter; the VRAM estimate says "unknown"
    digest = hashlib.sha256(body).hexdigest()  # hex, as /api/tags lists it (manifest.go)
    return RemoteManifest(name=ref.canonical, blobs=blobs, architecture=architecture, digest=digest)


def _unique(refs: Iterable[ModelRef]) -> Iterator[ModelRef]:
    seen: set[str] = set()
    for ref in refs:
        if ref.canonical not in seen:
            seen.add(ref.canonical)
            yield ref


def lookup_all(
    refs: Iterable[ModelRef],
    registries: list[Registry],
    timeout: float,
    *,
    client: httpx.Client | None = None,
) -> tuple[tuple[RemoteManifest, ...], dict[str, str]]:
    """Look every ref up in parallel within `timeout` seconds in all.

    Returns the manifests found (in the order of `refs`) and, for the others, canonical
    name → reason (what `Observed.remote` / `Observed.remote_errors` hold).
    """
    todo = list(_unique(refs))
    if not todo:
        return (), {}
    own = client is None
    http = client or http_client(timeout, follow_redirects=False)
    deadline = time.monotonic() + timeout
    pool = ThreadPoolExecutor(max_workers=min(_WORKERS, len(todo)), thread_name_prefix="registry")
    futures: dict[str, Future[RemoteManifest]] = {
        ref.canonical: pool.submit(lookup, ref, registries, client=http) for ref in todo
    }
    try:
        wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()))
        found: list[RemoteManifest] = []
        errors: dict[str, str] = {}
        for name, future in futures.items():
            if not future.done():
                errors[name] = f"registry look-up timed out after {timeout:g} s"
                continue
            exc = future.exception()
            if exc is None:
                found.append(future.result())
            elif isinstance(exc, LookupFailed):
                errors[name] = exc.message
            else:
                errors[name] = f"registry look-up failed: {type(exc).__name__}"
        return tuple(found), errors
    finally:
        # Threads still waiting on a slow registry are abandoned, not awaited.
        pool.shutdown(wait=False, cancel_futures=True)
        if own:
            http.close()


def list_tags(ref: ModelRef, registries: list[Registry], *, client: httpx.Client) -> list[str]:
    """The tags of `ref`'s repository (`GET /v2/<ns>/<model>/tags/list`, Docker Registry HTTP
    API v2), through the same token challenge as a manifest. Raises LookupFailed when the
    registry does not list them (registry.ollama.ai answers 404: its tags are only on the web)."""
    base = base_url(ref.host, registries)
    declared = next((r for r in registries if r.host.lower() == ref.host.lower()), None)
    session = _Session(client, ref.host, base, declared)
    try:
        body = session.read(f"{base}/v2/{ref.namespace}/{ref.model}/tags/list", {}, _MAX_MANIFEST)
    except httpx.HTTPError as exc:
        raise LookupFailed(_transport_reason(ref.host, exc)) from None
    try:
        tags = json.loads(body).get("tags")
    except (ValueError, AttributeError):
        raise LookupFailed(f"{ref.host} sent an invalid tag list") from None
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
