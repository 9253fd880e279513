"""Contract of the kamal-proxy stand-in (tests/harness/kamal_proxy/): the commands Kamal 2.11
sends it, answered as kamal-proxy v0.9.2 answers them. The target is a fake Ollama (its `/`
answers 200, and its fault switch makes a health path fail); no OpenWebUI, a few seconds."""

from __future__ import annotations

import io
import socket
import ssl
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from docker.models.networks import Network

from reconciler.kamal.tls import TlsState, ensure_tls
from tests.harness.images import TEST_LABEL
from tests.harness.kamal_proxy_image import KAMAL_PROXY_IMAGE, ensure_kamal_proxy_image
from tests.harness.plugin import FakeOllama
from tests.harness.registry import free_port

pytestmark = pytest.mark.e2e

CERTS = "/home/kamal-proxy/.apps-config/svc/tls/web"  # where Kamal uploads them (proxy.rb)


@dataclass
class Proxy:
    container: Any
    http_port: int
    https_port: int

    def cmd(self, *args: str) -> tuple[int, str]:
        """`docker exec kamal-proxy kamal-proxy ...`, as Kamal runs it (commands/app/proxy.rb)."""
        code, out = self.container.exec_run(["kamal-proxy", *args], demux=False)
        return int(code), out.decode()

    def get(self, path: str = "/", host: str = "127.0.0.1") -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.http_port}{path}", headers={"Host": host}, timeout=10)


@pytest.fixture
def proxy(docker_client: docker.DockerClient, test_network: Network, base_image: str) -> Iterator[Proxy]:
    image = ensure_kamal_proxy_image(docker_client)
    assert image == KAMAL_PROXY_IMAGE
    http_port, https_port = free_port(), free_port()
    container = docker_client.containers.run(
        image,
        name=f"rcl-test-kproxy-{uuid.uuid4().hex[:8]}",
        detach=True,
        labels=dict(TEST_LABEL),
        network=test_network.name,
        ports={"80/tcp": ("127.0.0.1", http_port), "443/tcp": ("127.0.0.1", https_port)},
    )
    try:
        _wait(lambda: container.exec_run(["kamal-proxy", "list"]).exit_code == 0)
        yield Proxy(container, http_port, https_port)
    finally:
        container.remove(force=True)


