"""Fixtures for the real-Kamal end-to-end tests: an sshd on 127.0.0.1 that lets root in with a
generated key (Kamal deploys to this machine over SSH), and a stand-in "OpenWebUI" image.

The real OpenWebUI image cannot be pulled here; the stand-in is FROM the harness base image and
serves, on 8080 like OpenWebUI: `GET /health` (200 `{"status":true}`, or 500 when built with
STANDIN_BROKEN=1), `GET /env` (its environment as JSON), `GET|PUT /data/<name>` (a file in
/app/backend/data, the data volume), `GET /ollama` (proxies `$OLLAMA_BASE_URL/api/version`, to
check it reaches Ollama), and the read side of OpenWebUI's REST API as an empty OpenWebUI in
no-login mode answers it (`/api/config`, model and knowledge lists, the no-login sign-in), so a
reconcile with no knowledge bases or presets converges against it. Like OpenWebUI's image it
has a Docker HEALTHCHECK on /health, and it stops at once on SIGTERM.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from tests.harness.dockerd import apt_install
from tests.harness.images import BASE_IMAGE, TEST_LABEL, _get_image, _image_lock
from tests.harness.registry import free_port

STANDIN_IMAGE = "local/openwebui-standin:test"
STANDIN_BROKEN_IMAGE = "local/openwebui-standin:broken"

STANDIN_SERVER = r"""
import json, os, signal, sys, urllib.parse, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATA = "/app/backend/data"
EMPTY_API = {
    "/api/config": {"name": "Open WebUI", "version": "standin", "features": {"auth": False}},
    "/api/models": {"data": []},
    "/api/v1/models/list": {"items": [], "total": 0},
    "/api/v1/models/base": [],
    "/api/v1/knowledge/": {"items": [], "total": 0},
}
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


class Handler(BaseHTTPRequestHandler):
    def _send(self, code, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        route = urllib.parse.urlsplit(self.path).path
        if route in EMPTY_API:  # OpenWebUI's read API, answering as a fresh OpenWebUI would
            return self._send(200, EMPTY_API[route])
        if self.path == "/health":
            if os.environ.get("STANDIN_BROKEN") == "1":
                return self._send(500, {"status": False})
            return self._send(200, {"status": True})
        if self.path == "/env":
            return self._send(200, dict(os.environ))
        if self.path == "/ollama":
            url = os.environ.get("OLLAMA_BASE_URL", "") + "/api/version"
            try:
                with urllib.request.urlopen(url, timeout=3) as resp:
                    return self._send(200, json.loads(resp.read()))
            except Exception as exc:
                return self._send(502, {"error": str(exc), "url": url})
        if self.path.startswith("/data/"):
            path = os.path.join(DATA, os.path.basename(self.path))
            if not os.path.isfile(path):
                return self._send(404, {"error": "no such file"})
            with open(path, "rb") as fh:
                return self._send(200, fh.read(), "application/octet-stream")
        return self._send(404, {"error": "not found"})

    def do_POST(self):
        if self.path == "/api/v1/auths/signin" and os.environ.get("WEBUI_AUTH") == "False":
            return self._send(200, {"token": "standin-admin", "token_type": "Bearer"})
        return self._send(404, {"error": "not found"})

    def do_PUT(self):
        if not self.path.startswith("/data/"):
            return self._send(404, {"error": "not found"})
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        os.makedirs(DATA, exist_ok=True)
        with open(os.path.join(DATA, os.path.basename(self.path)), "wb") as fh:
            fh.write(body)
        return self._send(201, {"written": len(body)})

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"""

STANDIN_HEALTH = r"""
import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen("http://127.0.0.1:8080/health", timeout=2).status == 200 else 1)
except Exception:
    sys.exit(1)
"""


def _standin_dockerfile(broken: bool) -> str:
    return (
        f"FROM {BASE_IMAGE}\n"
        "COPY server.py health.py /app/\n"
        "RUN mkdir -p /app/backend/data\n" + ("ENV STANDIN_BROKEN=1\n" if broken else "") + "EXPOSE 8080\n"
        'HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD ["python3", "/app/health.py"]\n'
        'CMD ["python3", "/app/server.py"]\n'
    )


def _context(broken: bool) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in (
            ("Dockerfile", _standin_dockerfile(broken)),
            ("server.py", STANDIN_SERVER),
            ("health.py", STANDIN_HEALTH),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def ensure_standin_images(client: docker.DockerClient) -> tuple[str, str]:
    """Build (once, cached by content) the stand-in image and its broken twin."""
    import hashlib

    with _image_lock():
        for tag, broken in ((STANDIN_IMAGE, False), (STANDIN_BROKEN_IMAGE, True)):
            source = _standin_dockerfile(broken) + STANDIN_SERVER + STANDIN_HEALTH
            digest = hashlib.sha256(source.encode()).hexdigest()
            image = _get_image(client, tag)
            if image is not None and image.labels.get("reconciler.test.src_hash") == digest[:16]:
                continue
            client.images.build(
                fileobj=_context(broken),
                custom_context=True,
                tag=tag,
                labels={**TEST_LABEL, "reconciler.test.src_hash": digest[:16]},
                rm=True,
                pull=False,
            )
    return STANDIN_IMAGE, STANDIN_BROKEN_IMAGE


@pytest.fixture(scope="session")
def openwebui_standin(docker_client: docker.DockerClient, base_image: str) -> tuple[str, str]:
    """(good image, broken image) tags of the stand-in OpenWebUI."""
    return ensure_standin_images(docker_client)


@dataclass(frozen=True)
class Sshd:
    host: str
    port: int
    user: str
    key: Path  # private key authorised for `user`
    known_hosts: Path

    def ssh_options(self) -> tuple[str, ...]:
        return (
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "LogLevel=ERROR",
        )  # fmt: skip


def _wait_port(port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port}")


@contextlib.contextmanager
def running_sshd() -> Iterator[Sshd]:
    """An sshd of its own on 127.0.0.1:<free port> letting root in with a generated ed25519 key
    (its own host key, authorized_keys and pid file in a temp dir). Stopped at the end."""
    if not Path("/usr/sbin/sshd").exists() or shutil.which("ssh") is None:
        apt_install("openssh-server", "openssh-client")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="rcl-sshd-"))
    os.chmod(tmp, 0o700)
    key = tmp / "id_ed25519"
    host_key = tmp / "ssh_host_ed25519_key"
    for path in (key, host_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    shutil.copyfile(f"{key}.pub", tmp / "authorized_keys")
    port = free_port()
    config = tmp / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"AuthorizedKeysFile {tmp}/authorized_keys\n"
        f"PidFile {tmp}/sshd.pid\nUsePAM no\nStrictModes no\nMaxStartups 100\nMaxSessions 100\n"
        "AcceptEnv LANG LC_*\nSubsystem sftp internal-sftp\n"
    )
    proc = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-f", str(config), "-E", str(tmp / "sshd.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        yield Sshd("127.0.0.1", port, "root", key, tmp / "known_hosts")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    with running_sshd() as server:
        yield server
