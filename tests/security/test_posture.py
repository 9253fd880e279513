"""The security posture by default: no shell, tight permissions, loopback sockets, secrets
that never leak into outputs, files or events."""

from __future__ import annotations

import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reconciler.desired.load import load_desired
from reconciler.desired.source import DirSource
from reconciler.gitops import init_repo
from reconciler.kamal.project import write_project
from reconciler.kamal.render import publish_args, render
from reconciler.plan.container import container_spec
from reconciler.state.store import StateStore, write_atomic
from tests.e2e.gitops import GitOps
from tests.harness.registry import free_port
from tests.harness.server_config import allow_secrets

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "desired_state"
CLI = [sys.executable, "-m", "reconciler.cli"]
PLANTED = "planted-S3cr3t-7f1c9e2a4b"
WILDCARDS = {"0.0.0.0", "::", "[::]"}


def test_no_command_runs_through_a_shell() -> None:
    offenders = []
    for path in (ROOT / "reconciler").rglob("*.py"):
        text = path.read_text()
        for pattern in (r"shell\s*=\s*True", r"\bos\.system\(", r"\bos\.popen\(", r"\bcommands\.getoutput"):
            offenders += [f"{path.relative_to(ROOT)}: {pattern}" for _ in re.finditer(pattern, text)]
    assert offenders == []


def test_bare_repo_state_dir_and_state_files_are_private(tmp_path: Path) -> None:
    repo, state = tmp_path / "srv" / "desired.git", tmp_path / "state"
    init_repo(repo, seed=SEED, state_dir=state)
    assert stat.S_IMODE(repo.stat().st_mode) == 0o700
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    store = StateStore(tmp_path / "state2")
    assert stat.S_IMODE(store.root.stat().st_mode) & 0o077 == 0
    write_atomic(store.root / "x.json", "{}")
    assert stat.S_IMODE((store.root / "x.json").stat().st_mode) == 0o600
    assert subprocess.run(["git", "config", "receive.denyNonFastForwards"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout.strip() == "true"  # fmt: skip


def _desired(tmp_path: Path, server: dict[str, object] | None = None, ollama_publish: object = None) -> Path:
    work = tmp_path / "desired"
    shutil.copytree(SEED, work)
    if server is not None:
        doc = yaml.safe_load((work / "server.yaml").read_text()) or {}
        doc.update(server)
        (work / "server.yaml").write_text(yaml.safe_dump(doc))
    if ollama_publish is not None:
        doc = yaml.safe_load((work / "ollama.yaml").read_text())
        doc["container"]["publish"] = ollama_publish
        (work / "ollama.yaml").write_text(yaml.safe_dump(doc))
    return work


def test_published_ports_bind_loopback_and_the_named_lan_addresses_only(tmp_path: Path) -> None:
    desired = load_desired(DirSource(_desired(tmp_path)))
    lan = set(desired.server.lan_addresses)
    ollama = set(container_spec(desired).bind_addresses)
    assert ollama == {"127.0.0.1", *lan} and not ollama & WILDCARDS
    webui = {arg.rsplit(":", 2)[0] for arg in publish_args(desired)}
    assert webui == {"127.0.0.1", *lan} and not webui & WILDCARDS
    rendered = render(desired, "v1").deploy_yml
    assert "0.0.0.0" not in rendered
    # a wildcard only when the owner writes one
    wildcard = {"port": 11434, "addresses": ["0.0.0.0"]}
    explicit = load_desired(DirSource(_desired(tmp_path / "b", ollama_publish=wildcard)))
    assert container_spec(explicit).bind_addresses == ("0.0.0.0",)


def _listening(port: int) -> set[str]:
    """Local addresses listening on `port`, from /proc/net/tcp{,6} (no `ss` needed)."""
    found = set()
    for name, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:
                if width == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1]))
                else:
                    raw = b"".join(bytes.fromhex(addr[i : i + 8])[::-1] for i in range(0, 32, 8))
                    found.add(socket.inet_ntop(socket.AF_INET6, raw))
    return found


def _planted_state(tmp_path: Path) -> Path:
    work = _desired(tmp_path)
    webui = yaml.safe_load((work / "openwebui.yaml").read_text())
    webui["cloud"] = [
        {"name": "cloudy", "base_url": "https://api.example.com/v1", "api_key": {"env": "RCL_PLANTED"}}
    ]
    webui.setdefault("kamal", {}).setdefault("registry", {})["password"] = {"env": "RCL_PLANTED_REGISTRY"}
    (work / "openwebui.yaml").write_text(yaml.safe_dump(webui))
    return work


def _grep(root: Path, value: str, skip: set[Path]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and path not in skip and value.encode() in path.read_bytes():
            hits.append(str(path))
    return hits


def test_a_planted_secret_never_appears_in_outputs_or_rendered_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RCL_PLANTED", PLANTED)
    monkeypatch.setenv("RCL_PLANTED_REGISTRY", PLANTED + "-reg")
    allow_secrets(
        monkeypatch,
        tmp_path,
        env=["RCL_PLANTED", "RCL_PLANTED_REGISTRY"],
        send_to={"RCL_PLANTED": ["api.example.com"]},
    )
    work = _planted_state(tmp_path)
    state = tmp_path / "state"
    observed = ROOT / "tests" / "fixtures" / "seed_server.observed.json"
    outputs = []
    for cmd in (["validate", str(work)], ["validate", str(work), "--json"],
                ["plan", "--repo", str(work), "--observed", str(observed)],
                ["plan", "--repo", str(work), "--observed", str(observed), "--json"],
                ["status", "--state-dir", str(state)], ["logs", "--state-dir", str(state)]):  # fmt: skip
        out = subprocess.run([*CLI, *cmd], capture_output=True, text=True, timeout=120, check=False)
        assert "Traceback" not in out.stderr, out.stderr
        outputs.append(out.stdout + out.stderr)
    assert not [o for o in outputs if PLANTED in o]
    desired = load_desired(DirSource(work))
    project = render(desired, "v1")
    assert PLANTED not in project.deploy_yml + project.dockerfile
    kamal = tmp_path / "kamal"
    values = write_project(project, desired, kamal)
    assert PLANTED + "-reg" in values.values()  # resolved, for the push only
    secrets = kamal / ".kamal" / "secrets"
    assert PLANTED in secrets.read_text() and stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert _grep(kamal, PLANTED, {secrets}) == []


@pytest.mark.e2e
def test_serve_metrics_and_ollama_published_port_listen_on_loopback(gitops: GitOps) -> None:
    port = free_port()
    gitops.start_serve("--metrics-port", str(port))
    gitops.wait_event(lambda e: e["event"] == "reconcile.done", timeout=60)
    assert _listening(port) == {"127.0.0.1"}
    bindings = gitops.stack.container().attrs["HostConfig"]["PortBindings"]
    hosts = {b["HostIp"] for spec in bindings.values() for b in spec}
    assert hosts == {"127.0.0.1"}, bindings
