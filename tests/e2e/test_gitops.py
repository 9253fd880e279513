"""The GitOps loop with real `git push`, real hooks and `reconciler serve` as a process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import docker.errors
import httpx
import ollama
import pytest

from reconciler.desired.refs import canonical
from tests.e2e.gitops import GitOps, dump_state, git
from tests.e2e.stack import wait_until

pytestmark = pytest.mark.e2e
KiB = 1024


def _models(ops: GitOps, *models: object) -> dict[str, str]:
    ops.stack.ollama["models"] = [{"name": m} if isinstance(m, str) else m for m in models]
    return dump_state(ops)


def test_valid_push_converges_and_the_pusher_sees_progress_and_the_result(gitops: GitOps) -> None:
    model = gitops.stack.registry.push_model("gitops-a", "t", size_bytes=400 * KiB, seed="ga")
    gitops.start_serve()
    sha = gitops.commit("add a model", _models(gitops, model.name))
    push = gitops.push()
    out = push.stderr
    assert push.returncode == 0, out
    assert f"remote: reconciler: {sha[:12]} is valid" in out, out
    assert f"remote: plan: pull {model.name}" in out, out
    assert "remote: [" in out and "pulling" in out, out
    assert f"remote: reconciler: ✔ converged {sha[:12]}" in out, out
    assert model.name in gitops.stack.tags()
    status = gitops.status()
    assert status["last_applied_revision"] == sha and status["serve_pid"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] is True and ready["reason"] == "Converged"


def test_invalid_push_is_rejected_with_file_and_line_and_changes_nothing(gitops: GitOps) -> None:
    gitops.start_serve()
    before_head = gitops.head()
    gitops.wait_event(lambda e: e["event"] == "reconcile.done")
    container = gitops.stack.container().id
    bad = gitops.ollama_yaml().replace("gpus: none", "gpus: some")
    gitops.commit("typo", {"ollama.yaml": bad})
    push = gitops.push()
    assert push.returncode != 0
    assert "remote: reconciler: rejected" in push.stderr
    assert "ollama.yaml:" in push.stderr and "container.gpus" in push.stderr
    assert gitops.head() == before_head
    assert gitops.stack.container().id == container


def test_revert_converges_back_from_the_rollback_cache_without_downloading(gitops: GitOps) -> None:
    a = gitops.stack.registry.push_model("gitops-keep", "t", size_bytes=100 * KiB, seed="k")
    b = gitops.stack.registry.push_model("gitops-drop", "t", size_bytes=300 * KiB, seed="d")
    gitops.start_serve()
    gitops.commit("two models", _models(gitops, a.name, b.name))
    assert "✔ converged" in gitops.push().stderr
    removal = gitops.commit("drop b", _models(gitops, a.name))
    assert "✔ converged" in gitops.push().stderr
    assert b.name in gitops.stack.tags()  # kept as rollback cache
    pulls_before = [c for c in gitops.stack.mutating_ollama_calls() if "pull" in c]
    rollback = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "rollback", removal, "--repo", str(gitops.bare)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert rollback.returncode == 0, rollback.stderr
    assert "✔ converged" in rollback.stderr  # the hooks stream into the rollback's push
    log = git("log", "-1", "--format=%s", "main", cwd=gitops.bare).stdout
    assert log.startswith('Revert "drop b"')
    assert [c for c in gitops.stack.mutating_ollama_calls() if "pull" in c] == pulls_before
    assert b.name in gitops.stack.tags()


def test_a_burst_of_ten_pushes_coalesces_and_the_newest_commit_wins(gitops: GitOps) -> None:
    gitops.start_serve()
    gitops.wait_event(lambda e: e["event"] == "reconcile.done")
    start = len(gitops.events())
    shas = [gitops.commit(f"burst {i}", {"notes.md": f"change {i}\n"}) for i in range(10)]
    git("push", "-q", "origin", "HEAD:refs/staging/burst", cwd=gitops.work)  # objects only
    t0 = time.monotonic()
    for sha in shas:  # ten ref updates within a second, as ten pushes end
        git("update-ref", "refs/heads/main", sha, cwd=gitops.bare)
        time.sleep(0.05)
    assert time.monotonic() - t0 < 1.0, time.monotonic() - t0
    done = gitops.wait_event(
        lambda e: e["event"] == "reconcile.done" and e["revision"] == shas[-1][:12], after=start, timeout=30
    )
    assert done["result"] == "converged"
    time.sleep(1.5)
    starts = [e for e in gitops.events()[start:] if e["event"] == "reconcile.start"]
    shown = ("trigger", "reconcile.start", "reconcile.done", "reconcile.preempted")
    triggers = [
        (e["ts"][14:23], e["event"], e.get("reasons"), e.get("revision"), e.get("result"))
        for e in gitops.events()[start:]
        if e["event"] in shown
    ]
    assert 1 <= len(starts) <= 2, "\n".join(map(str, triggers))
    assert gitops.status()["last_applied_revision"] == shas[-1]


def test_a_deleted_container_is_healed_without_a_push(gitops: GitOps) -> None:
    model = gitops.stack.registry.push_model("gitops-heal", "t", size_bytes=100 * KiB, seed="h")
    gitops.stack.set_models(model.name)
    gitops.commit("model", dump_state(gitops))
    gitops.start_serve()
    assert "✔ converged" in gitops.push().stderr
    gitops.stack.container().remove(force=True)
    removed_at = time.monotonic()

    def back() -> bool:
        try:
            return bool(gitops.stack.container().status == "running") and model.name in gitops.stack.tags()
        except (docker.errors.NotFound, httpx.HTTPError, OSError, ValueError):
            return False

    try:
        wait_until(back, timeout=30)
    except AssertionError:
        tail = [(e["event"], e.get("reasons"), e.get("result"), e.get("error"), e.get("notes"))
                for e in gitops.events()[-30:]]  # fmt: skip
        raise AssertionError("\n".join(map(str, tail))) from None
    assert time.monotonic() - removed_at < 30
    reasons = [
        e for e in gitops.events() if e["event"] == "trigger" and any("docker" in r for r in e["reasons"])
    ]
    assert reasons, "the heal was not triggered by a Docker event"


def test_a_model_deleted_by_hand_is_pulled_again_by_the_periodic_resync(gitops: GitOps) -> None:
    model = gitops.stack.registry.push_model("gitops-resync", "t", size_bytes=100 * KiB, seed="r")
    gitops.stack.set_models(model.name)
    gitops.commit("model", dump_state(gitops))
    gitops.start_serve("--resync", "2")
    assert "✔ converged" in gitops.push().stderr
    ollama.Client(host=gitops.stack.url).delete(model.name)
    assert model.name not in gitops.stack.tags()
    wait_until(lambda: model.name in gitops.stack.tags(), timeout=30)


def test_kill_9_mid_pull_then_restart_converges_without_starting_over(gitops: GitOps) -> None:
    model = gitops.stack.registry.push_model("gitops-slow", "t", size_bytes=2048 * KiB, seed="s")
    gitops.stack.ollama["container"]["env"]["extra"]["FAKE_OLLAMA_PULL_RATE"] = str(512 * KiB)
    gitops.stack.set_models(model.name)
    gitops.commit("slow model", dump_state(gitops))
    gitops.start_serve()
    gitops.push(timeout=0)
    gitops.wait_event(lambda e: e["event"] == "pull.progress" and e.get("percent", 0) >= 30, timeout=60)
    gitops.kill_serve()
    journal = gitops.state_dir / "journal.json"
    assert journal.exists()  # the pull was in flight
    gitops.start_serve()
    recovered = gitops.wait_event(lambda e: e["event"] == "serve.recovered")
    assert recovered["kind"] == "pull"
    gitops.wait_event(lambda e: e["event"] == "reconcile.done" and e["result"] == "converged", timeout=60,
                      after=gitops.events().index(recovered))  # fmt: skip
    assert model.name in gitops.stack.tags()
    events = gitops.stack.fake_events()
    starts = [
        e["range_start"]
        for e in events
        if e["type"] == "download" and e["digest"] == model.model_layer.digest
    ]
    assert starts[0] == 0 and all(s > 0 for s in starts[1:]), starts


def test_a_second_serve_on_the_same_state_dir_refuses_to_start(gitops: GitOps) -> None:
    gitops.start_serve()
    second = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "serve", "--repo", str(gitops.bare), "--state-dir",
         str(gitops.state_dir)], capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert second.returncode != 0 and "another `reconciler serve`" in second.stderr


def test_apply_refuses_beside_serve_and_alone_writes_the_status(gitops: GitOps) -> None:
    model = gitops.stack.registry.push_model("gitops-apply", "t", size_bytes=100 * KiB, seed="gap")
    sha = gitops.commit("a model", _models(gitops, model.name))
    git("push", "-q", "origin", "HEAD:main", cwd=gitops.work)  # no serve yet: nothing applied
    apply = [sys.executable, "-m", "reconciler.cli", "apply", "--repo", str(gitops.bare), "--rev", "main",
             "--state-dir", str(gitops.state_dir)]  # fmt: skip
    gitops.start_serve()
    gitops.wait_event(lambda e: e["event"] == "reconcile.done" and e["result"] == "converged")
    beside = subprocess.run(apply, capture_output=True, text=True, timeout=120, check=False)
    assert beside.returncode == 4 and "another `reconciler serve`" in beside.stderr, beside.stderr
    assert beside.stdout == ""  # refused before observing or planning anything
    gitops.stop_serve()
    (gitops.state_dir / "status.json").unlink()
    gitops.stack.container().remove(force=True)
    alone = subprocess.run(apply, capture_output=True, text=True, timeout=120, check=False)
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert gitops.stack.container().status == "running"
    status = gitops.status()
    assert status["last_applied_revision"] == sha
    assert any(c["type"] == "Ready" and c["status"] for c in status["conditions"]), status
    assert [m["name"] for m in status["models"] if m["present"]] == [canonical(model.name)]


def test_push_without_serve_says_how_to_start_it(gitops: GitOps) -> None:
    gitops.commit("no serve", {"notes.md": "x\n"})
    push = gitops.push()
    assert push.returncode == 0
    assert "`reconciler serve` is not running" in push.stderr and "systemctl start reconciler" in push.stderr


def test_logs_and_status_read_the_state_dir(gitops: GitOps) -> None:
    gitops.start_serve()
    gitops.wait_event(lambda e: e["event"] == "reconcile.done")
    cli = [sys.executable, "-m", "reconciler.cli"]
    state = ["--state-dir", str(gitops.state_dir)]
    logs = subprocess.run([*cli, "logs", *state], capture_output=True, text=True, timeout=60, check=True)
    assert "event='reconcile.done'" in logs.stdout
    human = subprocess.run([*cli, "status", *state], capture_output=True, text=True, timeout=60, check=True)
    assert "Ready" in human.stdout and "serve running" in human.stdout
    assert canonical("x") not in human.stdout


def test_a_newer_commit_preempts_between_actions_and_the_pull_in_flight_is_not_restarted(
    gitops: GitOps,
) -> None:
    slow = gitops.stack.registry.push_model("gitops-pre-slow", "t", size_bytes=2048 * KiB, seed="ps")
    small = gitops.stack.registry.push_model("gitops-pre-small", "t", size_bytes=64 * KiB, seed="pm")
    gitops.stack.ollama["container"]["env"]["extra"]["FAKE_OLLAMA_PULL_RATE"] = str(1024 * KiB)
    gitops.start_serve()
    gitops.wait_event(lambda e: e["event"] == "reconcile.done")
    first = gitops.commit("two models", _models(gitops, slow.name, small.name))
    gitops.push(timeout=0)
    gitops.wait_event(lambda e: e["event"] == "pull.progress" and e["model"] == slow.name and e.get("total"))
    second = gitops.commit("only the slow one", _models(gitops, slow.name))
    gitops.push(timeout=0)
    done = gitops.wait_event(
        lambda e: e["event"] == "reconcile.done" and e["revision"] == second[:12], timeout=60
    )
    assert done["result"] == "converged"
    results = {e["revision"]: e["result"] for e in gitops.events() if e["event"] == "reconcile.done"}
    assert results[first[:12]] == "preempted"
    assert gitops.stack.tags() == {slow.name}
    events = gitops.stack.fake_events()
    downloads = [e for e in events if e["type"] == "download" and e["digest"] == slow.model_layer.digest]
    assert [d["range_start"] for d in downloads] == [0], "the pull in flight was restarted"
    assert not [e for e in events if e["type"] == "pull_start" and "pre-small" in str(e.get("model"))]


def test_metrics_are_served_on_loopback(gitops: GitOps) -> None:
    from tests.harness.registry import free_port

    port = free_port()
    gitops.start_serve("--metrics-port", str(port))
    gitops.wait_event(lambda e: e["event"] == "reconcile.done")
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert 'reconciler_reconciles_total{result="converged"}' in text
    assert "reconciler_reconcile_duration_seconds_bucket" in text
    assert "reconciler_last_success_timestamp_seconds" in text
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = [line.split()[1] for line in listening if line.split()[3] == "0A"]  # 0A = LISTEN
    assert f"0100007F:{port:04X}" in local and f"00000000:{port:04X}" not in local
