"""deploy/: the systemd unit is well formed and bootstrap.sh is valid bash whose --dry-run
prints the plan and runs nothing (fast, no Docker, no root)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "reconciler" / "data" / "systemd" / "reconciler.service"
BOOTSTRAP = ROOT / "deploy" / "bootstrap.sh"
BASH = shutil.which("bash") or "/bin/bash"
# Everything bootstrap.sh could change the system with; in the fake PATH each one only logs.
MUTATING = (
    "apt-get", "apt", "dpkg", "python3", "pip", "install", "mkdir", "cp", "mv", "rm", "chmod", "ln",
    "tee", "git", "systemctl", "docker", "reconciler", "mktemp", "env", "sudo", "touch",
)  # fmt: skip


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_unit_parses_and_runs_serve_with_restart_and_hardening() -> None:
    unit = _unit()
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    assert service["ExecStart"] == (
        "/opt/reconciler/bin/reconciler serve --repo /srv/desired-state.git --state-dir /var/lib/reconciler"
    )
    assert service["Restart"] == "on-failure" and service["RestartSec"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["EnvironmentFile"].lstrip("-") == "/etc/reconciler/env"
    assert "docker.service" in unit["Unit"]["After"] and "docker.service" in unit["Unit"]["Requires"]
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes" and service["PrivateTmp"] == "yes"
    assert set(service["ReadWritePaths"].split()) == {"/var/lib/reconciler", "/srv/desired-state.git"}
    assert "docker.sock" not in service["ReadWritePaths"]  # a bind mount would pin a stale socket
    assert "PrivateDevices" not in service  # the GPU check needs /dev/nvidia*
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_bootstrap_is_valid_bash() -> None:
    result = subprocess.run([BASH, "-n", str(BOOTSTRAP)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert os.access(BOOTSTRAP, os.X_OK)
    assert "set -euo pipefail" in BOOTSTRAP.read_text()


def test_bootstrap_dry_run_prints_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    log = tmp_path / "calls.log"
    for name in MUTATING:
        stub = fakebin / name
        stub.write_text(f'#!{BASH}\necho "{name} $*" >> "{log}"\nexit 1\n')
        stub.chmod(0o755)
    env = {"PATH": str(fakebin), "HOME": str(tmp_path), "HOSTNAME": "gpu-box", "LANG": "C"}

    result = subprocess.run([BASH, str(BOOTSTRAP), "--dry-run"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=30, check=False)  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert (
        "+ /opt/reconciler/bin/reconciler init /srv/desired-state.git --state-dir /var/lib/reconciler" in out
    )
    assert f"+ /opt/reconciler/bin/pip install --quiet --disable-pip-version-check -e {ROOT}" in out
    assert f"+ install -m 0644 {UNIT} /etc/systemd/system/reconciler.service" in out
    assert "+ systemctl enable reconciler.service" in out
    assert "git remote add server root@gpu-box:/srv/desired-state.git" in out
    assert not log.exists(), f"--dry-run ran: {log.read_text()}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]


def test_bootstrap_rejects_unknown_arguments_before_doing_anything(tmp_path: Path) -> None:
    result = subprocess.run([BASH, str(BOOTSTRAP), "--yes"], capture_output=True, text=True,
                            env={"PATH": str(tmp_path)}, timeout=30, check=False)  # fmt: skip
    assert result.returncode == 64 and "unknown argument" in result.stderr
    assert "+ " not in result.stdout