def _wait(ok: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError("not ready in time")
        time.sleep(0.2)


def _copy_in(container: Any, directory: str, files: dict[str, str]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{directory.strip('/')}/{name}")
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, 1000, 1000
            tar.addfile(info, io.BytesIO(data))
    assert container.put_archive("/", buffer.getvalue())


def _served_certificate(port: int, ca: Path, server_name: str | None) -> x509.Certificate:
    context = ssl.create_default_context(cafile=str(ca))
    if server_name is None:
        context.check_hostname = False  # a browser opening an IP address sends no SNI
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _fingerprint(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(hashes.SHA256())


def _install(proxy: Proxy, state: TlsState) -> None:
    chain, key = state.server_pem()
    _copy_in(proxy.container, CERTS, {"cert.pem": chain, "key.pem": key})


def test_deploy_waits_for_a_healthy_target_and_proxies_to_it(proxy: Proxy, fake_ollama: Any) -> None:
    fake: FakeOllama = fake_ollama()
    target = f"--target={fake.container.name}:11434"
    # an unhealthy target is not installed: Kamal's deploy fails with kamal-proxy's error
    fake.fault(status=500, error="booting", paths=["/api/version"], count=1000)
    health = "--health-check-path=/api/version"
    code, out = proxy.cmd("deploy", "svc-web", target, "--deploy-timeout=2s", health)
    assert code == 1 and "Error: target failed to become healthy within configured timeout (2s)" in out, out
    assert proxy.get().status_code == 404
    code, out = proxy.cmd("list")
    assert code == 0 and "svc-web" not in out
    # healthy after a few failed checks: the deploy returns once it is, and requests reach it
    fake.clear_faults()
    fake.fault(status=500, error="booting", paths=["/api/version"], count=2)
    started = time.monotonic()
    code, out = proxy.cmd(
        "deploy", "svc-web", target, "--deploy-timeout=20s", "--health-check-interval=1s",
        "--health-check-timeout=5s", "--health-check-path=/api/version", "--target-timeout=30s",
        "--buffer-requests", "--buffer-responses", '--log-request-header=Cache-Control',
    )  # fmt: skip
    assert code == 0, out
    assert 1.5 < time.monotonic() - started < 15  # two failures a second apart, then healthy
    answer = proxy.get()
    assert answer.status_code == 200 and answer.text == "Ollama is running"
    assert proxy.get("/api/version", host="anything.lan").json()["version"]  # no --host: every host
    code, out = proxy.cmd("list")
    assert code == 0 and "svc-web" in out and f"{fake.container.name}:11434" in out and "running" in out
    # stop/resume (Kamal's `app maintenance` / `app live`), remove, and unknown services
    assert proxy.cmd("stop", "svc-web", "--message=Back soon")[0] == 0
    stopped = proxy.get()
    assert stopped.status_code == 503 and "Back soon" in stopped.text
    assert proxy.cmd("resume", "svc-web")[0] == 0 and proxy.get().status_code == 200
    assert proxy.cmd("remove", "svc-web") == (0, "")
    assert proxy.get().status_code == 404
    code, out = proxy.cmd("remove", "svc-web")
    assert code == 1 and "Error: service not found" in out


def test_tls_with_the_given_certificate_renewed_at_the_next_deploy(
    proxy: Proxy, fake_ollama: Any, tmp_path: Path
) -> None:
    fake: FakeOllama = fake_ollama()
    target = f"--target={fake.container.name}:11434"
    code, out = proxy.cmd("deploy", "svc-web", target, "--tls")
    assert code == 1 and "Error: host must be set when using TLS" in out, out
    code, out = proxy.cmd("deploy", "svc-web", target, "--host=chat.lan", f"--tls-certificate-path={CERTS}/c")
    assert code == 1 and "must all be set" in out, out

    first = ensure_tls(tmp_path / "tls", ["chat.lan"], ["127.0.0.1"])
    _install(proxy, first)
    tls_args = [
        "--host=chat.lan", "--host=127.0.0.1", "--tls",
        f"--tls-certificate-path={CERTS}/cert.pem", f"--tls-private-key-path={CERTS}/key.pem",
        "--health-check-path=/",
    ]  # fmt: skip
    code, out = proxy.cmd("deploy", "svc-web", target, *tls_args)
    assert code == 0, out
    served = _served_certificate(proxy.https_port, first.ca_path, "chat.lan")
    assert _fingerprint(served) == _fingerprint(x509.load_pem_x509_certificate(first.cert_path.read_bytes()))
    # no SNI (an IP address): the first TLS service's first host's certificate
    assert _fingerprint(_served_certificate(proxy.https_port, first.ca_path, None)) == _fingerprint(served)
    verify = ssl.create_default_context(cafile=str(first.ca_path))
    answer = httpx.get(f"https://127.0.0.1:{proxy.https_port}/", verify=verify, timeout=10)
    assert answer.status_code == 200 and answer.text == "Ollama is running"
    # plain HTTP is redirected to HTTPS on the same host (the port dropped, as kamal-proxy does)
    redirect = proxy.get("/api/tags?x=1", host="chat.lan")
    assert redirect.status_code == 301 and redirect.headers["location"] == "https://chat.lan/api/tags?x=1"
    # a host no service serves: no certificate (unknown server name)
    with pytest.raises(ssl.SSLError):
        _served_certificate(proxy.https_port, first.ca_path, "other.lan")

    # renewal: the files replaced and the service deployed again -> the new certificate served
    renewed = ensure_tls(tmp_path / "tls", ["chat.lan"], ["127.0.0.1"], renew=True)
    assert renewed.renewed
    _install(proxy, renewed)
    served_now = _served_certificate(proxy.https_port, first.ca_path, "chat.lan")
    assert _fingerprint(served_now) == _fingerprint(served)  # not before the next deploy
    code, out = proxy.cmd("deploy", "svc-web", target, *tls_args)
    assert code == 0, out
    now = _served_certificate(proxy.https_port, renewed.ca_path, "chat.lan")
    assert _fingerprint(now) == _fingerprint(x509.load_pem_x509_certificate(renewed.cert_path.read_bytes()))
    assert _fingerprint(now) != _fingerprint(served)

    # a certificate that cannot be loaded: the deploy fails, the old one keeps serving
    _copy_in(proxy.container, CERTS, {"bad.pem": "not a certificate"})
    code, out = proxy.cmd(
        "deploy", "svc-web", target, "--host=chat.lan", "--tls",
        f"--tls-certificate-path={CERTS}/bad.pem", f"--tls-private-key-path={CERTS}/key.pem",
    )  # fmt: skip
    assert code == 1 and "Error: unable to load certificate" in out, out
    kept = _served_certificate(proxy.https_port, renewed.ca_path, "chat.lan")
    assert _fingerprint(kept) == _fingerprint(now)

    # the state survives a restart of the container (`--restart unless-stopped`, router.go restore)
    proxy.container.restart(timeout=5)
    _wait(lambda: proxy.container.exec_run(["kamal-proxy", "list"]).exit_code == 0)
    answer = httpx.get(f"https://127.0.0.1:{proxy.https_port}/", verify=verify, timeout=10)
    assert answer.status_code == 200
