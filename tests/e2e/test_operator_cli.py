"""The operator's verbs (issue 19) through real `git push`, real hooks and `reconciler serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx
import ollama
import pytest

from tests.e2e.gitops import GitOps, dump_state, git
from tests.harness.registry import free_port

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
    model = gitops.stack.registry.push_model("wait-a", "t", size_bytes=1024 * KiB, seed="wa")
    gitops.stack.ollama["container"]["env"]["extra"]["FAKE_OLLAMA_PULL_RATE"] = str(512 * KiB)  # ~2 s
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


def test_suspend_records_and_reports_but_changes_nothing_until_resume(gitops: GitOps) -> None:
    keep = gitops.stack.registry.push_model("susp-keep", "t", size_bytes=100 * KiB, seed="sk")
    new = gitops.stack.registry.push_model("susp-new", "t", size_bytes=100 * KiB, seed="sn")
    port = free_port()
    gitops.start_serve("--resync", "2", "--metrics-port", str(port))
    gitops.commit("one model", models(gitops, keep.name))
    assert "✔ converged" in gitops.push().stderr
    said = cli(gitops, "suspend", "--reason", "tuning num_ctx by hand")
    assert said.returncode == 0 and "suspended since" in said.stdout, said.stderr

    pushed = gitops.commit("a second model", models(gitops, keep.name, new.name))
    push = gitops.push()
    assert "⏸ suspended since" in push.stderr and "tuning num_ctx by hand" in push.stderr, push.stderr
    assert f"remote: plan: pull {new.name}" in push.stderr and "not applied" in push.stderr
    assert new.name not in gitops.stack.tags()
    code, result = waited(gitops, pushed)
    assert (code, result["result"], result["revision"]) == (6, "suspended", pushed)
    assert "reconciler resume" in result["reason"]

    ollama.Client(host=gitops.stack.url).delete(keep.name)  # drift, by hand
    after = len(gitops.events())
    drift = gitops.wait_event(
        lambda e: e["event"] == "plan" and any(keep.name in a for a in e.get("actions", [])), after=after
    )
    assert drift["revision"] == pushed[:12]
    assert keep.name not in gitops.stack.tags() and new.name not in gitops.stack.tags()  # reported only
    status = gitops.status()
    assert status["suspended"]["reason"] == "tuning num_ctx by hand"
    assert status["last_applied_revision"] != pushed and status["desired_revision"] == pushed
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == (False, "Suspended") and keep.name in ready["message"]
    human = " ".join(cli(gitops, "status").stdout.split())  # rich wraps at 80 columns
    assert "SUSPENDED" in human and "tuning num_ctx by hand" in human
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert "reconciler_suspended 1.0" in metrics and 'reconciler_condition{type="Ready"} 0.0' in metrics

    gitops.stop_serve()  # the suspension survives a restart
    gitops.start_serve("--resync", "2")
    restarted = len(gitops.events())
    gitops.wait_event(lambda e: e["event"] == "reconcile.suspended", after=restarted - 1)
    assert keep.name not in gitops.stack.tags()
    refused = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "apply", "--repo", str(gitops.bare), "--rev", "main",
         "--state-dir", str(gitops.state_dir)], capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 4 and "suspended since" in refused.stderr

    resumed = cli(gitops, "resume")
    assert resumed.returncode == 0 and "resumed" in resumed.stdout
    code, result = waited(gitops, pushed)
    assert (code, result["result"]) == (0, "converged"), result
    assert {keep.name, new.name} <= gitops.stack.tags()
    assert gitops.status()["suspended"] is None

    listed = json.loads(cli(gitops, "history", "-n", "100", "--json").stdout)
    mine = [(r["revision"], r["result"]) for r in reversed(listed) if r["revision"] == pushed[:12]]
    assert mine[0] == (pushed[:12], "suspended") and mine[-1] == (pushed[:12], "converged"), listed
    triggers = {r["trigger"] for r in listed if r["result"] == "suspended"}
    assert any("push" in t for t in triggers) and any("resync" in t for t in triggers), listed
    assert any("sighup" in r["trigger"] for r in listed if r["result"] == "converged"), listed  # the resume
    one = cli(gitops, "history", pushed[:8])
    assert one.returncode == 0 and "converged" in one.stdout.splitlines()[0]
    assert (
        f"pull {new.name}" in one.stdout and "reconcile.done" not in one.stdout
    )  # shown as the push shows it


def test_observe_to_a_file_then_plan_elsewhere_gives_the_plan_the_server_makes(gitops: GitOps) -> None:
    a = gitops.stack.registry.push_model("obs-a", "t", size_bytes=100 * KiB, seed="oa")
    b = gitops.stack.registry.push_model("obs-b", "t", size_bytes=200 * KiB, seed="ob")
    gitops.commit("two models", models(gitops, a.name, b.name))
    gitops.push()  # no serve: applied by hand below
    at_server = ["--repo", str(gitops.bare), "--rev", "main"]
    applied = cli(gitops, "apply", *at_server)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    ollama.Client(host=gitops.stack.url).delete(b.name)  # drift, so the plan has something to do

    server_plan = cli(gitops, "plan", *at_server, "--json")
    assert server_plan.returncode == 1, server_plan.stderr
    observation = gitops.bare.parent / "f.json"
    wrote = cli(gitops, "observe", *at_server, "-o", str(observation))
    assert wrote.returncode == 0 and "2 models" not in wrote.stdout and "1 models" in wrote.stdout, (
        wrote.stdout
    )
    laptop = gitops.bare.parent / "laptop"
    git("clone", "-q", str(gitops.bare), str(laptop), cwd=gitops.bare.parent)
    elsewhere = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "plan", "--repo", str(laptop), "--rev", "HEAD", "--observed",
         str(observation), "--json"], capture_output=True, text=True, timeout=60, check=False, cwd=laptop,
        env={**os.environ, "RECONCILER_STATE_DIR": str(laptop / "no-state")},
    )  # fmt: skip
    assert elsewhere.returncode == 1, elsewhere.stderr
    laptop_plan, live_plan = json.loads(elsewhere.stdout), json.loads(server_plan.stdout)
    # The free space is measured twice, seconds apart, on a disk other work shares: all else is equal.
    free = [p["budget"].pop("disk_free_after") for p in (laptop_plan, live_plan)]
    assert laptop_plan == live_plan and abs(free[0] - free[1]) < 2**30, free
    assert any(b.name in action["title"] for action in json.loads(elsewhere.stdout)["actions"])
    assert not (laptop / "no-state").exists()


def test_rollback_to_a_commit_restores_its_state_in_one_commit_from_the_cache(gitops: GitOps) -> None:
    a = gitops.stack.registry.push_model("back-a", "t", size_bytes=100 * KiB, seed="ba")
    b = gitops.stack.registry.push_model("back-b", "t", size_bytes=100 * KiB, seed="bb")
    gitops.start_serve()
    first = gitops.commit("only a", models(gitops, a.name))
    assert "✔ converged" in gitops.push().stderr
    gitops.commit("a and b", models(gitops, a.name, b.name))
    assert "✔ converged" in gitops.push().stderr
    gitops.commit("only b", models(gitops, b.name))
    assert "✔ converged" in gitops.push().stderr
    pulls = [c for c in gitops.stack.mutating_ollama_calls() if "pull" in c]
    back = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "rollback", "--to", first[:10], "--repo", str(gitops.bare)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert back.returncode == 0, back.stdout + back.stderr
    assert "✔ converged" in back.stderr  # the hooks stream into the rollback's push
    head = gitops.head()
    tree = [git("rev-parse", f"{c}^{{tree}}", cwd=gitops.bare).stdout for c in (head, first)]
    assert tree[0] == tree[1]
    assert git("log", "-1", "--format=%s", head, cwd=gitops.bare).stdout.startswith(
        f"Roll back to {first[:12]}"
    )
    assert git("rev-list", "--count", f"{first}..{head}", cwd=gitops.bare).stdout.strip() == "3"  # one more
    assert [c for c in gitops.stack.mutating_ollama_calls() if "pull" in c] == pulls  # a came from the cache
    assert waited(gitops)[0] == 0
    rollback = [sys.executable, "-m", "reconciler.cli", "rollback", "--to", first, "--repo", str(gitops.bare)]
    again = subprocess.run(rollback, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode != 0 and "nothing to roll back" in again.stderr


def test_the_push_output_names_the_container_fields_a_recreate_changes(gitops: GitOps) -> None:
    gitops.start_serve()
    gitops.wait_event(lambda e: e["event"] == "reconcile.done" and e["result"] == "converged")
    gitops.stack.ollama["container"]["env"]["OLLAMA_KEEP_ALIVE"] = "10m"
    gitops.stack.ollama["container"]["restart"] = "always"
    gitops.commit("keep models longer", dump_state(gitops))
    push = gitops.push().stderr
    assert "its spec changed: env OLLAMA_KEEP_ALIVE 5m → 10m; restart unless-stopped → always" in push, push
    assert "✔ converged" in push
    plan = cli(gitops, "plan", "--repo", str(gitops.bare), "--rev", "main", "--json")
    assert plan.returncode == 0, plan.stdout  # nothing left: the new label matches
