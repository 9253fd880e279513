"""Offline test images: a Debian base, Debian's docker-registry, and the fake Ollama server.

No image registry is reachable here (VERIFIED.md), so everything is built from the Debian mirror:
``debootstrap`` a minbase bookworm with python3, ``docker import`` it, and build the other two on
top of it with the docker SDK's classic builder (no buildx needed).

Images are a cache kept between sessions (they carry the label ``reconciler.test=1`` but are not
removed at the end of a test session). A file lock keeps two processes from building at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
from docker.models.images import Image

from tests.harness.dockerd import apt_install

BASE_IMAGE = "local/pybase:bookworm"
REGISTRY_IMAGE = "local/registry:test"
FAKE_OLLAMA_REPO = "local/fake-ollama"
TEST_LABEL = {"reconciler.test": "1"}
SRC_HASH_LABEL = "reconciler.test.src_hash"

FAKE_OLLAMA_DIR = Path(__file__).resolve().parent / "fake_ollama"
_LOCK_PATH = Path("/tmp/reconciler-test-images.lock")

REGISTRY_CONFIG = """\
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
  # Overridden per container with REGISTRY_HTTP_ADDR=0.0.0.0:<port>.
  addr: 0.0.0.0:5000
"""


@contextlib.contextmanager
def _image_lock() -> Iterator[None]:
    with _LOCK_PATH.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _get_image(client: docker.DockerClient, tag: str) -> Image | None:
    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def debian_mirror() -> str:
    """The Debian mirror URI configured for apt (deb822 sources first, then sources.list)."""
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.exists():
        for line in deb822.read_text().splitlines():
            if line.startswith("URIs:"):
                for uri in line.split()[1:]:
                    if "security" not in uri:
                        return uri
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            m = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s", line)
            if m:
                return m.group(1)
    return "http://deb.debian.org/debian"


def ensure_base_image(client: docker.DockerClient) -> str:
    """Return ``local/pybase:bookworm``, debootstrapping and importing it if it is absent (~40 s)."""
    if _get_image(client, BASE_IMAGE) is not None:
        return BASE_IMAGE
    with _image_lock():
        if _get_image(client, BASE_IMAGE) is not None:
            return BASE_IMAGE
        if shutil.which("debootstrap") is None:
            apt_install("debootstrap")
        root = Path(tempfile.mkdtemp(prefix="pybase-", dir="/tmp"))
        try:
            proc = subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    "--include=python3,ca-certificates",
                    "bookworm",
                    str(root),
                    debian_mirror(),
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"debootstrap failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
            assert tar.stdout is not None
            imp = subprocess.Popen(
                ["docker", "import", "-c", "LABEL reconciler.test=1", "-", BASE_IMAGE],
                stdin=tar.stdout,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={"DOCKER_HOST": "unix:///run/docker.sock", "PATH": "/usr/local/bin:/usr/bin:/bin"},
            )
            tar.stdout.close()  # imp owns the read end now
            _out, err = imp.communicate()
            tar_rc = tar.wait()
            if tar_rc != 0 or imp.returncode != 0:
                raise RuntimeError(
                    f"tar|docker import failed (tar={tar_rc}, import={imp.returncode}): {err!r}"
                )
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return BASE_IMAGE


def _build(client: docker.DockerClient, context: Path, tag: str, labels: dict[str, str]) -> None:
    old = _get_image(client, tag)
    try:
        client.images.build(path=str(context), tag=tag, labels=labels, rm=True, forcerm=True, pull=False)
    except docker.errors.BuildError as exc:
        log = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)
        raise RuntimeError(f"building {tag} failed: {exc}\n{log[-3000:]}") from exc
    new = _get_image(client, tag)
    if old is not None and new is not None and old.id and old.id != new.id:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(old.id)


def ensure_registry_image(client: docker.DockerClient) -> str:
    """Return ``local/registry:test``: Debian's ``docker-registry`` (distribution 2.8) on the base.

    The host's binary is copied in (``apt-get install docker-registry`` when missing); ``ldd``
    must show it only needs libc, which the base has. Listens on ``REGISTRY_HTTP_ADDR`` (the
    config file says 0.0.0.0:5000), stores under /var/lib/registry, deletes enabled.
    """
    ensure_base_image(client)
    if _get_image(client, REGISTRY_IMAGE) is not None:
        return REGISTRY_IMAGE
    with _image_lock():
        if _get_image(client, REGISTRY_IMAGE) is not None:
            return REGISTRY_IMAGE
        binary = Path("/usr/bin/docker-registry")
        if not binary.exists():
            apt_install("docker-registry")
        ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
        libs = re.findall(r"=>\s+(\S+)", ldd.stdout)
        foreign = [lib for lib in libs if not re.search(r"/(libc|libpthread|libdl|libm|ld-linux)[^/]*$", lib)]
        if foreign:
            raise RuntimeError(f"docker-registry needs libraries the base may lack: {foreign}")
        with tempfile.TemporaryDirectory(prefix="registry-img-") as tmp:
            ctx = Path(tmp)
            shutil.copy2(binary, ctx / "docker-registry")
            (ctx / "config.yml").write_text(REGISTRY_CONFIG)
            (ctx / "Dockerfile").write_text(
                f"FROM {BASE_IMAGE}\n"
                "COPY docker-registry /usr/bin/docker-registry\n"
                "COPY config.yml /etc/docker/registry/config.yml\n"
                "RUN mkdir -p /var/lib/registry && /usr/bin/docker-registry --version\n"
                "EXPOSE 5000\n"
                'ENTRYPOINT ["/usr/bin/docker-registry"]\n'
                'CMD ["serve", "/etc/docker/registry/config.yml"]\n'
            )
            _build(client, ctx, REGISTRY_IMAGE, dict(TEST_LABEL))
    return REGISTRY_IMAGE


def fake_ollama_source_hash() -> str:
    """sha256 over the fake server's source files (names and bytes), first 16 hex."""
    h = hashlib.sha256()
    for path in sorted(FAKE_OLLAMA_DIR.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        h.update(path.relative_to(FAKE_OLLAMA_DIR).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def ensure_fake_ollama_image(client: docker.DockerClient) -> str:
    """Return ``local/fake-ollama:<source hash>``, built when absent. The tag names the source,
    so sessions running different versions of the fake (other worktrees) never swap images
    under each other's containers."""
    ensure_base_image(client)
    src_hash = fake_ollama_source_hash()
    tag = f"{FAKE_OLLAMA_REPO}:{src_hash}"
    if _get_image(client, tag) is not None:
        return tag
    with _image_lock():
        if _get_image(client, tag) is not None:
            return tag
        with tempfile.TemporaryDirectory(prefix="fake-ollama-img-") as tmp:
            ctx = Path(tmp)
            shutil.copytree(
                FAKE_OLLAMA_DIR, ctx / "app", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
            (ctx / "Dockerfile").write_text(
                f"FROM {BASE_IMAGE}\n"
                "COPY app /app\n"
                "ENV OLLAMA_HOST=0.0.0.0:11434 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1\n"
                "EXPOSE 11434\n"
                'CMD ["python3", "/app/server.py"]\n'
            )
            _build(client, ctx, tag, {**TEST_LABEL, SRC_HASH_LABEL: src_hash})
    return tag
