"""Registry look-up: manifest parsing, auth challenge, and the HTTP flow on a mock transport."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from reconciler.desired.refs import parse_ref
from reconciler.desired.schema import Registry
from reconciler.observe.registry import (
    MANIFEST_V2,
    MODEL_LAYER,
    LookupFailed,
    base_url,
    lookup,
    lookup_all,
    parse_challenge,
    parse_manifest,
)
from reconciler.observed import Blob
from tests.harness.server_config import allow_secrets

D = {c: f"sha256:{c * 64}" for c in "abcdef"}


def manifest(model_size: int = 4_661_224_676) -> dict[str, object]:
    return {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": D["a"],
            "size": 485,
        },
        "layers": [
            {"mediaType": MODEL_LAYER, "digest": D["b"], "size": model_size},
            {"mediaType": "application/vnd.ollama.image.license", "digest": D["c"], "size": 12403},
            {"mediaType": "application/vnd.ollama.image.template", "digest": D["d"], "size": 254},
        ],
    }


def gguf_header() -> bytes:
    def s(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    kvs = [("general.architecture", 8, s("llama"))]
    kvs += [
        (f"llama.{k}", 4, struct.pack("<I", v))
        for k, v in [
            ("block_count", 32),
            ("context_length", 8192),
            ("embedding_length", 4096),
            ("attention.head_count", 32),
            ("attention.head_count_kv", 8),
        ]
    ]
    kvs += [("tokenizer.ggml.model", 8, s("gpt2"))]
    body = b"".join(s(k) + struct.pack("<I", t) + v for k, t, v in kvs)
    return b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + body + b"\0" * 100_000


# ─────────────────────────── pure parsing ───────────────────────────


def test_parse_manifest_config_first_then_layers() -> None:
    blobs = parse_manifest("x", json.dumps(manifest()).encode())
    assert blobs[0] == Blob(
        digest=D["a"], size=485, media_type="application/vnd.docker.container.image.v1+json"
    )
    assert [b.digest for b in blobs] == [D["a"], D["b"], D["c"], D["d"]]
    assert blobs[1].is_weights
    assert not blobs[2].is_weights
    assert sum(b.size for b in blobs) == 485 + 4_661_224_676 + 12403 + 254


def test_parse_manifest_media_type_optional() -> None:
    body = {"config": {"digest": D["a"], "size": 1}, "layers": []}
    assert parse_manifest("x", json.dumps(body).encode()) == (Blob(digest=D["a"], size=1),)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'"text"',
        json.dumps({"layers": []}).encode(),
        json.dumps({"config": {"digest": D["a"], "size": 1}}).encode(),
        json.dumps({"config": {"digest": D["a"], "size": 1}, "layers": "x"}).encode(),
        json.dumps({"config": {"digest": "sha256:short", "size": 1}, "layers": []}).encode(),
        json.dumps({"config": {"digest": D["a"], "size": -1}, "layers": []}).encode(),
        json.dumps({"config": {"digest": D["a"], "size": True}, "layers": []}).encode(),
        json.dumps({"config": {"digest": D["a"], "size": "1"}, "layers": []}).encode(),
        json.dumps({"config": {"digest": D["a"], "size": 1}, "layers": [None]}).encode(),
        json.dumps({"config": {"digest": D["a"], "size": 1, "mediaType": 3}, "layers": []}).encode(),
        json.dumps({"manifests": [{"digest": D["a"]}]}).encode(),
    ],
)
def test_parse_manifest_rejects(body: bytes) -> None:
    with pytest.raises(LookupFailed):
        parse_manifest("registry.ollama.ai/library/x:y", body)


def test_parse_challenge() -> None:
    header = (
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:l/m:pull"'
    )
    assert parse_challenge(header) == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:l/m:pull",
    }
    assert parse_challenge('Basic realm="x"') is None
    assert parse_challenge('Bearer realm="file:///etc/passwd"') is None
    assert parse_challenge("") is None


def test_base_url() -> None:
    regs = [
        Registry(host="registry.lan:5000", insecure=True),
        Registry(host="mirror.lan", url="http://127.0.0.1:5001/"),
        Registry(host="secure.lan"),
    ]
    assert base_url("registry.ollama.ai", regs) == "https://registry.ollama.ai"
    assert base_url("REGISTRY.lan:5000", regs) == "http://REGISTRY.lan:5000"
    assert base_url("mirror.lan", regs) == "http://127.0.0.1:5001"
    assert base_url("secure.lan", regs) == "https://secure.lan"


# ─────────────────────────── flow on a mock transport ───────────────────────────

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def registry_handler(seen: list[httpx.Request], *, auth: bool = False) -> Handler:
    header = gguf_header()

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path == "/token":
            assert request.url.params["scope"] == "repository:library/llama3:pull"
            return httpx.Response(200, json={"token": "SECRET-TOKEN"})
        if request.url.host == "cdn.test":
            start, end = request.headers["range"].removeprefix("bytes=").split("-")
            return httpx.Response(206, content=header[int(start) : int(end) + 1])
        if auth and request.headers.get("authorization") != "Bearer SECRET-TOKEN":
            challenge = (
                'Bearer realm="https://auth.test/token",service="reg",scope="repository:library/llama3:pull"'
            )
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if path == "/v2/library/llama3/manifests/8b":
            assert request.headers["accept"] == MANIFEST_V2
            return httpx.Response(200, json=manifest())
        if path == f"/v2/library/llama3/blobs/{D['b']}":
            return httpx.Response(307, headers={"Location": "https://cdn.test/blob"})
        return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})

    return handle


def test_lookup_reads_sizes_and_architecture() -> None:
    seen: list[httpx.Request] = []
    ref = parse_ref("llama3:8b")
    with client(registry_handler(seen)) as c:
        remote = lookup(ref, [], client=c)
    assert remote.name == "registry.ollama.ai/library/llama3:8b"
    assert remote.size == 485 + 4_661_224_676 + 12403 + 254
    assert remote.architecture is not None
    assert (remote.architecture.family, remote.architecture.head_count_kv) == ("llama", 8)
    ranged = [r for r in seen if "range" in r.headers]
    assert ranged
    assert all(r.headers["range"] == f"bytes=0-{16 * 2**20 - 1}" for r in ranged)
    assert str(seen[0].url) == "https://registry.ollama.ai/v2/library/llama3/manifests/8b"


def test_lookup_fetches_an_anonymous_token_on_401_and_does_not_leak_it_across_hosts() -> None:
    seen: list[httpx.Request] = []
    with client(registry_handler(seen, auth=True)) as c:
        remote = lookup(parse_ref("llama3:8b"), [], client=c)
    assert remote.architecture is not None
    assert [r.url.path for r in seen if r.url.path == "/token"] == ["/token"]  # one token, reused
    cdn = [r for r in seen if r.url.host == "cdn.test"]
    assert cdn
    assert all("authorization" not in r.headers for r in cdn)


def test_lookup_401_without_challenge() -> None:
    with client(lambda r: httpx.Response(401)) as c, pytest.raises(LookupFailed) as err:
        lookup(parse_ref("llama3:8b"), [], client=c)
    assert err.value.message.startswith("registry.ollama.ai refused anonymous access (HTTP 401)")
    assert "`login`" in err.value.message


def test_lookup_not_found() -> None:
    with client(registry_handler([])) as c, pytest.raises(LookupFailed) as err:
        lookup(parse_ref("nope:1"), [], client=c)
    assert err.value.message.startswith("model not found in registry")


def test_lookup_unreachable_says_which_host() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with client(refuse) as c, pytest.raises(LookupFailed) as err:
        lookup(
            parse_ref("registry.lan:5000/library/x:y"),
            [Registry(host="registry.lan:5000", insecure=True)],
            client=c,
        )
    assert err.value.message == "registry.lan:5000 unreachable: [Errno 111] Connection refused"


def test_lookup_server_error() -> None:
    with client(lambda r: httpx.Response(503)) as c, pytest.raises(LookupFailed, match="answered HTTP 503"):
        lookup(parse_ref("llama3:8b"), [], client=c)


def test_unreadable_model_header_leaves_architecture_unknown() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if "manifests" in request.url.path:
            return httpx.Response(200, json=manifest())
        return httpx.Response(200, content=b"not a gguf file")

    with client(handle) as c:
        remote = lookup(parse_ref("llama3:8b"), [], client=c)
    assert remote.architecture is None
    assert len(remote.blobs) == 4


def test_lookup_all_collects_failures_and_deduplicates() -> None:
    seen: list[httpx.Request] = []
    refs = [parse_ref("llama3:8b"), parse_ref("registry.ollama.ai/library/llama3:8b"), parse_ref("nope:1")]
    with client(registry_handler(seen)) as c:
        found, errors = lookup_all(refs, [], timeout=5, client=c)
    assert [m.name for m in found] == ["registry.ollama.ai/library/llama3:8b"]
    assert list(errors) == ["registry.ollama.ai/library/nope:1"]
    assert len([r for r in seen if "manifests/8b" in r.url.path]) == 1


def test_lookup_all_total_timeout() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(1.0)
        return httpx.Response(404)

    start = time.monotonic()
    with client(slow) as c:
        found, errors = lookup_all([parse_ref("a:1"), parse_ref("b:1")], [], timeout=0.2, client=c)
    assert time.monotonic() - start < 0.9
    assert found == ()
    assert errors == {
        "registry.ollama.ai/library/a:1": "registry look-up timed out after 0.2 s",
        "registry.ollama.ai/library/b:1": "registry look-up timed out after 0.2 s",
    }


def test_lookup_all_nothing_to_do() -> None:
    assert lookup_all([], [], timeout=1) == ((), {})


def private_handler(seen: list[httpx.Request], accepted: str = "pw") -> Handler:
    """A registry on lan.test:5000 whose token server is on its own host (as Ollama 0.14.3+
    requires): anonymous tokens carry no access to `private/*`, a login's token does."""
    import base64

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/token":
            basic = request.headers.get("authorization", "")
            if basic and basic != "Basic " + base64.b64encode(f"me:{accepted}".encode()).decode():
                return httpx.Response(401)
            return httpx.Response(200, json={"token": "LOGIN" if basic else "ANON"})
        if request.headers.get("authorization") != "Bearer LOGIN":
            challenge = (
                'Bearer realm="http://lan.test:5000/token",service="lan.test:5000",'
                'scope="repository:private/llama3:pull"'
            )
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if request.url.path == "/v2/private/llama3/manifests/8b":
            return httpx.Response(200, json=manifest(1234))
        return httpx.Response(404)

    return handle


