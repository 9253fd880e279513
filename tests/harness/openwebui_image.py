"""The OpenWebUI image, built offline from the real `open-webui` package on PyPI (0.12.4).

No image registry is reachable here (VERIFIED.md), so `ghcr.io/open-webui/open-webui:v0.12.4`
cannot be pulled. This builds an image that behaves as the official one does where the
reconciler relies on it, from the same Python code, and tags it under the official name as
well, so the example's `openwebui.yaml` is used unchanged and the wrapper the reconciler builds
for Kamal (`reconciler/kamal/render.py` `dockerfile`) is `FROM` it byte for byte as on a real
server (the classic builder resolves `FROM` locally, `pull=False`).

What is the same as the official image (its `Dockerfile` and `backend/start.sh`, read in
open-webui/open-webui at commits 08d67bf and 8b02007; the PyPI package's `open_webui/env.py`
and `config.py` 0.12.4 say which paths follow from the layout):

- layout: the `open_webui` package in `/app/backend`, the built frontend in `/app/build`,
  `/app/package.json` (the version `env.py` reports when not started through the PyPI CLI) and
  `/app/CHANGELOG.md`; so `DATA_DIR` defaults to `/app/backend/data` and `FRONTEND_BUILD_DIR` to
  `/app/build` exactly as there;
- `WORKDIR /app/backend`, `CMD ["bash", "start.sh"]`, and a `start.sh` that does what the
  official one does: `PORT` (8080) and `HOST` (0.0.0.0) from the environment, a
  `WEBUI_SECRET_KEY` generated into `.webui_secret_key` when neither it nor
  `WEBUI_JWT_SECRET_KEY` is set, then uvicorn `open_webui.main:app` with
  `--forwarded-allow-ips '*'` and `--workers ${UVICORN_WORKERS:-1}` (here `exec`ed, so SIGTERM
  from `docker stop` reaches uvicorn);
- `EXPOSE 8080`; the same `HEALTHCHECK` (curl `/health` piped to jq `input.status == true`,
  Docker's default 30 s interval); the official `ENV` defaults (`ENV=prod`, `PORT=8080`,
  `OLLAMA_BASE_URL=/ollama`, `WEBUI_SECRET_KEY=""`, the telemetry opt-outs, `WHISPER_MODEL*`,
  `RAG_*`, `SENTENCE_TRANSFORMERS_HOME`, `TIKTOKEN_*`, `HF_HOME` under the data dir,
  `HOME=/root`, `DOCKER=true`) and chroma's telemetry id file; root user.

What differs, on purpose: Debian bookworm's python3.11 (3.11.2, from the harness base image)
instead of `python:3.11-slim-bookworm`; the Python packages are those `pip install
torch==2.13.0 open-webui==0.12.4` puts in the harness's cached venv (the CPU torch build on this
machine's disk), copied into `/usr/local/lib/python3.11/dist-packages`; no pandoc, ffmpeg, gcc
or git (document conversion, audio transcoding and building extensions are not on the
reconciler's path); no embedding, Whisper or tiktoken files baked in at build time (they come
from Hugging Face, which is not reachable; the reconciler's settings embed through Ollama and
run `OFFLINE_MODE=True`).

The image is ~3.2 GB. It is split into several layers of similar size so `docker push`
compresses them in parallel. Cached by content: the label `reconciler.test.src_hash` is a hash
of the recipe (this module's Dockerfile and start script, the package pins and the base
image's id); a file lock serialises builds between processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors

from tests.harness.images import SRC_HASH_LABEL, TEST_LABEL, _get_image, _image_lock, ensure_base_image
from tests.harness.openwebui import DEBIAN_PYTHON, OPENWEBUI, TORCH, VENV, ensure_openwebui_venv, venv_ready

VERSION = OPENWEBUI.split("==", 1)[1]
LOCAL_TAG = f"local/openwebui:{VERSION}"
OFFICIAL_TAG = f"ghcr.io/open-webui/open-webui:v{VERSION}"  # what desired_state/openwebui.yaml names
BROKEN_TAG = f"local/openwebui:{VERSION}-broken"
SITE_PACKAGES = "/usr/local/lib/python3.11/dist-packages"
LAYERS = 4  # site-packages split into this many layers of similar size

Progress = Callable[[str], None]

START_SH = r"""#!/usr/bin/env bash
# OpenWebUI's start command, as the official image's backend/start.sh runs it.
cd "$(dirname "${BASH_SOURCE[0]}")" || exit 1
PORT="${PORT:-8080}"
HOST="${HOST:-0.0.0.0}"
if [ -z "${WEBUI_SECRET_KEY}${WEBUI_JWT_SECRET_KEY}" ]; then
  echo "Loading WEBUI_SECRET_KEY from file, not provided as an environment variable."
  if [ ! -e .webui_secret_key ]; then
    echo "Generating WEBUI_SECRET_KEY"
    head -c 12 /dev/random | base64 > .webui_secret_key
  fi
  WEBUI_SECRET_KEY="$(cat .webui_secret_key)"
