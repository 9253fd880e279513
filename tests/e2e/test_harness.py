"""End-to-end checks of the test harness itself: the REAL ``ollama`` Python client against the
fake Ollama server in its container, pulling from a REAL registry (distribution 2.8).

Tiny models (hundreds of KB to 2 MB) and a small simulated GPU keep this file fast.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import ollama
import pytest

from tests.harness.fake_ollama.scheduler import SchedConfig, estimate
from tests.harness.gguf import GGUFSpec, make_gguf, read_gguf_metadata
from tests.harness.plugin import DEFAULT_FAKE_ENV, FakeOllama, FakeOllamaFactory
from tests.harness.registry import PushedModel, Registry

pytestmark = pytest.mark.e2e


@dataclass
class Models:
    alpha: PushedModel
    beta: PushedModel  # shares alpha's model blob
    gamma: PushedModel  # different model, for eviction
    resume: PushedModel  # 2 MB, for the interrupted pull
    corrupt: PushedModel  # its model blob is corrupted in the registry


@pytest.fixture(scope="module")
def models(registry: Registry) -> Models:
    alpha = registry.push_model(
        "alpha",
        "v1",
        size_bytes=600_000,
        template="{{ .Prompt }}",
        system="You are alpha.",
        params={"num_ctx": 256, "stop": ["<|end|>"], "temperature": 0.5},
    )
    beta = registry.push_model("beta", "v1", share_model_blob_from=alpha, system="You are beta.")
    gamma = registry.push_model(
        "gamma", "q8", size_bytes=900_000, file_type=7, parameter_count=3_821_079_552, block_count=8
    )
    resume = registry.push_model("resume", "v1", size_bytes=2_000_000, seed="resume")
    corrupt = registry.push_model("corrupt", "v1", size_bytes=300_000, seed="corrupt")
    registry.corrupt_blob(corrupt.model_layer.digest)
    return Models(alpha, beta, gamma, resume, corrupt)


def _pull(fake: FakeOllama, model: PushedModel) -> list[ollama.ProgressResponse]:
    return list(fake.client.pull(model.name, insecure=True, stream=True))


def _show_raw(fake: FakeOllama, name: str) -> dict[str, Any]:
    """The client's ShowResponse has no ``system`` field, so read it from the raw API."""
    resp = httpx.post(f"{fake.url}/api/show", json={"model": name})
    resp.raise_for_status()
    data: dict[str, Any] = resp.json()
    return data


def _est(model: PushedModel, env: dict[str, str], num_ctx: int = 256) -> int:
    meta = read_gguf_metadata(model.gguf[:4096])
    return estimate(meta, model.model_layer.size, num_ctx, SchedConfig.from_env(env)).total


def test_gguf_roundtrip() -> None:
    spec = GGUFSpec(arch="qwen2", name="x", block_count=28, head_count=28, head_count_kv=4, size_bytes=10_000)
    data = make_gguf(spec)
    assert len(data) == 10_000
    assert data == make_gguf(spec)
    meta = read_gguf_metadata(data)
    assert meta["general.architecture"] == "qwen2"
    assert meta["qwen2.attention.head_count_kv"] == 4
    assert meta["general.parameter_count"] == spec.parameter_count


def test_pull_streams_progress_then_tags_and_show(fake_ollama: FakeOllamaFactory, models: Models) -> None:
    fake = fake_ollama()
    alpha = models.alpha
    progress = _pull(fake, alpha)
    statuses = [p.status for p in progress]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    per_digest: dict[str, list[int]] = {}
    for p in progress:
        if p.digest:
            assert p.status == f"pulling {p.digest.removeprefix('sha256:')[:12]}"
            assert p.total == next(x.size for x in [*alpha.layers, alpha.config] if x.digest == p.digest)
            per_digest.setdefault(p.digest, []).append(p.completed or 0)
    assert set(per_digest) == set(alpha.digests)
    model_progress = per_digest[alpha.model_layer.digest]
    assert len(model_progress) > 3, "several progress lines for the model layer"
    assert model_progress == sorted(model_progress)
    assert all(
        v[-1] == next(x.size for x in [*alpha.layers, alpha.config] if x.digest == d)
        for d, v in per_digest.items()
    )

    (listed,) = fake.client.list().models
    assert listed.model == alpha.name
    assert listed.size == alpha.total_size
    assert listed.digest == alpha.manifest_digest
    assert listed.details is not None
    assert listed.details.format == "gguf"
    assert listed.details.family == "llama"
    assert listed.details.parameter_size == "8.0B"
    assert listed.details.quantization_level == "Q4_K_M"
    raw = httpx.get(f"{fake.url}/api/tags").json()["models"][0]
    assert raw["name"] == alpha.name
    assert datetime.fromisoformat(raw["modified_at"]).tzinfo is not None

    shown = fake.client.show(alpha.name)
    assert shown.modelinfo is not None
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["llama.block_count"] == 4
    assert shown.modelinfo["llama.attention.head_count_kv"] == 2
    assert shown.modelinfo["general.parameter_count"] == 8_030_261_248
    assert shown.template == "{{ .Prompt }}"
    assert _show_raw(fake, alpha.name)["system"] == "You are alpha."
    assert shown.parameters is not None
    assert "num_ctx" in shown.parameters
    assert '"<|end|>"' in shown.parameters
    assert shown.capabilities == ["completion"]

    # on-disk layout: manifests/<host>/<ns>/<model>/<tag>, blobs/sha256-<hex>
    host = alpha.name.split("/", 1)[0]
    assert fake.manifest_files() == [f"{host}/library/alpha/v1"]
    assert set(fake.blob_files()) == {d.replace(":", "-") for d in alpha.digests}

    # a second pull of the same model is all cache hits (total == completed at once)
    again = _pull(fake, alpha)
    for p in again:
        if p.digest:
            assert p.completed == p.total


