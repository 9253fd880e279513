"""`reconciler advise`: on an 8 GB card for the example it prints the table and the proposed
edit, and applying that edit (`git apply`) makes a previously refused plan pass; on the
harness's server it finds the other quantizations in the registry's tag list and shows the
benchmarked rate of the model measured (simulated, the fake says) and the others' by size."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.advise_world import example_world
from tests.e2e.stack import EXAMPLE, Stack, example_on

pytestmark = pytest.mark.e2e


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "reconciler.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def _repo(tmp_path: Path, quant: str) -> Path:
    """The example as a git repo, with llama3 pinned at `quant`."""
    repo = tmp_path / "desired"
    shutil.copytree(EXAMPLE, repo)
    old = "llama3:8b-instruct-q4_K_M"
    for name in ("ollama.yaml", "openwebui.yaml"):
        path = repo / name
        text = path.read_text().replace(old, f"llama3:8b-instruct-{quant}")
        path.write_text(text.replace(f"      - llama3:8b-instruct-{quant}\n", f"      - {old}\n", 1))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", f"llama3 at {quant}")
    return repo


def test_advise_on_an_8gb_card_proposes_the_edit_that_makes_a_refused_plan_pass(tmp_path: Path) -> None:
    world = tmp_path / "rtx3070.observed.json"
    world.write_text(example_world().model_dump_json())
    repo = _repo(tmp_path, "q8_0")  # 8.5 GB of weights: too big for 8 GB beside nomic-embed-text
    state = ["--state-dir", str(tmp_path / "state")]

    refused = _cli("plan", "--repo", str(repo), "--observed", str(world), *state)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "pinned models need" in refused.stdout
    # the refusal names the advisor's alternatives that fit, with the numbers
    words = " ".join(refused.stdout.split())
    assert "fits instead: `llama3:8b-instruct-q5_K_M` fits at num_ctx 8192" in words

    shown = _cli("advise", "--repo", str(repo), "--observed", str(world), "--gpu", "8GiB", *state)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "the desired pinned set needs" in out and "does not fit" in out
    for quant in ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M"):
        assert quant in out
    assert "proposal: `llama3:8b-instruct-q5_K_M` fits at num_ctx 8192 with OLLAMA_KV_CACHE_TYPE q4_0" in out
    assert "`llama3:8b-instruct-q6_K` does not" in out
    assert "--- a/ollama.yaml" in out and "+  - name: llama3:8b-instruct-q5_K_M" in out

    data = json.loads(_cli("advise", "--repo", str(repo), "--observed", str(world), "--gpu", "8GiB",
                           "--json", *state).stdout)  # fmt: skip
    assert data["fits"] is False and data["best"]["fits"] is True
    patch = tmp_path / "advice.patch"
    patch.write_text(data["diff"])
    _git(repo, "apply", str(patch))
    passes = _cli("plan", "--repo", str(repo), "--observed", str(world), *state)
    assert passes.returncode in (0, 1), passes.stdout + passes.stderr  # changes to make, none refused
    assert "plan refused" not in passes.stdout
    assert "OLLAMA_KV_CACHE_TYPE: q4_0" in (repo / "ollama.yaml").read_text()
    ok = _cli("validate", str(repo))
    assert ok.returncode == 0, ok.stderr


def test_advise_on_the_server_lists_the_registrys_tags_and_benchmarked_rates(stack: Stack) -> None:
    names = example_on(stack)
    llama3 = names["llama3:8b-instruct-q4_K_M"]
    # other quantizations of the stand-in under the same repository: the registry lists them
    for tag, size, kind in (("8b-instruct-q5_K_M", 224 * 1024, 17), ("8b-instruct-q8_0", 320 * 1024, 7),
                            ("70b-instruct-q4_K_M", 256 * 1024, 15)):  # fmt: skip
        stack.registry.push_model("llama3", tag, arch="llama", block_count=32, head_count=32, head_count_kv=8,
                                  embedding_length=4096, context_length=8192, size_bytes=size, file_type=kind,
                                  seed=f"llama3:{tag}")  # fmt: skip
    stack.ollama["benchmarks"]["candidates"] = {}  # only what the registry lists
    stack.ollama["benchmarks"]["quiet"] = "1s"
    stack.write()
    assert stack.apply().result == "converged"
    state = ["--state-dir", str(stack.state.root)]
    done = _cli("bench", llama3, "--runs", "1", "--repo", str(stack.repo), "--max-wait", "10", *state)
    assert done.returncode == 0, done.stderr[-2000:]

    answer = _cli("advise", "--repo", str(stack.repo), "--json", *state)
    assert answer.returncode == 0, answer.stderr
    data = json.loads(answer.stdout)
    rows = {r["candidate"].rsplit("/", 1)[-1]: r for r in data["rows"] if r["model"] == llama3}
    assert set(rows) == {"llama3:8b-instruct-q4_K_M", "llama3:8b-instruct-q5_K_M", "llama3:8b-instruct-q8_0"}
    mine = rows["llama3:8b-instruct-q4_K_M"]
    assert mine["measured_tps"] > 0 and mine["measured_simulated"] is True
    assert all(r["exact"] for r in rows.values())  # sizes from the registry's manifests
    q8 = rows["llama3:8b-instruct-q8_0"]
    assert q8["predicted_tps"] is not None and q8["predicted_tps"] < mine["measured_tps"]
    # the 70b tag is another model, not a quantization of this one: left out by its stem
    assert not any("70b" in r["candidate"] for r in data["rows"])
    assert httpx.get(f"{stack.url}/api/tags", timeout=10).json()["models"]  # nothing was pulled for it
    assert not any(
        "q8_0" in m["name"] for m in httpx.get(f"{stack.url}/api/tags", timeout=10).json()["models"]
    )

    # people chat with phi3 again and again: with OLLAMA_MAX_LOADED_MODELS 2 Ollama unloads a
    # pinned model for it each time (the reconciler loads it back and remembers the eviction)
    phi3 = names["phi3:mini"]
    for _ in range(3):
        body = {"model": phi3, "prompt": "hi", "stream": False, "options": {"num_predict": 4}}
        assert httpx.post(f"{stack.url}/api/generate", json=body, timeout=60).status_code == 200
        assert stack.apply().result == "converged"
    evictions = stack.state.load().evictions
    assert max(len(v) for v in evictions.values()) >= 2, evictions
    data = json.loads(_cli("advise", "--repo", str(stack.repo), "--json", *state).stdout)
    found = [e for e in data["evictions"] if e["by"] == phi3]
    assert found, data["evictions"]
    for seen in found:  # each pinned model it pushed out twice or more
        assert seen["count"] >= 2 and seen["options"], seen
        runners = [
            c for o in seen["options"] for c in o["changes"] if "OLLAMA_MAX_LOADED_MODELS" in c["path"]
        ]
        assert len(runners) == len(seen["options"]) and all(c["new"] == 3 for c in runners), seen["options"]
    text = _cli("advise", "--repo", str(stack.repo), *state).stdout
    assert "evicted" in text and "OLLAMA_MAX_LOADED_MODELS: 2 → 3" in text, text