fi
export WEBUI_SECRET_KEY
exec python3 -m uvicorn open_webui.main:app --host "$HOST" --port "$PORT" \
  --forwarded-allow-ips '*' --workers "${UVICORN_WORKERS:-1}"
"""

# The official image's ENV block (Dockerfile, "Basis", "API Key and Security Config", "Other
# models"), with its build-arg defaults filled in.
OFFICIAL_ENV = {
    "ENV": "prod",
    "PORT": "8080",
    "USE_OLLAMA_DOCKER": "false",
    "USE_CUDA_DOCKER": "false",
    "USE_CUDA_DOCKER_VER": "cu128",
    "USE_EMBEDDING_MODEL_DOCKER": "sentence-transformers/all-MiniLM-L6-v2",
    "USE_RERANKING_MODEL_DOCKER": "",
    "OLLAMA_BASE_URL": "/ollama",
    "OPENAI_API_BASE_URL": "",
    "OPENAI_API_KEY": "",
    "WEBUI_SECRET_KEY": "",
    "SCARF_NO_ANALYTICS": "true",
    "DO_NOT_TRACK": "true",
    "ANONYMIZED_TELEMETRY": "false",
    "WHISPER_MODEL": "base",
    "WHISPER_MODEL_DIR": "/app/backend/data/cache/whisper/models",
    "RAG_EMBEDDING_MODEL": "sentence-transformers/all-MiniLM-L6-v2",
    "RAG_RERANKING_MODEL": "",
    "SENTENCE_TRANSFORMERS_HOME": "/app/backend/data/cache/embedding/models",
    "TIKTOKEN_ENCODING_NAME": "cl100k_base",
    "TIKTOKEN_CACHE_DIR": "/app/backend/data/cache/tiktoken",
    "HF_HOME": "/app/backend/data/cache/embedding/models",
    "HOME": "/root",
    "WEBUI_BUILD_VERSION": f"pypi-{VERSION}",
    "DOCKER": "true",
}

HEALTHCHECK = (
    "HEALTHCHECK CMD curl --silent --fail http://localhost:${PORT:-8080}/health "
    "| jq -ne 'input.status == true' || exit 1"
)


def dockerfile(base: str, layers: int) -> str:
    env = " \\\n    ".join(f"{k}={json.dumps(v)}" for k, v in OFFICIAL_ENV.items())
    copies = "".join(f"COPY site-{i}/ {SITE_PACKAGES}/\n" for i in range(layers))
    return (
        f"FROM {base}\n"
        "RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends curl jq >/dev/null \\\n"
        "    && rm -rf /var/lib/apt/lists/*\n"
        f"ENV {env}\n"
        "WORKDIR /app/backend\n"
        "RUN mkdir -p /root/.cache/chroma /app/backend/data \\\n"
        "    && printf 00000000-0000-0000-0000-000000000000 > /root/.cache/chroma/telemetry_user_id\n"
        f"{copies}"
        "COPY app/ /app/\n"
        'RUN python3 -c "import uvicorn, fastapi, open_webui" && bash -n /app/backend/start.sh\n'
        "EXPOSE 8080\n"
        f"{HEALTHCHECK}\n"
        'CMD ["bash", "start.sh"]\n'
    )


BROKEN_DOCKERFILE = (
    "FROM {image}\n"
    # An OpenWebUI that cannot start: its database URL names a driver that does not exist.
    'ENV DATABASE_URL="nosuchdb://broken"\n'
)


def recipe_hash(base_id: str) -> str:
    h = hashlib.sha256()
    for part in (dockerfile("BASE", LAYERS), START_SH, OPENWEBUI, TORCH, str(DEBIAN_PYTHON), base_id):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise RuntimeError(f"no site-packages in {venv}")
    return found[0]


def _du(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def split_layers(sizes: dict[str, int], layers: int) -> list[list[str]]:
    """Top-level entries into `layers` groups of similar total size (largest first, each into
    the lightest group); deterministic for the same input."""
    groups: list[list[str]] = [[] for _ in range(layers)]
    totals = [0] * layers
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        lightest = totals.index(min(totals))
        groups[lightest].append(name)
        totals[lightest] += sizes[name]
    return [sorted(g) for g in groups]


def _stage(venv: Path, root: Path, base: str) -> None:
    """The build context, made of hard links into the venv (no copy of its 2.9 GB)."""
    site = _site_packages(venv)
    package = site / "open_webui"
    entries = {p.name: _du(p) for p in site.iterdir() if p.name not in ("open_webui", "__pycache__")}
    for index, group in enumerate(split_layers(entries, LAYERS)):
        target = root / f"site-{index}"
        target.mkdir(parents=True)
        for name in group:
            subprocess.run(["cp", "-al", str(site / name), str(target / name)], check=True)
    app = root / "app"
    backend = app / "backend"
    backend.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(package), str(backend / "open_webui")], check=True)
    # the built frontend sits beside the backend in the official image
    (backend / "open_webui" / "frontend").rename(app / "build")
    shutil.copyfile(package / "CHANGELOG.md", app / "CHANGELOG.md")
    (app / "package.json").write_text(json.dumps({"name": "open-webui", "version": VERSION}) + "\n")
    (backend / "start.sh").write_text(START_SH)
    (backend / "start.sh").chmod(0o755)
    (root / "Dockerfile").write_text(dockerfile(base, LAYERS))


@dataclass
class BuildReport:
    image: str
    built: bool  # False: the cached image was up to date
    seconds: float
    size_bytes: int


@contextlib.contextmanager
def _tar_stream(root: Path) -> Iterator[IO[bytes]]:
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    assert tar.stdout is not None
    try:
        yield tar.stdout
    finally:
        tar.stdout.close()
        tar.wait()


def _follow_build(stream: Iterator[dict[str, Any]], progress: Progress) -> str | None:
    image_id = None
    for chunk in stream:
        if "error" in chunk:
            raise RuntimeError(f"building the OpenWebUI image failed: {chunk['error']}")
        text = str(chunk.get("stream") or "").strip()
        if text.startswith("Step "):
            progress(" ".join(text.split())[:100])
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            image_id = str(aux["ID"])
    return image_id


def _ticker(progress: Progress, what: str, stop: threading.Event) -> threading.Thread:
    """A line every 15 s while a long silent step runs (the venv install, a layer's copy)."""

    def tick() -> None:
        started = time.monotonic()
        while not stop.wait(15):
            progress(f"{what} ({time.monotonic() - started:.0f} s)")

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    return thread


def ensure_openwebui_image(
    client: docker.DockerClient, progress: Progress = lambda _line: None, venv: Path = VENV
) -> BuildReport:
    """The image, tagged `local/openwebui:<v>` and `ghcr.io/open-webui/open-webui:v<v>`; built
    when absent or when its recipe changed (first time: the venv ~4 min, the image ~2 min)."""
    started = time.monotonic()
    base = ensure_base_image(client)
    base_image = client.images.get(base)
    wanted = recipe_hash(str(base_image.id))
    image = _get_image(client, LOCAL_TAG)
    if image is None or image.labels.get(SRC_HASH_LABEL) != wanted:
        with _image_lock():
            image = _get_image(client, LOCAL_TAG)
            if image is None or image.labels.get(SRC_HASH_LABEL) != wanted:
                _build(client, base, wanted, venv, progress)
                image = client.images.get(LOCAL_TAG)
                built = True
            else:
                built = False
    else:
        built = False
    if OFFICIAL_TAG not in image.tags:
        image.tag(OFFICIAL_TAG)
    return BuildReport(OFFICIAL_TAG, built, time.monotonic() - started, int(image.attrs.get("Size") or 0))


def _build(client: docker.DockerClient, base: str, wanted: str, venv: Path, progress: Progress) -> None:
    progress(
        f"no {LOCAL_TAG} image built from this recipe yet: building it once from {OPENWEBUI} on PyPI "
        "(this first run only; later runs reuse it)"
    )
    if not venv_ready(venv):
        progress(f"installing {TORCH} (CPU) and {OPENWEBUI} from PyPI into {venv} (first time, ~4 min)")
        stop = threading.Event()
        ticker = _ticker(progress, f"installing {OPENWEBUI}", stop)
        try:
            ensure_openwebui_venv(venv)
        finally:
            stop.set()
            ticker.join()
    _same_python(client, base, venv)
    old = _get_image(client, LOCAL_TAG)
    with tempfile.TemporaryDirectory(prefix="owui-img-", dir=str(venv.parent)) as tmp:
        root = Path(tmp)
        progress("staging the image context (hard links into the venv)")
        _stage(venv, root, base)
        progress(f"docker build {LOCAL_TAG} (~3 GB: context, {LAYERS} package layers, commit)")
        labels = {
            **TEST_LABEL,
            SRC_HASH_LABEL: wanted,
            "org.opencontainers.image.title": "Open WebUI (built offline by the reconciler's test harness)",
            "org.opencontainers.image.version": VERSION,
            "org.opencontainers.image.source": f"https://pypi.org/project/open-webui/{VERSION}/",
        }
        stop = threading.Event()
        ticker = _ticker(progress, f"docker build {LOCAL_TAG}", stop)
        with _tar_stream(root) as context:
            stream = client.api.build(
                fileobj=context,
                custom_context=True,
                tag=LOCAL_TAG,
                labels=labels,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                timeout=1800,
            )
            try:
                _follow_build(stream, progress)
            finally:
                stop.set()
                ticker.join()
    new = _get_image(client, LOCAL_TAG)
    if old is not None and new is not None and old.id != new.id:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(str(old.id))


def _python_version(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def _same_python(client: docker.DockerClient, base: str, venv: Path) -> None:
    """The packages were resolved for the venv's interpreter; the image must run the same one."""
    probe = "import platform; print(platform.python_version())"
    mine = _python_version([str(venv / "bin" / "python"), "-c", probe])
    theirs = client.containers.run(base, ["python3", "-c", probe], remove=True).decode().strip()
    if mine != theirs:
        raise RuntimeError(
            f"the OpenWebUI venv runs Python {mine} ({DEBIAN_PYTHON}) but {base} has {theirs}: "
            "rebuild one of them so both are bookworm's python3.11"
        )


def ensure_broken_openwebui_image(client: docker.DockerClient) -> str:
    """`local/openwebui:<v>-broken`: the real image with a setting it cannot start with, so its
    container exits during boot and never turns healthy (what a bad release looks like)."""
    real = client.images.get(LOCAL_TAG)
    text = BROKEN_DOCKERFILE.format(image=LOCAL_TAG)
    wanted = hashlib.sha256((text + str(real.id)).encode()).hexdigest()[:16]
    image = _get_image(client, BROKEN_TAG)
    if image is not None and image.labels.get(SRC_HASH_LABEL) == wanted:
        return BROKEN_TAG
    with _image_lock():
        import io

        client.images.build(
            fileobj=io.BytesIO(text.encode()),
            tag=BROKEN_TAG,
            labels={**TEST_LABEL, SRC_HASH_LABEL: wanted},
            rm=True,
            pull=False,
        )
    return BROKEN_TAG
