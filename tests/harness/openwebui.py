"""The real OpenWebUI from PyPI, run offline on loopback, with the fake Ollama on the host.

    openwebui_venv           session: the venv (built once under the cache dir, idempotent)
    host_ollama              session: the fake Ollama as a host process, seeded with models
    openwebui                session: `open-webui serve` on 127.0.0.1:<free port>

The venv: `pip install torch==2.13.0` first (the CPU build available here), then `open-webui`;
a marker file says it is complete (and with what); an fcntl lock serialises concurrent builds.
It is made with Debian's python3.11 (`/usr/bin/python3.11`), the interpreter of the harness
base image, because the OpenWebUI image (`openwebui_image.py`) is these very packages: pip
resolves environment markers against the running interpreter (redis needs `async-timeout`
only below Python 3.11.3), so a venv made with another 3.11 would lack packages there. OpenWebUI runs
with the environment the reconciler renders (`clear_env`: WEBUI_AUTH=False,
ENABLE_PERSISTENT_CONFIG=False, OFFLINE_MODE, the embedding engine pointed at the fake Ollama).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.harness.dockerd import apt_install
from tests.harness.fake_ollama.store import MT_CONFIG, MT_MODEL, Name, Store, go_json
from tests.harness.gguf import GGUFSpec, make_gguf

CACHE = Path(os.environ.get("RECONCILER_TEST_CACHE", "/var/cache/reconciler-tests"))
VENV = CACHE / "openwebui-0.12.4-debian-py311"
MARKER = ".reconciler-ready"
DEBIAN_PYTHON = Path("/usr/bin/python3.11")  # bookworm's, as in local/pybase:bookworm
TORCH = "torch==2.13.0"
OPENWEBUI = "open-webui==0.12.4"
FAKE_SERVER = Path(__file__).resolve().parent / "fake_ollama" / "server.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _interpreter() -> Path:
    if (
        not DEBIAN_PYTHON.exists()
        or subprocess.run(
            [str(DEBIAN_PYTHON), "-c", "import ensurepip, venv"], capture_output=True, check=False
        ).returncode
    ):
        apt_install("python3.11", "python3.11-venv")
    return DEBIAN_PYTHON


def _run(command: list[str], timeout: float) -> None:
    """Quietly (pip warns about this machine's local indexes on every package); the output only
    when it fails."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {done.returncode}:\n{(done.stdout + done.stderr)[-4000:]}"
        )


def _marker_text() -> str:
    return f"{OPENWEBUI} {TORCH} {DEBIAN_PYTHON}\n"


def venv_ready(venv: Path = VENV) -> bool:
    marker = venv / MARKER
    return marker.exists() and marker.read_text() == _marker_text() and (venv / "bin" / "open-webui").exists()


def ensure_openwebui_venv(venv: Path = VENV) -> Path:
    """The venv with open-webui, built when missing or incomplete. Returns the `open-webui` path."""
    binary = venv / "bin" / "open-webui"
    if venv_ready(venv):
        return binary
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / ".openwebui-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if venv_ready(venv):
            return binary
        shutil.rmtree(venv, ignore_errors=True)
        _run([str(_interpreter()), "-m", "venv", str(venv)], 120)
        pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
        _run([*pip, TORCH], 900)
        _run([*pip, OPENWEBUI, TORCH], 1800)
        (venv / MARKER).write_text(_marker_text())
    return binary


def seed_model(models_dir: Path, name: str, *, arch: str = "llama", family: str = "llama") -> None:
    """Write a tiny model into the fake's store (Ollama's on-disk layout), as if pulled."""
    store = Store(models_dir)
    seed = hashlib.sha256(name.encode()).hexdigest()[:8]
    gguf = make_gguf(GGUFSpec(arch=arch, name=name, size_bytes=64 * 1024, seed=seed))
    digest, size = store.write_blob(gguf)
    config = go_json(
        {
            "model_format": "gguf",
            "model_family": family,
            "model_families": [family],
            "model_type": "8B",
            "file_type": "Q4_K_M",
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digest]},
        }
    )
    cfg_digest, cfg_size = store.write_blob(config)
    store.write_manifest(
        Name.parse(name),
        {"mediaType": MT_CONFIG, "digest": cfg_digest, "size": cfg_size},
        [{"mediaType": MT_MODEL, "digest": digest, "size": size}],
    )


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout:g} s:\n{log.read_text(errors='replace')[-4000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@dataclass
class HostOllama:
    url: str
    models_dir: Path
    log: Path

    def seed(self, *names: str) -> None:
        for name in names:
            seed_model(self.models_dir, name)

    def embed_calls(self) -> int:
        events = httpx.get(f"{self.url}/__fake/events", timeout=5).json()["events"]
        return sum(1 for e in events if e.get("kind") == "embed")


@contextlib.contextmanager
def host_ollama_process(workdir: Path) -> Iterator[HostOllama]:
    port = free_port()
    models = workdir / "ollama-models"
    models.mkdir(parents=True, exist_ok=True)
    log = workdir / "fake-ollama.log"
    # HOME: the fake, like `ollama serve`, keeps its key pair in ~/.ollama; not the host's.
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(models)}
    env["HOME"] = str(workdir)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(FAKE_SERVER)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=FAKE_SERVER.parent,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/api/version", proc, 15, log)
        yield HostOllama(url=url, models_dir=models, log=log)
    finally:
        _stop(proc)


@dataclass
class OpenWebUIServer:
    url: str
    data_dir: Path
    log: Path
    env: dict[str, str]


@contextlib.contextmanager
def openwebui_process(binary: Path, workdir: Path, env: dict[str, str]) -> Iterator[OpenWebUIServer]:
    """`open-webui serve` on loopback with `env` (the rendered clear env) plus the test's own."""
    port = free_port()
    data = workdir / "openwebui-data"
    data.mkdir(parents=True, exist_ok=True)
    log = workdir / "openwebui.log"
    full = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")},
        **env,
        "DATA_DIR": str(data),
        "WEBUI_SECRET_KEY": "test-only-secret",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(workdir / "hf"),
        "TRANSFORMERS_OFFLINE": "1",
        "RAG_EMBEDDING_MODEL_AUTO_UPDATE": "False",
        "ENV": "prod",
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/ready", proc, 120, log)
        yield OpenWebUIServer(url=url, data_dir=data, log=log, env=full)
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def openwebui_venv() -> Path:  # the `open-webui` executable
    return ensure_openwebui_venv()


@pytest.fixture(scope="session")
def openwebui_workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rcl-owui-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def host_ollama(openwebui_workdir: Path) -> Iterator[HostOllama]:
    with host_ollama_process(openwebui_workdir) as ollama:
        yield ollama
