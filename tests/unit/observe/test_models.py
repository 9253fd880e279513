"""Parse steps of the Ollama observation: capabilities, embedding models, models whose blobs
are missing or unreadable (one model's problem, never the server's)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from reconciler.observe.gguf import parse_architecture as parse_gguf
from reconciler.observe.ollama import Shown, blob_problems, parse_architecture, parse_models, parse_show
from reconciler.observed import Blob
from tests.harness.gguf import GGUFSpec, make_gguf

W = Blob(digest="sha256:" + "a" * 64, size=100, media_type="application/vnd.ollama.image.model")
C = Blob(digest="sha256:" + "b" * 64, size=10, media_type="")


def test_pooling_type_makes_an_embedding_model_from_the_gguf_and_from_show() -> None:
    embed = make_gguf(
        GGUFSpec(arch="nomic-bert", block_count=12, head_count=12, pooling_type=0, size_bytes=8192)
    )
    arch = parse_gguf([embed])
    assert arch is not None and arch.embedding_model
    plain = parse_gguf([make_gguf(GGUFSpec(size_bytes=8192))])
    assert plain is not None and not plain.embedding_model
    info = {
        "general.architecture": "nomic-bert",
        "nomic-bert.block_count": 12,
        "nomic-bert.attention.head_count": 12,
        "nomic-bert.pooling_type": 1,
    }
    parsed = parse_architecture(info)
    assert parsed is not None and parsed.embedding_model
    shown = parse_show(SimpleNamespace(modelinfo=info, capabilities=["embedding"]))
    assert shown.capabilities == ("embedding",) and shown.architecture == parsed


def test_blobs_missing_or_of_the_wrong_size_on_disk() -> None:
    assert blob_problems((W, C), None) == ((), None)  # the volume is not readable: no opinion
    assert blob_problems((W, C), {W.digest: 100, C.digest: 10}) == ((), None)
    assert blob_problems((W, C), {C.digest: 10}) == ((W.digest,), None)
    missing, wrong = blob_problems((W, C), {W.digest: 7, C.digest: 10})
    assert missing == () and wrong is not None and "7 bytes on disk" in wrong


def test_a_model_ollama_cannot_read_is_marked_broken_with_the_most_precise_reason() -> None:
    entry = SimpleNamespace(model="llama3:8b", digest="d", size=110, details=None, modified_at=None)
    name = "registry.ollama.ai/library/llama3:8b"
    error = Shown(error="Ollama cannot read it (HTTP 404: model 'llama3:8b' not found)")
    (m,) = parse_models([entry], {name: (W, C)}, {name: error}, {C.digest: 10})
    assert m.missing_blobs == (W.digest,) and m.broken == f"blobs missing on disk: {W.digest}"
    blobs_ok = {W.digest: 100, C.digest: 10}
    (m,) = parse_models([entry], {name: (W, C)}, {name: error}, blobs_ok)
    assert m.broken is None  # Ollama's error alone may be passing: no re-pull on it
    (m,) = parse_models([entry], {name: (W, C)}, {name: error}, blobs_ok, {W.digest})
    assert m.missing_blobs == () and m.broken == error.error  # the weights on disk are not a GGUF
    (m,) = parse_models([entry], {name: (W, C)}, {name: Shown(capabilities=("completion",))}, None)
    assert m.broken is None and m.capabilities == ("completion",) and m.weights_digest == W.digest


def test_the_weights_blob_is_looked_at_only_for_its_magic(tmp_path: Path) -> None:
    from reconciler.observe.disk import gguf_magic_ok

    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / W.digest.replace(":", "-")).write_bytes(make_gguf(GGUFSpec(size_bytes=4096)))
    (tmp_path / "blobs" / C.digest.replace(":", "-")).write_bytes(b"\0" * 4096)
    assert gguf_magic_ok(tmp_path, W.digest) is True
    assert gguf_magic_ok(tmp_path, C.digest) is False
    assert gguf_magic_ok(tmp_path, "sha256:" + "c" * 64) is None  # not there: no opinion