def test_shared_blob_survives_delete(fake_ollama: FakeOllamaFactory, models: Models) -> None:
    fake = fake_ollama()
    alpha, beta = models.alpha, models.beta
    shared = alpha.model_layer.digest
    assert beta.model_layer.digest == shared
    _pull(fake, alpha)
    second = _pull(fake, beta)
    first_for_shared = next(p for p in second if p.digest == shared)
    assert first_for_shared.completed == first_for_shared.total == alpha.model_layer.size

    names = {m.model for m in fake.client.list().models}
    assert names == {alpha.name, beta.name}
    assert _show_raw(fake, beta.name)["system"] == "You are beta."

    fake.client.delete(alpha.name)
    assert {m.model for m in fake.client.list().models} == {beta.name}
    blobs = set(fake.blob_files())
    assert shared.replace(":", "-") in blobs
    alpha_only = set(alpha.digests) - set(beta.digests)
    assert alpha_only
    assert not blobs & {d.replace(":", "-") for d in alpha_only}

    fake.client.delete(beta.name)
    assert fake.client.list().models == []
    assert fake.blob_files() == {}
    assert fake.manifest_files() == []


def test_unknown_model_errors(fake_ollama: FakeOllamaFactory, registry: Registry, models: Models) -> None:
    fake = fake_ollama()
    missing = registry.model_name("nope", "v1")
    with pytest.raises(ollama.ResponseError) as streamed:
        list(fake.client.pull(missing, insecure=True, stream=True))
    assert streamed.value.status_code == -1
    assert streamed.value.error == "pull model manifest: file does not exist"

    with pytest.raises(ollama.ResponseError) as single:
        fake.client.pull(missing, insecure=True, stream=False)
    assert single.value.status_code == 500
    assert single.value.error == "pull model manifest: file does not exist"

    with pytest.raises(ollama.ResponseError) as insecure:
        list(fake.client.pull(f"http://{models.alpha.name}", stream=True))
    assert insecure.value.error == "insecure protocol http"

    bad = httpx.post(f"{fake.url}/api/pull", json={"model": "bad name!"})
    assert bad.status_code == 400

    for call in (
        lambda: fake.client.show("nope"),
        lambda: fake.client.delete("nope"),
        lambda: fake.client.generate(model="nope", prompt="hi"),
        lambda: fake.client.chat(model="nope", messages=[{"role": "user", "content": "hi"}]),
    ):
        with pytest.raises(ollama.ResponseError) as err:
            call()
        assert err.value.status_code == 404
        assert err.value.error == "model 'nope' not found"

    resp = httpx.post(f"{fake.url}/api/generate", json={"model": "nope", "keep_alive": "-1"})
    assert resp.status_code == 400
    assert resp.json() == {"error": 'time: missing unit in duration "-1"'}


