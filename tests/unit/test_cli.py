"""The CLI's exit codes and outputs, through the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OBSERVED = ROOT / "tests" / "fixtures" / "seed_server.observed.json"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_validate_ok_and_invalid(tmp_path: Path) -> None:
    ok = run("validate", "desired_state")
    assert ok.returncode == 0 and "valid desired state" in ok.stdout
    repo = tmp_path / "r"
    shutil.copytree(ROOT / "desired_state", repo)
    (repo / "ollama.yaml").write_text((repo / "ollama.yaml").read_text().replace("gpus: all", "gpus: most"))
    bad = run("validate", str(repo))
    assert bad.returncode == 2
    assert "ollama.yaml:5:9: container.gpus:" in bad.stderr and "hint:" in bad.stderr
    js = run("validate", str(repo), "--json")
    problem = json.loads(js.stdout)["problems"][0]
    assert js.returncode == 2 and problem["line"] == 5 and problem["field"] == "container.gpus"


def test_plan_against_the_recorded_seed_server() -> None:
    result = run("plan", "--repo", "desired_state", "--observed", str(OBSERVED), "--json")
    assert result.returncode == 1, result.stderr
    plan = json.loads(result.stdout)
    titles = [a["kind"] for a in plan["actions"]]
    assert titles[0] == "container" and titles.count("pull") == 3 and "kamal_deploy" in titles
    assert plan["refused"] is False and plan["budget"]["download_bytes"] > 9 * 2**30


def test_plan_refused_exits_3_and_names_the_budget(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    shutil.copytree(ROOT / "desired_state", repo)
    text = (repo / "server.yaml").read_text().replace("models: 60GiB", "models: 5GiB")
    (repo / "server.yaml").write_text(text)
    result = run("plan", "--repo", str(repo), "--observed", str(OBSERVED))
    assert result.returncode == 3
    assert "plan refused" in result.stdout and "budget 5.0 GiB" in result.stdout


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_help_documents_exit_codes(command: str) -> None:
    top = run("--help")
    assert "3 plan refused (budget)" in " ".join(top.stdout.split())
    assert run(command, "--help").returncode == 0


def test_validate_reads_a_commit_of_a_git_repo(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    shutil.copytree(ROOT / "desired_state", repo)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "seed"], check=True)
    (repo / "server.yaml").write_text("broken: [\n")  # the working tree is broken, the commit is not
    assert run("validate", str(repo), "--rev", "HEAD").returncode == 0
    assert run("validate", str(repo)).returncode == 2