def test_a_private_repository_is_looked_up_with_the_registrys_login_after_an_anonymous_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    allow_secrets(monkeypatch, tmp_path, env=["RCL_PW"], send_to={"RCL_PW": ["lan.test"]})
    monkeypatch.setenv("RCL_PW", "pw")
    reg = Registry.model_validate(
        {
            "host": "lan.test:5000",
            "url": "http://127.0.0.1:5000",
            "login": {"username": "me", "password": {"env": "RCL_PW"}},
        }
    )
    seen: list[httpx.Request] = []
    with client(private_handler(seen)) as c:
        remote = lookup(parse_ref("lan.test:5000/private/llama3:8b"), [reg], client=c)
    assert remote.blobs[1].size == 1234
    tokens = [r for r in seen if r.url.path == "/token"]
    assert [("authorization" in r.headers) for r in tokens] == [False, True]  # anonymous first
    assert all(r.url.host == "127.0.0.1" for r in seen)  # the realm on its host, reached by its url


def test_a_private_repository_without_or_with_a_wrong_login_says_what_to_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ref = parse_ref("lan.test:5000/private/llama3:8b")
    plain = Registry.model_validate({"host": "lan.test:5000", "url": "http://127.0.0.1:5000"})
    with client(private_handler([])) as c, pytest.raises(LookupFailed) as err:
        lookup(ref, [plain], client=c)
    assert "give its entry under `registries`" in err.value.message
    login = {"username": "me", "password": {"env": "RCL_PW"}}
    reg = plain.model_copy(update={"login": Registry.model_validate({"host": "x", "login": login}).login})
    with client(private_handler([])) as c, pytest.raises(LookupFailed) as err:
        lookup(ref, [reg], client=c)
    assert "allows no secrets" in err.value.message  # the server's policy comes first
    allow_secrets(monkeypatch, tmp_path, env=["RCL_PW"], send_to={"RCL_PW": ["lan.test"]})
    monkeypatch.delenv("RCL_PW", raising=False)
    with client(private_handler([])) as c, pytest.raises(LookupFailed) as err:
        lookup(ref, [reg], client=c)
    assert "RCL_PW" in err.value.message
    monkeypatch.setenv("RCL_PW", "wrong-secret")
    with client(private_handler([])) as c, pytest.raises(LookupFailed) as err:
        lookup(ref, [reg], client=c)
    assert "refused the login of me (env:RCL_PW)" in err.value.message
    assert "wrong-secret" not in err.value.message
