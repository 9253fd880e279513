"""A desired-state repo and a reconciler runtime wired to the harness: the real Docker
engine, the real registry on loopback, and the Ollama-compatible server in the container
the reconciler itself creates."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import yaml
from docker.models.networks import Network

from reconciler.desired.load import load_desired
from reconciler.desired.refs import parse_ref
from reconciler.desired.source import DirSource
from reconciler.reconcile import ReconcileReport, reconcile
from reconciler.report.events import EventBus, Recorder
from reconciler.runtime import Runtime
from reconciler.state.store import StateStore
from tests.harness.plugin import blob_files
from tests.harness.registry import Registry, free_port

MUTATING = re.compile(r'"(POST /api/(pull|create|generate|chat|copy)|DELETE /api/delete)')
KiB = 1024
EXAMPLE = Path(__file__).resolve().parents[2] / "desired_state"
# (architecture, blocks, heads, kv heads, embedding, trained context, pooling) of the real models
REAL = {
    "llama3": ("llama", 32, 32, 8, 4096, 8192, None),
    "phi3": ("phi3", 32, 32, 32, 3072, 131072, None),
    "deepseek-r1": ("qwen2", 28, 28, 4, 3584, 131072, None),
    "nomic-embed-text": ("nomic-bert", 12, 12, 12, 768, 2048, 0),
}


class ShiftedClock:
    """The system clock moved by `offset`: a reconcile that runs at another time of day."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, waiter: Callable[[float | None], bool], timeout: float | None) -> bool:
        return waiter(timeout)


class Stack:
    def __init__(
        self, root: Path, client: docker.DockerClient, registry: Registry, network: Network, image: str
    ) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.repo = root / "desired"
        self.repo.mkdir()
        self.client, self.registry = client, registry
        self.name, self.volume = f"rcl-e2e-ollama-{suffix}", f"rcl-e2e-models-{suffix}"
        self.port = free_port()
        self.server: dict[str, Any] = {
            "budgets": {"disk": {"models": "1GiB", "min_free": "1GiB"}, "vram": {"per_gpu": "2GiB"}}
        }
        self.ollama: dict[str, Any] = {
            "container": {
                "name": self.name,
                "image": image,
                "gpus": "none",
                "volume": self.volume,
                "network": network.name,
                "publish": {"port": self.port, "addresses": ["127.0.0.1"]},
                "env": {
                    "OLLAMA_KEEP_ALIVE": "5m",
                    "OLLAMA_CONTEXT_LENGTH": 256,
                    "extra": {
                        "FAKE_OLLAMA_OVERHEAD": str(256 * KiB),
                        "FAKE_OLLAMA_GPU_VRAM": str(2048 * KiB),
                    },
                },
            },
            "registries": [{"host": registry.host, "insecure": True, "url": registry.url}],
            "models": [],
        }
        self.state = StateStore(root / "state")
        self.recorder = Recorder()
        self.runtime = Runtime(docker=client, state=self.state, ready_timeout=30, registry_timeout=10)
        self.write()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write(self) -> None:
        (self.repo / "server.yaml").write_text(yaml.safe_dump(self.server))
        (self.repo / "ollama.yaml").write_text(yaml.safe_dump(self.ollama))

    def set_models(self, *models: dict[str, Any] | str) -> None:
        self.ollama["models"] = [{"name": m} if isinstance(m, str) else m for m in models]
        self.write()

    def apply(self, dry_run: bool = False, at: datetime | None = None) -> ReconcileReport:
        """One reconcile; `at`: the wall-clock time it runs at (update checks and windows follow
        it; waits and timeouts stay real)."""
        self.recorder.events.clear()
        desired = load_desired(DirSource(self.repo, revision=f"test{uuid.uuid4().hex[:8]}"))
        before = self.runtime.clock
        if at is not None:
            self.runtime.clock = ShiftedClock(at - datetime.now(UTC))
        try:
            return reconcile(desired, self.runtime, EventBus(self.recorder), dry_run=dry_run)
        finally:
            self.runtime.clock = before

    # -- observing the seams ------------------------------------------------------------------
    def container(self) -> Any:
        return self.client.containers.get(self.name)

    def mutating_ollama_calls(self) -> list[str]:
        try:
            logs = self.container().logs().decode(errors="replace")
        except docker.errors.NotFound:
            return []
        return [m.group(1) for m in MUTATING.finditer(logs)]

    def docker_events(self, since: datetime) -> list[str]:
        until = datetime.now(UTC)
        stream = self.client.events(
            since=since, until=until, decode=True, filters={"type": "container", "container": self.name}
        )
        return [str(e.get("status") or e.get("Action")) for e in stream]

    def tags(self) -> set[str]:
        return {m["name"] for m in httpx.get(f"{self.url}/api/tags", timeout=10).json()["models"]}

    def loaded(self) -> dict[str, dict[str, Any]]:
        return {m["name"]: m for m in httpx.get(f"{self.url}/api/ps", timeout=10).json()["models"]}

    def fake_events(self) -> list[dict[str, Any]]:
        """The Ollama-compatible server's test-only record of downloads, loads, evictions."""
        return list(httpx.get(f"{self.url}/__fake/events", timeout=10).json()["events"])

    def blob_files(self) -> dict[str, int]:
        try:
            return blob_files(self.container())
        except (docker.errors.NotFound, RuntimeError):
            return {}

    def cleanup(self) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.container().remove(force=True)
        with contextlib.suppress(docker.errors.NotFound):
            self.client.volumes.get(self.volume).remove(force=True)