def test_load_pin_and_unload(fake_ollama: FakeOllamaFactory, models: Models) -> None:
    fake = fake_ollama()
    alpha = models.alpha
    _pull(fake, alpha)
    loaded = fake.client.generate(model=alpha.name, keep_alive=-1)
    assert loaded.done
    (running,) = fake.client.ps().models
    assert running.model == alpha.name
    assert running.digest == alpha.manifest_digest
    assert running.expires_at is not None
    assert running.expires_at.year > 2300
    assert running.size == running.size_vram == _est(alpha, fake.env)
    assert running.context_length == 256  # from the model's params layer

    answer = fake.client.generate(model=alpha.name, prompt="hello", keep_alive=-1, options={"num_predict": 3})
    assert (answer.response or "").split() == ["the", "model", "answers"] and answer.eval_count == 3
    chat = fake.client.chat(model=alpha.name, messages=[{"role": "user", "content": "hi"}], keep_alive=-1)
    assert chat.message.content and chat.done_reason == "stop"

    # a different num_ctx reloads the runner
    fake.client.generate(model=alpha.name, keep_alive="10m", options={"num_ctx": 512})
    (running,) = fake.client.ps().models
    assert running.context_length == 512
    assert running.expires_at is not None
    assert 500 < (running.expires_at - datetime.now(UTC)).total_seconds() <= 600
    assert [e["type"] for e in fake.events() if e["type"] in ("load", "reload")] == ["load", "reload", "load"]

    unloaded = fake.client.generate(model=alpha.name, keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert fake.client.ps().models == []

    # expiry is honoured (lazily, on the next request)
    fake.client.generate(model=alpha.name, keep_alive="1s")
    assert len(fake.client.ps().models) == 1
    time.sleep(1.2)
    assert fake.client.ps().models == []
    assert fake.events("expire")[-1]["model"] == alpha.name


def test_pinned_model_is_evicted_by_one_that_does_not_fit(
    fake_ollama: FakeOllamaFactory, models: Models
) -> None:
    alpha, gamma = models.alpha, models.gamma
    env = {**DEFAULT_FAKE_ENV}
    need_alpha, need_gamma = _est(alpha, env), _est(gamma, env)
    vram = need_alpha + need_gamma - 1  # each fits alone, not both
    fake = fake_ollama({"FAKE_OLLAMA_GPU_VRAM": str(vram)})
    _pull(fake, alpha)
    _pull(fake, gamma)
    fake.client.generate(model=alpha.name, keep_alive=-1)
    fake.client.chat(model=gamma.name, messages=[{"role": "user", "content": "hi"}])
    (running,) = fake.client.ps().models
    assert running.model == gamma.name
    assert running.size == running.size_vram == need_gamma
    (evict,) = fake.events("evict")
    assert evict["model"] == alpha.name
    assert evict["by"] == gamma.name
    assert evict["reason"] == "vram"
    assert evict["session_s"] == "forever"


def test_max_loaded_models_and_cpu_only(fake_ollama: FakeOllamaFactory, models: Models) -> None:
    fake = fake_ollama({"FAKE_OLLAMA_GPU_VRAM": "0", "OLLAMA_MAX_LOADED_MODELS": "1"})
    _pull(fake, models.alpha)
    _pull(fake, models.gamma)
    fake.client.generate(model=models.alpha.name, keep_alive=-1)
    (running,) = fake.client.ps().models
    assert running.size_vram == 0  # no GPU: 100% CPU
    fake.client.generate(model=models.gamma.name)
    assert [m.model for m in fake.client.ps().models] == [models.gamma.name]
    assert fake.events("evict")[0]["reason"] == "max_loaded_models"


def test_lone_model_too_big_is_split(fake_ollama: FakeOllamaFactory, models: Models) -> None:
    gamma = models.gamma
    cfg = SchedConfig.from_env(DEFAULT_FAKE_ENV)
    est = estimate(read_gguf_metadata(gamma.gguf[:4096]), gamma.model_layer.size, 256, cfg)
    per_layer = (est.weights + est.kv) / est.block_count
    vram = est.overhead + est.graph + int(per_layer * 3.5)  # 3 of 8 layers fit
    fake = fake_ollama({"FAKE_OLLAMA_GPU_VRAM": str(vram)})
    _pull(fake, gamma)
    fake.client.generate(model=gamma.name, keep_alive="5m")
    (running,) = fake.client.ps().models
    assert running.size == est.total
    assert running.size_vram is not None
    assert 0 < running.size_vram < running.size
    assert running.size_vram == int(est.overhead + est.graph + 3 * per_layer)


def test_interrupted_pull_resumes_from_partial(
    fake_ollama: FakeOllamaFactory, registry: Registry, models: Models
) -> None:
    resume = models.resume
    digest = resume.model_layer.digest
    total = resume.model_layer.size
    fake = fake_ollama({"FAKE_OLLAMA_PULL_RATE": "1000000"})  # 1 MB/s: 2 s for the model layer

    with (
        httpx.Client(base_url=fake.url, timeout=30) as http,
        http.stream("POST", "/api/pull", json={"model": resume.name, "insecure": True}) as resp,
    ):
        for line in resp.iter_lines():
            msg = json.loads(line)
            assert "error" not in msg
            if msg.get("digest") == digest and msg.get("completed", 0) >= 400_000:
                break  # hang up halfway: leaving the block closes the connection

    deadline = time.monotonic() + 10
    while not fake.events("pull_aborted") and time.monotonic() < deadline:
        time.sleep(0.05)
    (aborted,) = fake.events("pull_aborted")
    partial_name = digest.replace(":", "-") + "-partial"
    partial = fake.blob_files()[partial_name]
    assert partial == aborted["completed"]
    assert 400_000 <= partial < total
    assert fake.client.list().models == []

    fake.set_pull_rate(None)
    progress = _pull(fake, resume)
    assert progress[-1].status == "success"
    first = next(p for p in progress if p.digest == digest)
    assert first.completed == partial  # resumed, reported from where it left off
    blobs = fake.blob_files()
    assert blobs[digest.replace(":", "-")] == total
    assert partial_name not in blobs
    ranged = fake.events("download")
    assert [e["range_start"] for e in ranged if e["digest"] == digest] == [0, partial]
    # the registry saw a ranged GET for the remainder only
    requests = registry.blob_requests(digest)
    assert requests[-1] == {"status": 206, "bytes": total - partial}
    assert fake.client.list().models[0].model == resume.name


def test_corrupted_blob_is_a_digest_mismatch(fake_ollama: FakeOllamaFactory, models: Models) -> None:
    fake = fake_ollama()
    corrupt = models.corrupt
    digest = corrupt.model_layer.digest
    with pytest.raises(ollama.ResponseError) as err:
        _pull(fake, corrupt)
    assert err.value.status_code == -1
    assert err.value.error.startswith(
        f"digest mismatch, file must be downloaded again: want {digest}, got sha256:"
    )
    hexd = digest.removeprefix("sha256:")
    assert not [name for name in fake.blob_files() if hexd in name]
    assert fake.manifest_files() == []
    assert fake.client.list().models == []


def test_create_from_existing_model(fake_ollama: FakeOllamaFactory, models: Models) -> None:
    fake = fake_ollama()
    alpha = models.alpha
    _pull(fake, alpha)
    steps = list(
        fake.client.create(
            "alpha-tuned:latest",
            from_=alpha.name,
            system="Be terse.",
            parameters={"num_ctx": 512},
            stream=True,
        )
    )
    statuses = [s.status or "" for s in steps]
    assert f"using existing layer {alpha.model_layer.digest}" in statuses
    assert any(s.startswith("creating new layer sha256:") for s in statuses)
    assert statuses[-2:] == ["writing manifest", "success"]
    shown = fake.client.show("alpha-tuned")
    assert _show_raw(fake, "alpha-tuned")["system"] == "Be terse."
    assert shown.parameters is not None
    assert "512" in shown.parameters
    assert "temperature" in shown.parameters  # base parameters kept
    names = {m.model for m in fake.client.list().models}
    assert names == {alpha.name, "alpha-tuned:latest"}
    # only new small layers were written: the model blob is shared
    assert alpha.model_layer.digest.replace(":", "-") in fake.blob_files()


def test_fault_injection(fake_ollama: FakeOllamaFactory) -> None:
    fake = fake_ollama()
    fake.fault(status=500, paths=["/api/tags"], count=2, error="boom")
    for _ in range(2):
        with pytest.raises(ollama.ResponseError) as err:
            fake.client.list()
        assert err.value.status_code == 500
        assert err.value.error == "boom"
    assert fake.client.list().models == []
    fake.fault(hang_seconds=0.5, paths=["/api/version"], count=1)
    started = time.monotonic()
    assert httpx.get(f"{fake.url}/api/version").json()["version"] == "0.32.15"
    assert time.monotonic() - started >= 0.5
    fake.clear_faults()
    assert httpx.get(f"{fake.url}/").text == "Ollama is running"
    assert httpx.head(f"{fake.url}/").status_code == 200


def test_restart_prunes_partials_unless_noprune(fake_ollama: FakeOllamaFactory, models: Models) -> None:
    partial = "sha256-" + "ab" * 32 + "-partial"
    script = f"open('/root/.ollama/models/blobs/{partial}', 'wb').write(b'x' * 10)"
    for env, kept in (({}, False), ({"OLLAMA_NOPRUNE": "1"}, True)):
        fake = fake_ollama(env)
        _pull(fake, models.alpha)
        fake.exec("python3", "-c", script)
        fake.restart()
        assert (partial in fake.blob_files()) is kept
        assert [m.model for m in fake.client.list().models] == [models.alpha.name]
