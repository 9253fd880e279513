"""Contract tests of the fake Ollama's timing: the Metrics fields (api/types.go at v0.32.15) as
real Ollama fills them (routes.go GenerateHandler: load_duration and total_duration from its
checkpoints; llm/llama_server.go: prompt_eval_count = cache_n + prompt_n, prompt_eval_duration
= prompt_ms, eval_count/_duration = predicted_n/_ms), streamed one chunk per token, with the
durations the performance model of tests/harness/fake_ollama/perf.py gives; and how a request
in flight shows in /api/ps (sched.go useLoadedRunner, finishedReqCh, loadedModels).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.harness.fake_ollama import perf
from tests.harness.fake_ollama.gguf_reader import read_gguf_metadata
from tests.harness.fake_ollama.scheduler import SchedConfig, estimate
from tests.harness.plugin import FakeOllama, FakeOllamaFactory
from tests.harness.registry import PushedModel, Registry

pytestmark = pytest.mark.e2e
KiB = 1024
# 512 KiB of weights at 64 MiB/s: ~8 ms a token; 8B parameters at 4 TFLOP/s: 4 ms a prompt token
SLOW = {
    "FAKE_OLLAMA_GPU_BANDWIDTH": str(64 * 2**20),
    "FAKE_OLLAMA_CPU_BANDWIDTH": str(8 * 2**20),
    "FAKE_OLLAMA_GPU_FLOPS": "4e12",
    "FAKE_OLLAMA_CPU_FLOPS": "1e12",
}


@pytest.fixture(scope="module")
def model(registry: Registry) -> PushedModel:
    return registry.push_model("perf-base", "v1", size_bytes=512 * KiB, seed="perf-base")


def _ready(fake: FakeOllama, pushed: PushedModel) -> None:
    fake.client.pull(pushed.name, insecure=True)


def _shape(fake: FakeOllama, pushed: PushedModel, num_ctx: int, gpu_share: float = 1.0) -> perf.Shape:
    meta = read_gguf_metadata(pushed.gguf)
    weights = pushed.model_layer.size
    est = estimate(meta, weights, num_ctx, SchedConfig.from_env(fake.env))
    return perf.shape_of(meta, weights, est.kv, num_ctx * est.num_parallel, gpu_share)


def _generate(fake: FakeOllama, body: dict[str, Any]) -> tuple[float, list[float], dict[str, Any]]:
    """Stream one generate: (seconds to the first chunk, arrival of each chunk, the last chunk)."""
    started = time.monotonic()
    arrivals: list[float] = []
    last: dict[str, Any] = {}
    with httpx.stream("POST", f"{fake.url}/api/generate", json=body, timeout=60) as response:
        for line in response.iter_lines():
            if line:
                arrivals.append(time.monotonic() - started)
                last = httpx.Response(200, content=line).json()
    return arrivals[0], arrivals, last


def test_timing_fields_follow_the_performance_model(
    fake_ollama: FakeOllamaFactory, model: PushedModel
) -> None:
    fake = fake_ollama({**SLOW, "FAKE_OLLAMA_LOAD_RATE": str(1024 * KiB)})
    _ready(fake, model)
    prompt = "Why is the sky blue? " * 10  # 210 bytes: 53 tokens
    body = {"model": model.name, "prompt": prompt, "options": {"num_predict": 20}, "keep_alive": "5m"}
    first, arrivals, cold = _generate(fake, body)
    shape = _shape(fake, model, 256)
    assert cold["done"] and cold["done_reason"] == "length"
    assert cold["prompt_eval_count"] == 53 == len(perf.tokenize(prompt))
    assert cold["prompt_eval_duration"] == perf.ns(
        perf.prompt_seconds(shape, perf.Hardware.from_env(fake.env), 53, 0)
    )
    hw = perf.Hardware.from_env(fake.env)
    assert cold["eval_count"] == 20 == len(arrivals) - 1  # one chunk per token, then the summary
    expected_eval = sum(perf.token_seconds(shape, hw, 53 + i) for i in range(20))
    assert cold["eval_duration"] == perf.ns(expected_eval)
    load_s = model.model_layer.size / (1024 * KiB)  # cold: the load is in load_duration
    assert cold["load_duration"] / 1e9 >= 0.9 * load_s
    parts = cold["load_duration"] + cold["prompt_eval_duration"] + cold["eval_duration"]
    assert cold["total_duration"] >= 0.95 * parts
    # the client sees the same pace: the first token after load + prompt, the rest at the eval rate
    assert first >= 0.9 * (load_s + cold["prompt_eval_duration"] / 1e9)
    assert arrivals[-2] - arrivals[0] >= 0.9 * (expected_eval - perf.token_seconds(shape, hw, 53))

    _, _, warm = _generate(fake, {**body, "prompt": "Another question entirely. " * 8})
    assert warm["load_duration"] < cold["load_duration"] / 5  # already loaded


def test_a_prompt_that_starts_like_the_last_one_evaluates_only_the_rest(
    fake_ollama: FakeOllamaFactory, model: PushedModel
) -> None:
    """llama-server keeps the slot's last prompt: prompt_eval_count counts the cached prefix
    (cache_n + prompt_n), prompt_eval_duration only the tokens evaluated (prompt_ms)."""
    fake = fake_ollama(SLOW)
    _ready(fake, model)
    hw, shape = perf.Hardware.from_env(fake.env), _shape(fake, model, 256)
    prompt = "A long shared system prompt about the house rules. " * 4  # 204 bytes: 51 tokens
    body = {"model": model.name, "prompt": prompt, "options": {"num_predict": 1}, "stream": False}
    once = httpx.post(f"{fake.url}/api/generate", json=body, timeout=60).json()
    again = httpx.post(f"{fake.url}/api/generate", json=body, timeout=60).json()
    assert once["prompt_eval_count"] == again["prompt_eval_count"] == 51
    assert once["prompt_eval_duration"] == perf.ns(perf.prompt_seconds(shape, hw, 51, 0))
    assert again["prompt_eval_duration"] == perf.ns(perf.prompt_seconds(shape, hw, 1, 50))  # the last one
    # a nonce in front shares nothing: the whole prompt again
    fresh = httpx.post(f"{fake.url}/api/generate", json={**body, "prompt": "[run 2] " + prompt}, timeout=60)
    assert fresh.json()["prompt_eval_duration"] == perf.ns(perf.prompt_seconds(shape, hw, 53, 0))


def test_layers_on_the_cpu_generate_at_the_cpu_bandwidth(
    fake_ollama: FakeOllamaFactory, model: PushedModel
) -> None:
    fake = fake_ollama({**SLOW, "FAKE_OLLAMA_GPU_VRAM": "0"})
    _ready(fake, model)
    body = {"model": model.name, "prompt": "hi", "options": {"num_predict": 5}, "stream": False}
    answer = httpx.post(f"{fake.url}/api/generate", json=body, timeout=60).json()
    (running,) = httpx.get(f"{fake.url}/api/ps", timeout=10).json()["models"]
    assert running["size_vram"] == 0
    on_gpu = _shape(fake, model, 256, gpu_share=1.0)
    hw = perf.Hardware.from_env(fake.env)
    gpu_rate = 1 / perf.token_seconds(on_gpu, hw, 1)
    cpu_rate = answer["eval_count"] / (answer["eval_duration"] / 1e9)
    assert cpu_rate == pytest.approx(gpu_rate * 8 / 64, rel=0.05)  # 8 MiB/s against 64 MiB/s


def test_ps_keeps_the_last_idle_expiry_while_a_request_runs(
    fake_ollama: FakeOllamaFactory, model: PushedModel
) -> None:
    """sched.go: a request to a loaded runner stops its timer and leaves expiresAt as it was;
    when the request ends, expiresAt = now + sessionDuration."""
    fake = fake_ollama(SLOW)
    _ready(fake, model)
    fake.client.generate(model=model.name, keep_alive="10m")
    (before,) = httpx.get(f"{fake.url}/api/ps", timeout=10).json()["models"]
    body = {"model": model.name, "prompt": "go on", "options": {"num_predict": 150}, "keep_alive": "10m"}
    done = threading.Event()

    def request() -> None:
        _generate(fake, body)
        done.set()

    thread = threading.Thread(target=request, daemon=True)
    thread.start()
    time.sleep(0.5)
    (during,) = httpx.get(f"{fake.url}/api/ps", timeout=10).json()["models"]
    assert not done.is_set() and during["expires_at"] == before["expires_at"]
    thread.join(30)
    (after,) = httpx.get(f"{fake.url}/api/ps", timeout=10).json()["models"]
    left = (datetime.fromisoformat(after["expires_at"]) - datetime.now(UTC)).total_seconds()
    assert after["expires_at"] > before["expires_at"] and 590 < left <= 600


def test_keep_alive_zero_on_a_runner_in_use_unloads_it_when_the_request_ends(
    fake_ollama: FakeOllamaFactory, model: PushedModel
) -> None:
    """sched.go expireRunner: sessionDuration 0, unloaded once refCount is back to 0."""
    fake = fake_ollama(SLOW)
    _ready(fake, model)
    body = {"model": model.name, "prompt": "go on", "options": {"num_predict": 100}}
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(last=_generate(fake, body)[2]), daemon=True)
    thread.start()
    time.sleep(0.4)
    stop = httpx.post(f"{fake.url}/api/generate", json={"model": model.name, "keep_alive": 0}, timeout=10)
    assert stop.json()["done_reason"] == "unload"
    assert len(httpx.get(f"{fake.url}/api/ps", timeout=10).json()["models"]) == 1  # still answering
    thread.join(30)
    assert result["last"]["eval_count"] == 100  # the request was not cut short
    assert httpx.get(f"{fake.url}/api/ps", timeout=10).json()["models"] == []


def test_embed_reports_its_prompt_tokens_and_durations(
    fake_ollama: FakeOllamaFactory, registry: Registry
) -> None:
    """routes.go EmbedHandler: EmbedResponse has total_duration, load_duration, prompt_eval_count."""
    embed = registry.push_model("perf-embed", "v1", arch="nomic-bert", pooling_type=1, seed="perf-embed")
    fake = fake_ollama(SLOW)
    _ready(fake, embed)
    answer = httpx.post(
        f"{fake.url}/api/embed", json={"model": embed.name, "input": ["twelve bytes", "four"]}, timeout=30
    ).json()
    assert answer["prompt_eval_count"] == 3 + 1
    assert answer["total_duration"] >= answer["load_duration"] > 0


def test_only_the_fake_says_its_figures_are_simulated(fake_ollama: FakeOllamaFactory) -> None:
    """routes.go /api/version answers {"version"} and nothing else; the fake adds `simulated`
    (the one deliberate difference) so the reconciler can label what it computed from it."""
    fake = fake_ollama(SLOW)
    answer = httpx.get(f"{fake.url}/api/version", timeout=10).json()
    assert set(answer) == {"version", "simulated"}
    assert "perf.py" in answer["simulated"] and "64 MiB" not in answer["simulated"]
    assert "0.0671089 GB/s" in answer["simulated"]  # the bandwidth it was given
