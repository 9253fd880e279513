"""`kill -9` in the middle of Kamal: `serve` killed while `kamal setup`, `kamal deploy` and
`kamal rollback` run (the real kamal 2.11.0 deploying the stand-in OpenWebUI over SSH to this
machine). Half the kills take `serve` alone, so Kamal lives on with its output pipe broken; half
take the whole process group, as systemd does, so Kamal dies holding its deploy lock. Each
restart must converge to the pushed commit: exactly the wanted version running and healthy,
OpenWebUI's data kept, no deploy lock left, no orphaned container, and the planted secrets in
no output."""

from __future__ import annotations

import random
import subprocess
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reconciler.desired.load import load_desired
from reconciler.desired.secrets import image_repository
from reconciler.desired.source import DirSource
from reconciler.kamal import runs
from reconciler.observe.kamal import running_versions
from reconciler.plan.kamal import deploy_hash
from tests.e2e.gitops import GitOps, dump_state
from tests.e2e.kamal_support import cleanup
from tests.faults.support import Tail, assert_converged, kill_when
from tests.harness.kamal_fixtures import Sshd
from tests.harness.registry import Registry, free_port
from tests.harness.server_config import allow_secrets

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
SEED = 20261125
PLANTED = "rcl-planted-3f9c1e7a"  # secret values the serve process can resolve, never print
NOTES = b"written before the first kill"


class WebUI:
    """The OpenWebUI part of the desired state, and what to look at on the server."""

    def __init__(self, ops: GitOps, sshd: Sshd, registry: Registry, image: str) -> None:
        sfx = uuid.uuid4().hex[:6]
        self.ops = ops
        self.spec: dict[str, Any] = {
            "image": image,
            "exposure": {"mode": "published", "port": free_port(), "addresses": ["127.0.0.1"]},
            "cloud": [{"name": "cloudy", "base_url": "https://api.example.invalid/v1",
                       "api_key": {"env": "RCL_PLANTED_KEY"}}],
            "kamal": {"service": f"rcl-k9-{sfx}", "servers": ["127.0.0.1"], "ssh_port": sshd.port,
                      "ssh_keys": [str(sshd.key)], "image": f"rcl-k9-{sfx}",
                      "data_volume": f"rcl-test-k9-{sfx}",
                      "registry": {"server": f"127.0.0.1:{registry.port}",
                                   "password": {"env": "RCL_PLANTED_REGISTRY"}}},
        }  # fmt: skip
        self.url = f"http://127.0.0.1:{self.spec['exposure']['port']}"
        self.service = str(self.spec["kamal"]["service"])
        self.workdir = ops.state_dir / "kamal"

    def commit(self, message: str, **change: Any) -> str:
        self.spec.update(change)
        files = {**dump_state(self.ops), "openwebui.yaml": yaml.safe_dump(self.spec)}
        return self.ops.commit(message, files)

    def version(self) -> str | None:
        return deploy_hash(load_desired(DirSource(self.ops.work)))

    def lock_dir(self) -> Path:
        return Path.home() / ".kamal" / f"lock-{self.service}"  # sshd lets this machine's root in

    def assert_serving(self, version: str | None, notes: bool) -> None:
        client = self.ops.stack.client
        assert running_versions(client, self.service) == (version,)
        running = client.containers.list(filters={"label": f"service={self.service}"})
        assert len(running) == 1, [c.name for c in running]  # no orphan of an interrupted deploy
        assert httpx.get(self.url + "/health", timeout=5).json() == {"status": True}
        if notes:
            assert httpx.get(self.url + "/data/notes.txt", timeout=5).content == NOTES
        assert not self.lock_dir().exists(), "Kamal's deploy lock was left held"
        assert runs.interrupted(self.workdir) == []


