"""The reconciler against Ollama's real behaviour (issue 11), on the real engine with the fake
in the container the reconciler creates: each test is a path that broke or looped when the
fake agreed with the reconciler instead of with Ollama's source."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from reconciler.apply.models import ModelActionRefused
from reconciler.desired.refs import canonical
from reconciler.errors import InvalidDesiredState
from tests.e2e.stack import Stack
from tests.harness.registry import Registry
from tests.harness.server_config import allow_secrets

pytestmark = pytest.mark.e2e
KiB = 1024


def pinned(name: str, num_ctx: int | None = 256) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "keep_loaded": True}
    if num_ctx is not None:
        entry["num_ctx"] = num_ctx
    return entry


def extra_env(stack: Stack, **env: str) -> None:
    stack.ollama["container"]["env"]["extra"].update(env)
    stack.write()


def converged_twice(stack: Stack) -> None:
    first = stack.apply()
    assert first.result == "converged", (first.notes, [o.failed for o in first.outcomes])
    calls = stack.mutating_ollama_calls()
    again = stack.apply()
    assert again.result == "converged" and again.actions_run == 0, again.plans[0].actions
    assert stack.mutating_ollama_calls() == calls


# -- 1 ----------------------------------------------------------------------------------------
def test_a_load_slower_than_the_api_timeout_completes_and_shows_its_progress(stack: Stack) -> None:
    model = stack.registry.push_model("fid-slow", "t", size_bytes=768 * KiB, seed="fid-slow")
    stack.set_models(pinned(model.name))
    extra_env(stack, FAKE_OLLAMA_LOAD_RATE=str(192 * KiB))  # 4 s to load
    stack.runtime.api_timeout = 1.5  # every other call answers at once; the load must not use it
    report = stack.apply()
    assert report.result == "converged", [o.failed for o in report.outcomes]
    assert model.name in stack.loaded()
    progress = stack.recorder.named("load.progress")
    assert progress and progress[-1]["model"] == model.name
    assert progress[-1]["elapsed_s"] >= 1 and progress[-1]["timeout_s"] >= 300
    (done,) = stack.recorder.named("load.done")
    assert done["elapsed_s"] >= 3.5
    assert not [e for e in stack.fake_events() if e["type"] == "load_aborted"]


# -- 2 ----------------------------------------------------------------------------------------
def test_two_pinned_names_on_one_weights_blob_count_once_and_stay_converged(stack: Stack) -> None:
    base = stack.registry.push_model("fid-base", "t", size_bytes=600 * KiB, seed="fid-base")
    stack.set_models(pinned(base.name))
    first = stack.apply()
    assert first.result == "converged"
    one = first.plans[-1].budget.vram_pinned
    (copy,) = first.plans[-1].budget.vram_estimates
    # One copy fits the budget, two would not: a double count is a false refusal.
    stack.server["budgets"]["vram"] = {"per_gpu": one + copy.total // 2}
    stack.ollama["derived"] = [
        {"name": "fid-work", "from": base.name, "system": "Be brief.", "keep_loaded": True}
    ]
    stack.write()
    converged_twice(stack)
    assert list(stack.loaded()) == [base.name]  # one runner, under the name that loaded it first
    assert stack.state.load().evictions == {}
    report = stack.apply()
    assert report.plans[-1].budget.vram_pinned == one


# -- 3 ----------------------------------------------------------------------------------------
def test_a_pinned_embedding_model_is_loaded_through_embed(stack: Stack) -> None:
    embed = stack.registry.push_model(
        "fid-embed", "t", arch="nomic-bert", pooling_type=1, size_bytes=128 * KiB, seed="fid-embed"
    )
    stack.set_models(pinned(embed.name))
    converged_twice(stack)
    assert stack.loaded()[embed.name]["expires_at"].startswith("23")
    logs = stack.container().logs().decode()
    assert '"POST /api/embed HTTP/1.1" 200' in logs
    # Unpinning it unloads it (as `ollama stop` does, with generate and keep_alive 0).
    stack.set_models(embed.name)
    assert stack.apply().result == "converged"
    assert stack.loaded() == {}


# -- 4 ----------------------------------------------------------------------------------------
def test_a_parameter_of_the_wrong_type_is_refused_at_validate_with_its_line(stack: Stack) -> None:
    base = stack.registry.push_model("fid-typed", "t", size_bytes=64 * KiB, seed="fid-typed")
    stack.set_models(base.name)
    stack.ollama["derived"] = [
        {"name": "fid-stop", "from": base.name, "parameters": {"stop": "<|end|>"}, "keep_loaded": True}
    ]
    stack.write()
    with pytest.raises(InvalidDesiredState) as invalid:
        stack.apply()
    (problem,) = invalid.value.problems
    assert problem.file == "ollama.yaml" and problem.line > 1
    assert problem.field == "derived[0].parameters.stop"
    assert "list of strings" in problem.message
    assert stack.mutating_ollama_calls() == []


def test_a_template_ollama_refuses_fails_only_that_models_create(stack: Stack) -> None:
    base = stack.registry.push_model("fid-tmpl", "t", size_bytes=64 * KiB, seed="fid-tmpl")
    stack.set_models(pinned(base.name))
    stack.ollama["derived"] = [{"name": "fid-bad", "from": base.name, "template": "{{ .Prompt"}]
    stack.write()
    report = stack.apply()
    assert report.result == "failed"
    ((title, error),) = [f for o in report.outcomes for f in o.failed]
    assert title.startswith("create fid-bad")
    assert str(error).endswith("template error: template: :1: unclosed action")  # Ollama's own words
    assert isinstance(error, ModelActionRefused) and report.stalled  # 400: the same create fails again
    assert base.name in stack.loaded()  # the base's warm load was not blocked
    assert "fid-bad:latest" not in stack.tags()


# -- 5 ----------------------------------------------------------------------------------------
def test_a_registry_with_login_is_looked_up_with_a_token_and_its_credentials(
    stack: Stack, login_registry: Registry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    public = login_registry.push_model("fid-open", "t", size_bytes=64 * KiB, seed="fid-open")
    private = login_registry.push_model(
        "fid-secret", "t", size_bytes=96 * KiB, seed="fid-secret", namespace="private"
    )
    user, password = next(iter(login_registry.login.users.items()))  # type: ignore[union-attr]
    # The server's owner allows that secret, and only to that registry (reconciler.toml).
    registry_host = login_registry.host.split(":")[0]
    allow_secrets(
        monkeypatch, tmp_path, env=["RCL_TEST_REGISTRY_PASSWORD"],
        send_to={"RCL_TEST_REGISTRY_PASSWORD": [registry_host]},
    )  # fmt: skip
    monkeypatch.setenv("RCL_TEST_REGISTRY_PASSWORD", password)
    stack.ollama["registries"].append(
        {
            "host": login_registry.host,
            "insecure": True,
            "url": login_registry.url,
            "login": {"username": user, "password": {"env": "RCL_TEST_REGISTRY_PASSWORD"}},
        }
    )
    stack.set_models(public.name)
    assert stack.apply().result == "converged"  # the container exists: register its key
    login_registry.allow_ollama_key(
        stack.container().exec_run(["cat", "/root/.ollama/id_ed25519.pub"]).output.decode()
    )
    stack.set_models(public.name, private.name)
    report = stack.apply()
    assert report.result == "converged", report.plans[0].violations
    (pull,) = [a for a in report.plans[0].actions if a.kind == "pull"]
    assert pull.download_bytes == private.total_size  # the size came from the private manifest
    assert stack.tags() == {public.name, private.name}
    # Without the password the plan is refused with the fix, and the secret is nowhere.
    monkeypatch.delenv("RCL_TEST_REGISTRY_PASSWORD")
    stack.set_models(public.name, private.name, login_registry.model_name("fid-other", "t", "private"))
    refused = stack.apply()
    assert refused.result == "refused"
    text = " ".join(v.message for v in refused.plans[-1].violations)
    assert "RCL_TEST_REGISTRY_PASSWORD" in text and password not in text


# -- 6 ----------------------------------------------------------------------------------------
def test_num_ctx_above_the_trained_context_is_planned_capped_and_said(stack: Stack) -> None:
    model = stack.registry.push_model("fid-short", "t", context_length=2048, seed="fid-short")
    stack.set_models(pinned(model.name, num_ctx=8192))
    converged_twice(stack)
    assert stack.loaded()[model.name]["context_length"] == 2048
    notes = " ".join(n.message for n in stack.apply().notes if n.kind == "num_ctx_capped")
    assert "8192" in notes and "2048" in notes


def test_a_negative_keep_alive_does_not_make_a_persons_model_look_pinned(stack: Stack) -> None:
    mine = stack.registry.push_model("fid-mine", "t", size_bytes=64 * KiB, seed="fid-mine")
    theirs = stack.registry.push_model("fid-theirs", "t", size_bytes=64 * KiB, seed="fid-theirs")
    stack.ollama["container"]["env"]["OLLAMA_KEEP_ALIVE"] = "-1m"
    extra_env(stack, FAKE_OLLAMA_GPU_VRAM=str(64 * 2**20))  # room for both
    stack.set_models(pinned(mine.name), theirs.name)
    assert stack.apply().result == "converged"
    ollama.Client(host=stack.url).chat(model=theirs.name, messages=[{"role": "user", "content": "hi"}])
    assert stack.loaded()[theirs.name]["expires_at"].startswith("23")  # forever, by the server default
    report = stack.apply()
    assert report.result == "converged" and report.actions_run == 0, report.plans[0].actions
    assert set(stack.loaded()) == {mine.name, theirs.name}


def test_a_model_whose_weights_blob_is_gone_is_repulled_and_the_others_are_planned(stack: Stack) -> None:
    broken = stack.registry.push_model("fid-gone", "t", size_bytes=128 * KiB, seed="fid-gone")
    fine = stack.registry.push_model("fid-fine", "t", size_bytes=64 * KiB, seed="fid-fine")
    stack.set_models(pinned(broken.name), fine.name)
    assert stack.apply().result == "converged"
    blob = f"/root/.ollama/models/blobs/sha256-{broken.model_layer.digest.removeprefix('sha256:')}"
    assert stack.container().exec_run(["rm", blob]).exit_code == 0
    report = stack.apply()
    assert report.result == "converged", report.notes
    (pull,) = [a for a in report.plans[0].actions if a.kind == "pull"]
    assert pull.canonical == canonical(broken.name) and "missing" in pull.reason
    assert broken.model_layer.digest.replace(":", "-") in stack.blob_files()
    assert broken.name in stack.loaded()


def test_a_corrupt_weights_blob_is_removed_and_pulled_again_but_a_passing_error_is_not(stack: Stack) -> None:
    model = stack.registry.push_model("fid-rot", "t", size_bytes=128 * KiB, seed="fid-rot")
    stack.set_models(model.name)
    assert stack.apply().result == "converged"
    # Ollama failing to show the model, with the blobs fine on disk: no remove, no pull.
    httpx.post(f"{stack.url}/__fake/fault", json={"status": 500, "error": "boom", "paths": ["/api/show"]})
    calls = stack.mutating_ollama_calls()
    passing = stack.apply()
    httpx.delete(f"{stack.url}/__fake/fault")
    assert passing.result == "converged" and passing.actions_run == 0
    assert stack.mutating_ollama_calls() == calls
    # The weights overwritten with zeros (same size): Ollama says "invalid file magic", and a
    # pull alone would keep the bad blob (a cache hit), so it is removed first.
    blob = f"/root/.ollama/models/blobs/sha256-{model.model_layer.digest.removeprefix('sha256:')}"
    size = model.model_layer.size
    assert stack.container().exec_run(["sh", "-c", f"head -c {size} /dev/zero > {blob}"]).exit_code == 0
    report = stack.apply()
    assert report.result == "converged", report.notes
    assert [a.kind for a in report.plans[0].actions] == ["remove", "pull"]
    assert "invalid file magic" in report.plans[0].actions[0].reason
    shown = httpx.post(f"{stack.url}/api/show", json={"model": model.name}, timeout=10)
    assert shown.status_code == 200


# -- 7 ----------------------------------------------------------------------------------------
def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "reconciler.cli", *args, "--state-dir", str(stack.state.root)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


def test_status_shows_the_ollama_version_and_an_old_one_is_degraded(stack: Stack) -> None:
    model = stack.registry.push_model("fid-ver", "t", size_bytes=64 * KiB, seed="fid-ver")
    stack.set_models(model.name)
    extra_env(stack, FAKE_OLLAMA_VERSION="0.5.7")
    applied = _cli(stack, "apply", "--repo", str(stack.repo))
    assert applied.returncode == 0, applied.stderr
    status = json.loads(_cli(stack, "status", "--json").stdout)
    assert (status["ollama_version"], status["ollama_supported"]) == ("0.5.7", False)
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] is True
    assert (
        "0.5.7" in degraded["message"] and "0.6.8" in degraded["message"] and "upgrade" in degraded["message"]
    )
    assert "0.5.7 — NOT supported (oldest supported: 0.6.8)" in _cli(stack, "status").stdout

    extra_env(stack, FAKE_OLLAMA_VERSION="0.6.8")
    assert _cli(stack, "apply", "--repo", str(stack.repo)).returncode == 0
    status = json.loads(_cli(stack, "status", "--json").stdout)
    assert (status["ollama_version"], status["ollama_supported"]) == ("0.6.8", True)
    assert next(c for c in status["conditions"] if c["type"] == "Degraded")["status"] is False
    assert "ollama:              0.6.8 (supported" in _cli(stack, "status").stdout
    assert httpx.get(f"{stack.url}/api/version").json() == {"version": "0.6.8"}
