"""The systemd unit is well formed, notify-typed with a watchdog, and scores what the README
says in `systemd-analyze security`; bootstrap.sh is valid bash that refuses bad arguments
before touching anything (its real run is tests/e2e/test_fresh_server.py)."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.resources import systemd_unit

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = ROOT / "deploy" / "bootstrap.sh"
BASH = shutil.which("bash") or "/bin/bash"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(systemd_unit().read_text())
    return parser


def test_unit_runs_serve_as_a_notify_service_with_a_watchdog_and_hardening() -> None:
    unit = _unit()
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    assert service["ExecStart"] == (
        "/opt/reconciler/bin/reconciler serve --repo /srv/desired-state.git --state-dir /var/lib/reconciler"
        " --metrics-port 9464 --metrics-addr 127.0.0.1"  # metrics on loopback only
    )
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main" and service["WatchdogSec"]
    assert service["Restart"] == "on-failure" and service["RestartSec"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "docker.service" in unit["Unit"]["After"] and "docker.service" in unit["Unit"]["Wants"]
    assert "Requires" not in unit["Unit"]  # a Docker restart must not stop the reconciler
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert set(service["ReadWritePaths"].split()) == {"/var/lib/reconciler", "/srv/desired-state.git"}
    assert "docker.sock" not in service["ReadWritePaths"]  # a bind mount would pin a stale socket
    assert "PrivateDevices" not in service  # the GPU check needs /dev/nvidia*
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (systemd ≥ 252)")
def test_the_security_score_is_at_most_3_and_the_one_the_readme_states() -> None:
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(systemd_unit())],
                         capture_output=True, text=True, check=False).stdout  # fmt: skip
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    assert score <= 3.0
    assert f"`systemd-analyze security`: **{score}" in (ROOT / "deploy" / "README.md").read_text()


def test_bootstrap_is_valid_bash() -> None:
    result = subprocess.run([BASH, "-n", str(BOOTSTRAP)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert os.access(BOOTSTRAP, os.X_OK)
    assert "set -euo pipefail" in BOOTSTRAP.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--yes"], "unknown argument"), (["--gpus", "all"], "--gpus takes only 'none'"),
     (["--wheel", "/nonexistent.whl"], "no wheel at")],
)  # fmt: skip
def test_bootstrap_rejects_bad_arguments_before_doing_anything(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = subprocess.run([BASH, str(BOOTSTRAP), *args], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path, timeout=30, check=False)  # fmt: skip
    assert result.returncode == 64 and message in result.stderr
    assert "==>" not in result.stdout and list(tmp_path.iterdir()) == []


def test_bootstrap_and_the_package_agree_on_the_version() -> None:
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version is not None and f"readonly RELEASE={version.group(1)} " in BOOTSTRAP.read_text()


def test_the_grafana_dashboard_uses_only_metrics_serve_exports() -> None:
    import json
    import re

    from reconciler.report.metrics import Metrics

    dashboard = json.loads(
        (Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json").read_text()
    )
    used = {
        name
        for p in dashboard["panels"]
        for t in p["targets"]
        for name in re.findall(r"reconciler_[a-z_]+", t["expr"])
    }
    families = list(Metrics().registry.collect())
    exported = {s.name for m in families for s in m.samples} | {m.name for m in families}
    exported |= {f"{m.name}_total" for m in families if m.type == "counter"}  # before any sample
    assert used and used <= exported, used - exported
    assert {"reconciler_condition", "reconciler_suspended", "reconciler_pull_progress_ratio"} <= used
