"""The real kamal 2.11 accepts the rendered project with LAN TLS (custom certificate secrets)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconciler.desired.load import load_desired
from reconciler.desired.source import DirSource
from reconciler.kamal.cli import kamal_binary
from reconciler.kamal.project import write_project
from reconciler.kamal.render import TLS_CERT_SECRET, TLS_KEY_SECRET, render

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_kamal_config_accepts_tls_secrets(tmp_path: Path) -> None:
    desired = load_desired(DirSource(ROOT / "desired_state"))
    assert desired.openwebui is not None
    exposure = desired.openwebui.exposure.model_validate(
        {"mode": "proxy", "host": "chat.lan", "tls": {"enabled": True, "names": ["chat.lan", "gpu-box.lan"]}}
    )
    desired = desired.model_copy(
        update={"openwebui": desired.openwebui.model_copy(update={"exposure": exposure})}
    )
    project = render(desired, "v1")
    workdir = tmp_path / "kamal"
    values = write_project(project, desired, workdir)
    assert project.config["proxy"]["ssl"] == {
        "certificate_pem": TLS_CERT_SECRET,
        "private_key_pem": TLS_KEY_SECRET,
    }
    assert "PRIVATE KEY" not in project.deploy_yml and "BEGIN CERTIFICATE" not in project.deploy_yml
    done = subprocess.run(
        [kamal_binary(), "config", "--version=v1"], cwd=workdir, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout + done.stderr
    key_body = values[TLS_KEY_SECRET].splitlines()[1]
    assert key_body not in output and "PRIVATE KEY" not in output
    # Kamal's dotenv parser reads the PEMs back byte for byte, newlines as newlines (what it
    # uploads for kamal-proxy; `\\n` escapes came back as a backslash and an n)
    printed = subprocess.run(
        [kamal_binary(), "secrets", "print"], cwd=workdir, capture_output=True, text=True, timeout=60
    )
    assert printed.returncode == 0, printed.stderr
    assert f"{TLS_CERT_SECRET}={values[TLS_CERT_SECRET].strip()}\n" in printed.stdout
    assert f"{TLS_KEY_SECRET}={values[TLS_KEY_SECRET].strip()}\n" in printed.stdout
    assert (tmp_path / "tls" / "ca.crt").is_file()
