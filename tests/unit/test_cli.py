"""The CLI's exit codes and outputs, through the installed console script."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.apply.table import simulate
from reconciler.desired.load import load_desired
from reconciler.desired.source import DirSource
from reconciler.observed import Observed, OpenWebUIObs
from reconciler.plan.planner import plan
from reconciler.report.status import Status

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


def test_a_recorded_observation_that_does_not_validate_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "observed.json"
    bad.write_text('{"container": {"name": 1}}')
    result = run("plan", "--repo", "desired_state", "--observed", str(bad))
    assert result.returncode == 4 and "Traceback" not in result.stderr
    assert f"{bad}: not a recorded observation (container.name:" in result.stderr


def test_plan_lists_each_openwebui_and_kamal_action_with_its_reason(tmp_path: Path) -> None:
    """The example, deployed, with OpenWebUI's database empty and its app off Ollama's network:
    `plan` shows one typed action per change, each with its reason (never one settings hash)."""
    desired = load_desired(DirSource(ROOT / "desired_state"))
    seed = Observed.model_validate_json(OBSERVED.read_text())
    deployed = simulate(plan(desired, seed), seed)
    assert deployed.kamal is not None
    apps = tuple(a.model_copy(update={"networks": ("kamal",)}) for a in deployed.kamal.apps)
    stale = deployed.model_copy(
        update={
            "openwebui": OpenWebUIObs(reachable=True),
            "kamal": deployed.kamal.model_copy(update={"apps": apps}),
        }
    )
    recorded = tmp_path / "observed.json"
    recorded.write_text(stale.model_dump_json())
    result = run("plan", "--repo", "desired_state", "--observed", str(recorded), "--json")
    assert result.returncode == 1, result.stderr
    actions = {(a["kind"], a["title"]): a["reason"] for a in json.loads(result.stdout)["actions"]}
    links = [title for kind, title in actions if kind == "networks"]
    assert len(links) == 1 and re.fullmatch(r"link networks: openwebui-[0-9a-f]{16} → llm", links[0]), links
    assert actions[("networks", links[0])] == "OpenWebUI reaches Ollama as http://ollama:11434"
    assert (
        actions[("openwebui_knowledge_create", "create knowledge base work")] == "desired, not in OpenWebUI"
    )
    assert actions[("openwebui_file_add", "add conventions.md to knowledge base work")] == (
        "desired, not in the knowledge base"
    )
    presets = sorted(title for kind, title in actions if kind == "openwebui_preset_create")
    assert presets == [
        "create preset deepseek-reasoning on deepseek-r1:7b",
        "create preset llama3-work on llama3:8b-instruct-q4_K_M",
        "create preset phi3-fast on phi3:mini",
    ]
    shown = run("plan", "--repo", "desired_state", "--observed", str(recorded))
    assert "create knowledge base work" in shown.stdout and "settings" not in shown.stdout


def test_an_apply_that_cannot_observe_exits_4_with_its_status_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    state = tmp_path / "state"
    result = run("apply", "--repo", "desired_state", "--state-dir", str(state))
    assert result.returncode == 4 and "cannot reach the Docker engine" in result.stderr, result.stderr
    status = Status.model_validate_json((state / "status.json").read_text())
    ready = status.condition("Ready")
    assert ready is not None and not ready.status and ready.reason == "ActionFailed"
    assert status.last_error is not None and "cannot reach the Docker engine" in status.last_error
    dry = run("apply", "--repo", "desired_state", "--state-dir", str(tmp_path / "dry"), "--dry-run")
    assert dry.returncode == 4 and not (tmp_path / "dry" / "status.json").exists()  # a dry run writes nothing
