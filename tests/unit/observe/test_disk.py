"""The models store on disk, in a temporary directory laid out like Ollama's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.errors import ObservationFailed
from reconciler.observe.disk import observe_disk, parse_manifest_file, partial_bytes, read_manifests
from reconciler.observed import Blob

CONFIG = "application/vnd.docker.container.image.v1+json"
MODEL = "application/vnd.ollama.image.model"
D = {c: f"sha256:{c * 64}" for c in "abcdef"}


def manifest(*layers: tuple[str, int, str]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": CONFIG, "digest": D["a"], "size": 485},
            "layers": [{"mediaType": m, "digest": d, "size": s} for d, s, m in layers],
        }
    ).encode()


def write(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_parse_manifest_file() -> None:
    blobs = parse_manifest_file(manifest((D["b"], 2_176_178_913, MODEL)))
    assert blobs == (
        Blob(digest=D["a"], size=485, media_type=CONFIG),
        Blob(digest=D["b"], size=2_176_178_913, media_type=MODEL),
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"\xff",
        b"null",
        b"[1]",
        b'{"layers": []}',
        b'{"config": {"digest": "sha256:xyz", "size": 1}, "layers": []}',
        json.dumps({"config": {"digest": D["a"], "size": 1}, "layers": [{"digest": D["b"]}]}).encode(),
        json.dumps({"config": {"digest": D["a"], "size": 1}, "layers": {}}).encode(),
    ],
)
def test_parse_manifest_file_rejects(data: bytes) -> None:
    assert parse_manifest_file(data) is None


def test_read_manifests(tmp_path: Path) -> None:
    m = tmp_path / "models"
    write(m, "manifests/registry.ollama.ai/library/llama3/8b", manifest((D["b"], 100, MODEL)))
    write(m, "manifests/registry.ollama.ai/library/llama3/latest", manifest((D["b"], 100, MODEL)))
    write(m, "manifests/localhost:5000/Team/Phi3/Mini", manifest((D["c"], 50, MODEL)))
    found = read_manifests(m)
    assert sorted(found) == [
        "localhost:5000/team/phi3:mini",
        "registry.ollama.ai/library/llama3:8b",
        "registry.ollama.ai/library/llama3:latest",
    ]
    assert found["localhost:5000/team/phi3:mini"][1].size == 50


def test_read_manifests_skips_bad_entries(tmp_path: Path) -> None:
    m = tmp_path / "models"
    write(m, "manifests/registry.ollama.ai/library/good/1", manifest((D["b"], 1, MODEL)))
    write(m, "manifests/registry.ollama.ai/library/bad/json", b"{not json")
    write(m, "manifests/registry.ollama.ai/library/bad/big", b" " * (2 * 2**20))
    write(m, "manifests/registry.ollama.ai/library/bad/sp ace", manifest())
    write(m, "manifests/registry.ollama.ai/library/deep/er/tag", manifest())  # one level too deep
    write(m, "manifests/registry.ollama.ai/toplevel", manifest())  # too shallow
    (m / "manifests/registry.ollama.ai/library/bad/dir").mkdir()
    unreadable = write(m, "manifests/registry.ollama.ai/library/bad/secret", manifest())
    unreadable.chmod(0)
    try:
        found = read_manifests(m)
    finally:
        unreadable.chmod(0o644)
    expected = {"registry.ollama.ai/library/good:1"}
    if os.geteuid() == 0:  # root reads mode-0 files
        expected.add("registry.ollama.ai/library/bad:secret")
    assert set(found) == expected


def test_read_manifests_never_follows_symlinks_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, "library/leak/tag", manifest((D["b"], 1, MODEL)))
    write(outside, "file", manifest((D["b"], 1, MODEL)))
    m = tmp_path / "models"
    (m / "manifests/registry.ollama.ai/library/model").mkdir(parents=True)
    (m / "manifests/evil.host").symlink_to(outside, target_is_directory=True)
    (m / "manifests/registry.ollama.ai/library/model/link").symlink_to(outside / "file")
    assert read_manifests(m) == {}


def test_read_manifests_missing_dir(tmp_path: Path) -> None:
    assert read_manifests(tmp_path / "nope") == {}


def test_partial_bytes_counts_allocated_partials(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    write(blobs, f"sha256-{'b' * 64}", b"x" * 100_000)  # a finished blob: not counted
    write(blobs, f"sha256-{'c' * 64}-partial", b"y" * 65536)
    write(blobs, f"sha256-{'c' * 64}-partial-0", b'{"N":0,"Offset":0}')
    sparse = blobs / f"sha256-{'d' * 64}-partial"
    with sparse.open("wb") as f:
        f.truncate(10 * 2**30)  # pre-sized like Ollama's, nothing written yet
    (blobs / f"sha256-{'e' * 64}-partial-link").symlink_to(blobs / f"sha256-{'b' * 64}")
    write(blobs, "not-a-digest-partial", b"z" * 65536)
    got = partial_bytes(tmp_path)
    assert set(got) == {f"sha256:{'c' * 64}", f"sha256:{'d' * 64}"}
    assert 65536 <= got[f"sha256:{'c' * 64}"] < 65536 + 64 * 1024  # the data and its part file
    assert got[f"sha256:{'d' * 64}"] < 64 * 1024  # sparse: 10 GiB apparent, nothing allocated
    assert partial_bytes(tmp_path / "missing") == {}
    assert observe_disk(str(tmp_path), tmp_path).partial == got


def test_observe_disk(tmp_path: Path) -> None:
    disk = observe_disk(str(tmp_path))
    st = os.statvfs(tmp_path)
    assert disk.path == str(tmp_path)
    assert disk.total == st.f_blocks * st.f_frsize
    assert 0 < disk.free <= disk.total


def test_observe_disk_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ObservationFailed, match="cannot read the free space"):
        observe_disk(str(tmp_path / "missing"))
