"""The operator's verbs (issue 19) through real `git push`, real hooks and `reconciler serve`."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.e2e.gitops import GitOps, dump_state

pytestmark = pytest.mark.e2e
KiB = 1024


def cli(ops: GitOps, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args, "--state-dir", str(ops.state_dir)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def models(ops: GitOps, *names: str) -> dict[str, str]:
    ops.stack.ollama["models"] = [{"name": n} for n in names]
    return dump_state(ops)


def waited(ops: GitOps, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli(ops, "wait", *args, "--repo", str(ops.bare), "--timeout", "90", "--json")
    return result.returncode, json.loads(result.stdout)


def test_wait_returns_when_converged_and_exits_3_for_a_refused_plan(gitops: GitOps) -> None:
    model = gitops.stack.registry.push_model("wait-a", "t", size_bytes=300 * KiB, seed="wa")
    gitops.start_serve()
    sha = gitops.commit("a model", models(gitops, model.name))
    push = gitops.push(timeout=0)  # the hook stops following at once: `wait` takes over
    assert push.returncode == 0 and f"reconciler wait {sha[:12]}" in push.stderr, push.stderr
    human = cli(gitops, "wait", "--repo", str(gitops.bare), "--timeout", "90")
    assert human.returncode == 0, human.stdout + human.stderr
    assert f"✔ converged {sha[:12]}" in human.stdout
    assert model.name in gitops.stack.tags()
    assert waited(gitops, sha) == (0, {"result": "converged", "revision": sha, "reason": "already applied",
                                       "exit_code": 0})  # fmt: skip

    big = gitops.stack.registry.push_model("wait-big", "t", size_bytes=900 * KiB, seed="wb")
    gitops.stack.server["budgets"]["disk"]["models"] = "512KiB"
    refused = gitops.commit("over the budget", models(gitops, big.name))
    gitops.push(timeout=0)
    code, result = waited(gitops, refused[:12])
    assert (code, result["result"], result["revision"]) == (3, "refused", refused)
    assert "disk" in result["reason"], result
    assert big.name not in gitops.stack.tags()
    # An older commit is still what is applied; waiting for it says so at once.
    assert waited(gitops, sha)[0] == 0


def test_wait_without_serve_or_for_an_unknown_commit_fails_with_the_fix(gitops: GitOps) -> None:
    gitops.commit("no serve", {"notes.md": "x\n"})
    gitops.push()
    code, result = waited(gitops)
    assert code == 4 and "`reconciler serve` is not running" in result["reason"]
    unknown = cli(gitops, "wait", "0123456789ab", "--repo", str(gitops.bare))
    assert unknown.returncode == 64 and "is not a commit of" in unknown.stderr