def apply_until_pulling(stack: Stack, percent: float) -> subprocess.Popen[str]:
    """Start `reconciler apply --json` as a process and return once a pull is `percent` done."""
    cmd = [
        sys.executable,
        "-m",
        "reconciler.cli",
        "apply",
        "--json",
        "--repo",
        str(stack.repo),
        "--state-dir",
        str(stack.state.root),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "pull.progress" and event.get("percent", 0) >= percent:
            return proc
    raise AssertionError(f"apply ended (exit {proc.wait()}) before a pull reached {percent} %")


def wait_until(predicate: Any, timeout: float = 20.0, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError("condition not met in time")


def stand_in(stack: Stack, name: str, version: str = "") -> str:
    """Push a model with the real one's architecture (and a tiny file) to the test registry."""
    ref = parse_ref(name)
    arch, blocks, heads, kv, emb, ctx, pooling = REAL[ref.model]
    pushed = stack.registry.push_model(
        ref.model, ref.tag, arch=arch, block_count=blocks, head_count=heads, head_count_kv=kv,
        embedding_length=emb, context_length=ctx, pooling_type=pooling, size_bytes=192 * KiB,
        seed=name + version,
    )  # fmt: skip
    return pushed.name


def closed_window(hours_ahead: int = 2) -> str:
    """A benchmarks.window that is not open now (an hour long, starting `hours_ahead` from now)."""
    start = datetime.now().astimezone() + timedelta(hours=hours_ahead)
    return f"{start:%H:00}-{start + timedelta(hours=1):%H:00}"


def open_window() -> str:
    """A benchmarks.window open now (from the last hour to two hours ahead)."""
    now = datetime.now().astimezone()
    return f"{now - timedelta(hours=1):%H:00}-{now + timedelta(hours=2):%H:00}"


def example_on(
    stack: Stack, *, window: str | None = None, extra_env: dict[str, str] | None = None
) -> dict[str, str]:
    """The shipped example on this machine: stand-ins of its models in the test registry, the
    stack's container name, image, volume, network and port, no GPU passthrough, no LAN
    address; its on-change benchmarks in `window` (default: one that is closed now)."""
    server = yaml.safe_load((EXAMPLE / "server.yaml").read_text())
    server["lan_addresses"] = []
    ollama: dict[str, Any] = yaml.safe_load((EXAMPLE / "ollama.yaml").read_text())
    names = {m["name"]: stand_in(stack, m["name"]) for m in ollama["models"]}
    for m in ollama["models"]:
        m["name"] = names[m["name"]]
    for d in ollama.get("derived", []):
        d["from"] = names[d["from"]]
    bench = ollama["benchmarks"]
    host = stack.registry.host

    def elsewhere(name: str) -> str:
        return names.get(name) or f"{host}/library/{name}"

    bench["models"] = [elsewhere(n) for n in bench["models"]]
    bench["candidates"] = {elsewhere(k): [elsewhere(v) for v in vs] for k, vs in bench["candidates"].items()}
    bench["window"] = window or closed_window()
    ours = stack.ollama["container"]
    ollama["container"].update(
        {k: ours[k] for k in ("name", "image", "volume", "network", "publish")}, gpus="none"
    )
    if extra_env:
        ollama["container"]["env"]["extra"] = dict(extra_env)
    ollama["registries"] = stack.ollama["registries"]
    stack.server, stack.ollama = server, ollama
    stack.write()
    return names