@pytest.fixture
def webui(
    gitops: GitOps,
    sshd: Sshd,
    registry: Registry,
    openwebui_standin: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[WebUI]:
    monkeypatch.setenv("RCL_PLANTED_KEY", PLANTED + "-key")  # serve inherits these
    monkeypatch.setenv("RCL_PLANTED_REGISTRY", PLANTED + "-reg")
    image = "image:" + image_repository(openwebui_standin[0])  # the stand-in gets the key in its env
    allow_secrets(  # the server's own config allows them, for these destinations
        monkeypatch,
        tmp_path,
        env=["RCL_PLANTED_KEY", "RCL_PLANTED_REGISTRY"],
        send_to={"RCL_PLANTED_KEY": ["api.example.invalid", image]},
    )
    w = WebUI(gitops, sshd, registry, openwebui_standin[0])
    try:
        yield w
    finally:
        gitops.stop_serve()
        if (gitops.work / "openwebui.yaml").exists():
            cleanup(gitops.stack.client, load_desired(DirSource(gitops.work)))


def _push_and_kill(ops: GitOps, tail: Tail, k: int, group: bool, outputs: list[str]) -> bool:
    """Push, kill `serve` at the k-th Kamal output line of the reconcile; True if a Kamal
    process was running at that moment (its run record was left behind)."""
    start = len(tail.poll())
    pushed: list[subprocess.CompletedProcess[str]] = []
    pusher = threading.Thread(target=lambda: pushed.append(ops.push(timeout=0)))
    pusher.start()

    def hit(_: dict[str, Any]) -> bool:  # polled over and over: count, do not accumulate
        return sum(1 for e in tail.events[start:] if e["event"] == "kamal.output") >= k

    kill_when(ops, tail, start, hit, group=group, timeout=120)
    mid_kamal = runs.interrupted(ops.state_dir / "kamal") != []
    pusher.join(timeout=60)
    assert [p.returncode for p in pushed] == [0], [p.stderr for p in pushed]
    outputs.extend(p.stdout + p.stderr for p in pushed)
    ops.start_serve()
    return mid_kamal


def test_kill_9_mid_kamal_converges_with_no_lock_left_and_data_kept(
    gitops: GitOps, webui: WebUI, survived: dict[str, Any]
) -> None:
    rng = random.Random(SEED)
    tail = Tail(gitops)
    gitops.start_serve()
    assert_converged(gitops, gitops.head(), [])  # the seed commit: no OpenWebUI yet
    outputs: list[str] = []
    phases: Counter[str] = Counter()
    steps = [
        ("setup", {}),
        ("deploy", {"env": {"WEBUI_NAME": "Home LLM"}}),
        ("deploy", {"env": {"WEBUI_NAME": "Home LLM (new)"}}),
        ("rollback", {"env": {"WEBUI_NAME": "Home LLM"}}),  # the revert of the last change
    ]
    for number, (verb, change) in enumerate(steps):
        sha = webui.commit(f"openwebui {verb} {number}", **change)
        k, group = rng.randint(4, 24), number % 2 == 1
        mid = _push_and_kill(gitops, tail, k, group, outputs)
        phases[f"{verb}, {'group' if group else 'serve only'}, {'mid-Kamal' if mid else 'after Kamal'}"] += 1
        assert_converged(gitops, sha, [], timeout=240)
        webui.assert_serving(webui.version(), notes=number > 0)
        if number == 0:
            httpx.put(webui.url + "/data/notes.txt", content=NOTES, timeout=5).raise_for_status()
    commands = [e.get("command") for e in tail.poll() if e["event"] == "kamal.start"]
    assert "rollback" in commands, commands
    logged = gitops.events()
    text = "\n".join([*outputs, str(logged), str(gitops.status())])
    assert PLANTED not in text
    survived["faults"] = len(steps)
    survived["detail"] = dict(phases)
    assert sum(n for p, n in phases.items() if "mid-Kamal" in p) >= 3, phases
    assert any(e["event"] == "kamal.stale_lock_released" for e in logged), "no kill left a lock"
