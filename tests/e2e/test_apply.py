"""`apply` on the real engine: the reconciler creates the Ollama(-compatible) container,
pulls real bytes from the real registry, and a second run changes nothing."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from reconciler.desired.refs import canonical
from reconciler.labels import SPEC_HASH
from tests.e2e.stack import Stack, apply_until_pulling, wait_until
from tests.imports_probe import probe

pytestmark = pytest.mark.e2e
KiB = 1024


def test_from_empty_server_to_converged_then_a_noop_with_zero_mutating_calls(stack: Stack) -> None:
    fast = stack.registry.push_model("e2e-phi", "mini", size_bytes=300 * KiB, seed="phi")
    main = stack.registry.push_model("e2e-llama", "q4", size_bytes=500 * KiB, seed="llama")
    stack.set_models({"name": main.name, "keep_loaded": True, "num_ctx": 256}, fast.name)

    report = stack.apply()
    assert report.result == "converged", report.notes
    assert stack.container().labels[SPEC_HASH]
    assert stack.tags() == {main.name, fast.name}
    loaded = stack.loaded()
    assert list(loaded) == [main.name] and loaded[main.name]["expires_at"].startswith("23")
    progress = [
        e for e in stack.recorder.named("pull.progress") if e["model"] == main.name and e.get("total")
    ]
    assert (
        progress
        and progress[-1]["completed"]
        == progress[-1]["total"]
        == main.total_size  # config blob included, as in Ollama
    )
    assert all(e["completed"] <= f["completed"] for e, f in itertools.pairwise(progress))
    assert {"rate_bps", "eta_s", "percent"} <= set(progress[-1])

    calls_before = stack.mutating_ollama_calls()
    time.sleep(1.1)  # docker events have one-second resolution: keep the first apply's out
    since = datetime.now(UTC)
    again = stack.apply()
    assert again.result == "converged" and again.actions_run == 0
    assert stack.mutating_ollama_calls() == calls_before  # Ollama seam
    time.sleep(1.1)  # docker events have one-second resolution
    assert stack.docker_events(since) == []  # Docker seam


def test_apply_cli_reports_a_noop(stack: Stack) -> None:
    model = stack.registry.push_model("e2e-cli", "t", size_bytes=64 * KiB, seed="cli")
    stack.set_models(model.name)
    assert stack.apply().result == "converged"
    result = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "apply", "--repo", str(stack.repo), "--state-dir",
         str(stack.state.root)], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "no changes" in result.stdout and "0 mutating calls" in result.stdout
    # It observed the real server through the clients, and imported no executor (start-up).
    modules, again = probe("apply", "--repo", str(stack.repo), "--state-dir", str(stack.state.root))
    assert "no changes" in again.stdout, again.stderr
    assert {"docker", "httpx", "pydantic"} <= modules
    assert not modules & {"reconciler.apply", "cryptography", "apprise", "matplotlib", "git"}


def test_changing_the_image_env_recreates_the_container_and_keeps_every_model(stack: Stack) -> None:
    model = stack.registry.push_model("e2e-keep", "t", size_bytes=200 * KiB, seed="keep")
    stack.set_models(model.name)
    assert stack.apply().result == "converged"
    old = stack.container()
    stack.ollama["container"]["env"]["OLLAMA_NUM_PARALLEL"] = 2
    stack.write()
    report = stack.apply()
    assert report.result == "converged"
    assert [a.kind for a in report.plans[0].actions] == ["container"]
    new = stack.container()
    assert new.id != old.id and "OLLAMA_NUM_PARALLEL=2" in new.attrs["Config"]["Env"]
    assert stack.tags() == {model.name}
    assert not any(c.startswith("POST /api/pull") for c in stack.mutating_ollama_calls())


def test_removed_model_is_cached_then_removed_with_policy_remove(stack: Stack) -> None:
    a = stack.registry.push_model("e2e-a", "t", size_bytes=100 * KiB, seed="a")
    b = stack.registry.push_model("e2e-b", "t", size_bytes=100 * KiB, seed="b")
    stack.set_models(a.name, b.name)
    assert stack.apply().result == "converged"
    stack.set_models(a.name)
    report = stack.apply()
    assert report.actions_run == 0 and stack.tags() == {a.name, b.name}  # rollback cache
    assert report.plans[-1].budget.cached_models == (canonical(b.name),)
    stack.ollama["removal"] = {"undesired": "remove"}
    stack.write()
    assert stack.apply().result == "converged"
    assert stack.tags() == {a.name}


def test_models_pulled_by_hand_are_left_alone(stack: Stack) -> None:
    a = stack.registry.push_model("e2e-mine", "t", size_bytes=64 * KiB, seed="mine")
    hand = stack.registry.push_model("e2e-hand", "t", size_bytes=64 * KiB, seed="hand")
    stack.set_models(a.name)
    stack.ollama["removal"] = {"undesired": "remove"}
    stack.write()
    assert stack.apply().result == "converged"
    import ollama

    ollama.Client(host=stack.url).pull(hand.name, insecure=True)
    assert stack.apply().actions_run == 0
    assert stack.tags() == {a.name, hand.name}


def test_a_plan_over_the_disk_budget_is_refused_before_any_byte_is_pulled(stack: Stack) -> None:
    big = stack.registry.push_model("e2e-big", "t", size_bytes=900 * KiB, seed="big")
    stack.set_models(big.name)
    stack.server["budgets"]["disk"]["models"] = "512KiB"
    stack.write()
    report = stack.apply()
    assert report.result == "refused"
    (violation,) = report.plans[-1].violations
    assert violation.budget == "disk" and violation.entries[0][0] == canonical(big.name)
    assert not any(c.startswith("POST /api/pull") for c in stack.mutating_ollama_calls())
    assert stack.blob_files() == {}
    # The registry only served the bounded header look-up (ranged), never a pull.
    assert all(r["status"] == 206 for r in stack.registry.blob_requests(big.model_layer.digest))


def test_a_pull_killed_halfway_resumes_without_downloading_again(stack: Stack) -> None:
    model = stack.registry.push_model("e2e-slow", "t", size_bytes=2048 * KiB, seed="slow")
    stack.set_models(model.name)
    stack.ollama["container"]["env"]["extra"]["FAKE_OLLAMA_PULL_RATE"] = str(512 * KiB)
    stack.write()
    proc = apply_until_pulling(stack, 40)
    proc.kill()
    proc.wait(timeout=10)
    wait_until(lambda: any(n.endswith("-partial") for n in stack.blob_files()))
    partial = max(size for n, size in stack.blob_files().items() if n.endswith("-partial"))
    assert 0 < partial < model.model_layer.size
    report = stack.apply()
    assert report.result == "converged" and stack.tags() == {model.name}
    downloads = [
        e for e in stack.fake_events() if e["type"] == "download" and e["digest"] == model.model_layer.digest
    ]
    starts = [d["range_start"] for d in downloads]
    # The partial may still grow a little after we read its size (the server notices the client
    # hung up at its next write), so the resume starts at or after what we saw, never at 0.
    assert len(starts) == 2 and starts[0] == 0, starts
    assert partial <= starts[1] < model.model_layer.size, "the second pull started over"


def test_a_chat_that_evicts_a_pinned_model_is_healed_and_recorded(stack: Stack) -> None:
    pinned = stack.registry.push_model("e2e-pin", "t", size_bytes=600 * KiB, seed="pin")
    other = stack.registry.push_model("e2e-other", "t", size_bytes=600 * KiB, seed="other")
    stack.ollama["container"]["env"]["extra"]["FAKE_OLLAMA_GPU_VRAM"] = str(1400 * KiB)
    stack.set_models({"name": pinned.name, "keep_loaded": True, "num_ctx": 256}, other.name)
    assert stack.apply().result == "converged"
    assert set(stack.loaded()) == {pinned.name}
    import ollama

    ollama.Client(host=stack.url).chat(model=other.name, messages=[{"role": "user", "content": "hi"}])
    assert set(stack.loaded()) == {other.name}  # Ollama evicted the pinned model

    report = stack.apply()
    assert report.result == "converged"
    (load,) = [a for a in report.plans[0].actions if a.kind == "load"]
    assert other.name in load.reason and "evicted" in load.reason
    assert pinned.name in stack.loaded()
    memory = stack.state.load()
    assert [e.suspects for e in memory.evictions[canonical(pinned.name)]] == [(canonical(other.name),)]
