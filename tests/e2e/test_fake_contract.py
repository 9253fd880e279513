"""Contract tests of the fake Ollama: each behaviour it shares with the real server, checked
by talking to the fake directly (the real ``ollama`` client where it has the call, raw HTTP
where the client hides the detail), in the profiles of the versions it pretends to be.

Every behaviour here cites the Ollama file and tag it mirrors in the fake's docstrings
(tests/harness/fake_ollama/); see tests/harness/README.md "Fidelity".
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

import httpx
import ollama
import pytest

from tests.harness.plugin import FAKE_MODELS_DIR, FakeOllama, FakeOllamaFactory
from tests.harness.registry import PushedModel, Registry

pytestmark = pytest.mark.e2e
KiB = 1024
OLD, NEW = "0.6.8", "0.32.15"


@dataclass
class Models:
    base: PushedModel
    twin: PushedModel  # another name on base's weights blob
    embed: PushedModel  # nomic-bert with pooling_type: an embedding model
    short_ctx: PushedModel  # trained on 2048 tokens
    long_ctx: PushedModel  # trained on 65536 tokens


@pytest.fixture(scope="module")
def models(registry: Registry) -> Models:
    base = registry.push_model("c-base", "v1", size_bytes=512 * KiB, seed="c-base")
    twin = registry.push_model("c-twin", "v1", share_model_blob_from=base, system="You are the twin.")
    embed = registry.push_model(
        "c-embed", "v1", arch="nomic-bert", pooling_type=1, size_bytes=128 * KiB, seed="c-embed"
    )
    short_ctx = registry.push_model("c-short", "v1", context_length=2048, seed="c-short")
    long_ctx = registry.push_model("c-long", "v1", context_length=65536, seed="c-long")
    return Models(base, twin, embed, short_ctx, long_ctx)


def pull(fake: FakeOllama, *pushed: PushedModel) -> None:
    for model in pushed:
        fake.client.pull(model.name, insecure=True)


def post(fake: FakeOllama, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{fake.url}{path}", json=body, timeout=30)


def ps(fake: FakeOllama) -> list[dict[str, Any]]:
    return list(httpx.get(f"{fake.url}/api/ps", timeout=10).json()["models"])


# -- 1. loads take time; a client that hangs up aborts the load --------------------------------
def test_a_load_takes_time_in_proportion_to_size_and_a_hang_up_aborts_it(
    fake_ollama: FakeOllamaFactory, models: Models
) -> None:
    rate = 256 * KiB  # bytes/s: the 512 KiB model loads in about 2 s
    fake = fake_ollama({"FAKE_OLLAMA_LOAD_RATE": str(rate)})
    pull(fake, models.base)
    fake.client.generate(model=models.base.name, keep_alive="5m")
    (load,) = fake.events("load")
    assert load["load_s"] >= 0.9 * models.base.model_layer.size / rate
    fake.client.generate(model=models.base.name, keep_alive=0)

    # A client that disconnects mid-load: Ollama's WaitUntilRunning aborts the load.
    host, port = fake.url.removeprefix("http://").split(":")
    body = f'{{"model": "{models.base.name}", "keep_alive": -1}}'.encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        time.sleep(0.5)
        loading = ps(fake)  # listed while it loads, as sched.go puts it in s.loaded first
        assert [m["name"] for m in loading] == [models.base.name]
    deadline = time.monotonic() + 5
    while not fake.events("load_aborted") and time.monotonic() < deadline:
        time.sleep(0.05)
    (aborted,) = fake.events("load_aborted")
    assert aborted["model"] == models.base.name and aborted["after_s"] < 2
    assert ps(fake) == []
    assert len(fake.events("load")) == 1


# -- 2. one runner per weights blob ------------------------------------------------------------
def test_two_names_on_one_weights_blob_share_one_runner_listed_under_the_first(
    fake_ollama: FakeOllamaFactory, models: Models
) -> None:
    fake = fake_ollama()
    pull(fake, models.base, models.twin)
    fake.client.generate(model=models.base.name, keep_alive=-1)
    fake.client.generate(model=models.twin.name, keep_alive=-1)
    (running,) = ps(fake)
    assert running["name"] == models.base.name  # the name that loaded it first
    assert running["digest"] == models.base.manifest_digest
    assert len(fake.events("load")) == 1  # the twin reused the runner
    # Another num_ctx is a runner option change: the twin reloads it, and now names it.
    fake.client.generate(model=models.twin.name, keep_alive=-1, options={"num_ctx": 512})
    (running,) = ps(fake)
    assert running["name"] == models.twin.name and running["context_length"] == 512
    # Unloading either name unloads the shared runner (sched.go expireRunner is keyed by path).
    assert post(fake, "/api/generate", {"model": models.base.name, "keep_alive": 0}).status_code == 200
    assert ps(fake) == []


def test_a_request_without_keep_alive_leaves_a_loaded_models_keep_alive_alone(
    fake_ollama: FakeOllamaFactory, models: Models
) -> None:
    """sched.go useLoadedRunner sets sessionDuration only when the request carries keep_alive."""
    fake = fake_ollama({"OLLAMA_KEEP_ALIVE": "5m"})
    pull(fake, models.base)
    fake.client.generate(model=models.base.name, keep_alive=-1)
    fake.client.chat(model=models.base.name, messages=[{"role": "user", "content": "hi"}])
    assert ps(fake)[0]["expires_at"].startswith("23")  # still pinned
    fake.client.chat(model=models.base.name, messages=[{"role": "user", "content": "hi"}], keep_alive="1m")
    assert not ps(fake)[0]["expires_at"].startswith("23")


# -- 3. embedding models -----------------------------------------------------------------------
def test_an_embedding_model_refuses_generate_and_loads_through_embed(
    fake_ollama: FakeOllamaFactory, models: Models
) -> None:
    fake = fake_ollama()
    pull(fake, models.embed)
    name = models.embed.name
    assert fake.client.show(name).capabilities == ["embedding"]
    resp = post(fake, "/api/generate", {"model": name, "keep_alive": -1})
    assert resp.status_code == 400 and resp.json() == {"error": f'"{name}" does not support generate'}
    resp = post(fake, "/api/chat", {"model": name, "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 400 and resp.json() == {"error": f'"{name}" does not support chat'}
    assert ps(fake) == []

    loaded = fake.client.embed(model=name, input=[], keep_alive=-1)
    assert loaded.embeddings == []
    (running,) = ps(fake)
    assert running["name"] == name and running["expires_at"].startswith("23")
    vectors = fake.client.embed(model=name, input=["red apples", "green apples"]).embeddings
    assert len(vectors) == 2 and len(vectors[0]) == 64
    # `ollama stop`: generate with keep_alive 0 unloads before any capability check.
    assert post(fake, "/api/generate", {"model": name, "keep_alive": 0}).json()["done_reason"] == "unload"
    assert ps(fake) == []
    fake.client.embed(model=name, input="x", keep_alive=0)  # loads, answers, unloads
    assert ps(fake) == []


# -- 4. create rejects bad templates; option types are checked at load -------------------------
@pytest.mark.parametrize("version", [NEW, OLD])
def test_create_refuses_a_bad_template_and_loads_check_option_types(
    fake_ollama: FakeOllamaFactory, models: Models, version: str
) -> None:
    fake = fake_ollama({"FAKE_OLLAMA_VERSION": version})
    pull(fake, models.base)
    bad = post(
        fake,
        "/api/create",
        {"model": "t1", "from": models.base.name, "template": "{{ .Prompt", "stream": False},
    )
    assert bad.status_code == 400
    assert bad.json() == {"error": "template error: template: :1: unclosed action"}
    bad = post(
        fake,
        "/api/create",
        {"model": "t2", "from": models.base.name, "template": "{{ if .System }}x", "stream": False},
    )
    assert bad.json() == {"error": "template error: template: :1: unexpected EOF"}
    assert "t1:latest" not in {m.model for m in fake.client.list().models}

    cases = {
        "stop": ("<|end|>", 'option "stop" must be of type array'),
        "temperature": ("warm", 'option "temperature" must be of type float32'),
        "num_ctx": ("4096", 'option "num_ctx" must be of type integer'),
        "use_mmap": (1, 'option "use_mmap" must be of type boolean'),
    }
    for index, (option, (value, error)) in enumerate(cases.items()):
        made = post(
            fake,
            "/api/create",
            {"model": f"p{index}", "from": models.base.name, "parameters": {option: value}, "stream": False},
        )
        assert made.status_code == 200, made.text  # create stores parameters as given
        loaded = post(fake, "/api/generate", {"model": f"p{index}", "keep_alive": -1})
        assert (loaded.status_code, loaded.json()) == (500, {"error": error})
    # mirostat: an integer option in 0.6.8, gone (ignored with a warning) from 0.7.0.
    post(
        fake,
        "/api/create",
        {"model": "m", "from": models.base.name, "parameters": {"mirostat": "x"}, "stream": False},
    )
    loaded = post(fake, "/api/generate", {"model": "m", "keep_alive": 0.5})
    if version == OLD:
        assert loaded.json() == {"error": 'option "mirostat" must be of type integer'}
    else:
        assert loaded.status_code == 200
        deadline = time.monotonic() + 5  # the container log reaches docker a moment later
        while "invalid option provided" not in fake.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert '"invalid option provided" option=mirostat' in fake.logs()


# -- 5. a registry that demands a token --------------------------------------------------------
def test_pulls_follow_the_token_challenge_and_a_private_namespace_needs_the_servers_key(
    fake_ollama: FakeOllamaFactory, login_registry: Registry
) -> None:
    public = login_registry.push_model("c-open", "v1", size_bytes=64 * KiB, seed="c-open")
    private = login_registry.push_model(
        "c-secret", "v1", size_bytes=64 * KiB, seed="c-secret", namespace="private"
    )
    assert httpx.get(f"{login_registry.url}/v2/library/c-open/manifests/v1").status_code == 401
    fake = fake_ollama()
    fake.client.pull(public.name, insecure=True)  # anonymous token for the public namespace
    with pytest.raises(ollama.ResponseError) as denied:
        fake.client.pull(private.name, insecure=True)
    assert denied.value.error == "pull model manifest: unauthorized: access denied"
    login_registry.allow_ollama_key(fake.public_key())  # like adding the key to an ollama.com account
    fake.client.pull(private.name, insecure=True)
    assert {m.model for m in fake.client.list().models} == {public.name, private.name}


# -- 6. the context cap, by version ------------------------------------------------------------
def test_num_ctx_above_the_trained_context_is_capped_and_reported_from_0_9(
    fake_ollama: FakeOllamaFactory, models: Models
) -> None:
    new = fake_ollama({"FAKE_OLLAMA_VERSION": NEW})
    pull(new, models.short_ctx)
    new.client.generate(model=models.short_ctx.name, keep_alive=-1, options={"num_ctx": 8192})
    new.client.generate(model=models.short_ctx.name, keep_alive=-1, options={"num_ctx": 8192})
    (running,) = ps(new)
    assert running["context_length"] == 2048  # capped, and reported capped
    assert [e["type"] for e in new.events() if e["type"] in ("load", "reload")] == ["load"]

    old = fake_ollama({"FAKE_OLLAMA_VERSION": OLD})
    pull(old, models.short_ctx)
    old.client.generate(model=models.short_ctx.name, keep_alive=-1, options={"num_ctx": 8192})
    (running,) = ps(old)
    assert "context_length" not in running  # /api/ps has no context_length before 0.9.7
    assert old.events("load")[0]["estimate"]["num_ctx"] == 8192  # not capped in 0.6.8


# -- 6. missing or corrupt blobs ---------------------------------------------------------------
def test_missing_or_corrupt_blobs_leave_the_list_or_fail_show(
    fake_ollama: FakeOllamaFactory, models: Models
) -> None:
    fake = fake_ollama()
    pull(fake, models.base, models.short_ctx, models.long_ctx)
    blob = f"{FAKE_MODELS_DIR}/blobs/sha256-"
    fake.exec("rm", blob + models.base.model_layer.digest.removeprefix("sha256:"))
    fake.exec(
        "sh",
        "-c",
        f"head -c 4096 /dev/zero > {blob}{models.short_ctx.model_layer.digest.removeprefix('sha256:')}",
    )
    fake.exec("rm", blob + models.long_ctx.config.digest.removeprefix("sha256:"))
    listed = {m.model for m in fake.client.list().models}
    assert listed == {models.base.name, models.short_ctx.name}  # no config blob: left out
    gone = post(fake, "/api/show", {"model": models.base.name})
    assert (gone.status_code, gone.json()) == (404, {"error": f"model '{models.base.name}' not found"})
    corrupt = post(fake, "/api/show", {"model": models.short_ctx.name})
    assert (corrupt.status_code, corrupt.json()) == (500, {"error": "invalid file magic"})
    no_config = post(fake, "/api/show", {"model": models.long_ctx.name})
    assert no_config.status_code == 404
    loaded = post(fake, "/api/generate", {"model": models.base.name})
    assert (loaded.status_code, loaded.json()) == (
        400,
        {"error": f'"{models.base.name}" does not support generate'},
    )


# -- 7. defaults that moved between versions ---------------------------------------------------
def test_version_defaults_parallel_and_context(fake_ollama: FakeOllamaFactory, models: Models) -> None:
    env = {"FAKE_OLLAMA_OVERHEAD": str(256 * KiB), "FAKE_OLLAMA_GPU_VRAM": str(24 * 2**30)}
    new = fake_ollama({**env, "FAKE_OLLAMA_VERSION": NEW}, defaults=False)
    assert httpx.get(f"{new.url}/api/version").json()["version"] == NEW
    pull(new, models.long_ctx, models.base)
    new.client.generate(model=models.long_ctx.name, keep_alive=-1)
    (load,) = new.events("load")
    assert load["estimate"]["num_parallel"] == 1  # OLLAMA_NUM_PARALLEL default 1 from 0.10
    assert ps(new)[0]["context_length"] == 32768  # OLLAMA_CONTEXT_LENGTH by VRAM: 24 GiB → 32k

    old = fake_ollama({**env, "FAKE_OLLAMA_VERSION": OLD}, defaults=False)
    pull(old, models.long_ctx)
    old.client.generate(model=models.long_ctx.name, keep_alive=-1)
    (load,) = old.events("load")
    assert load["estimate"]["num_parallel"] == 2  # 0.6.8: tries 2 when it fits, then 1
    assert load["estimate"]["num_ctx"] == 4096  # 0.6.8 default context


def test_stream_errors_before_any_output_by_version(fake_ollama: FakeOllamaFactory) -> None:
    body = {"model": "x", "from": "missing:base"}
    new = fake_ollama({"FAKE_OLLAMA_VERSION": NEW})
    resp = post(new, "/api/create", body)
    assert resp.status_code == 404 and resp.json() == {"error": "model 'missing:base' not found"}
    old = fake_ollama({"FAKE_OLLAMA_VERSION": OLD})
    resp = post(old, "/api/create", body)
    assert resp.status_code == 200 and resp.text.strip() == '{"error":"model \'missing:base\' not found"}'


# -- copy: a second name on the same manifest keeps its blobs through a re-pull ---------------
@pytest.mark.parametrize("version", [OLD, NEW])
def test_copy_keeps_the_old_manifest_and_its_blobs_through_a_re_pull_of_new_bytes(
    fake_ollama: FakeOllamaFactory, registry: Registry, version: str
) -> None:
    """routes.go CopyHandler / images.go CopyModel (the same in v0.6.8 and v0.32.15) + PullModel's
    prune of layers no manifest references (deleteUnusedLayers)."""
    repo = f"c-upd-{version.replace('.', '-')}"
    old = registry.push_model(repo, "v1", size_bytes=64 * KiB, seed=f"{repo}-old")
    fake = fake_ollama({"FAKE_OLLAMA_VERSION": version})
    pull(fake, old)
    keep = old.name.replace(":v1", ":v1-sha256-" + old.manifest_digest[:12])
    fake.client.copy(old.name, keep)
    new = registry.push_model(repo, "v1", size_bytes=64 * KiB, seed=f"{repo}-new")
    assert new.model_layer.digest != old.model_layer.digest
    pull(fake, new)
    listed = {m.model: m.digest for m in fake.client.list().models}
    assert listed[old.name] == new.manifest_digest
    assert listed[keep] == old.manifest_digest  # the copy is the old manifest, byte for byte
    on_disk = fake.blob_files()
    assert "sha256-" + old.model_layer.digest.split(":")[1] in on_disk  # still referenced: not pruned
    fake.client.generate(model=keep, keep_alive="1m")  # the copy loads the old weights
    assert [(r["name"], r["digest"]) for r in ps(fake)] == [(keep, old.manifest_digest)]

    missing = post(fake, "/api/copy", {"source": "nope:v9", "destination": "x:y"})
    assert (missing.status_code, missing.json()["error"]) == (404, 'model "nope:v9" not found')
    bad = post(fake, "/api/copy", {"source": old.name, "destination": "a@b"})
    assert (bad.status_code, bad.json()["error"]) == (400, 'destination "a@b" is invalid')
    # No pull by digest: a name with one is invalid (types/model/name.go has no digest part).
    by_digest = post(
        fake, "/api/pull", {"model": f"{old.name}@sha256:{old.manifest_digest}", "stream": False}
    )
    assert by_digest.status_code == 400
    empty = post(fake, "/api/copy", {})
    assert (empty.status_code, empty.json()["error"]) == (400, 'source "" is invalid')
