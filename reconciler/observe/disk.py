"""The models store on disk: free space, the manifests Ollama wrote, partial downloads.

Layout (Ollama `manifest/paths.go`, `types/model/name.go` `Filepath`; reference §2):
`<models>/manifests/<host>/<namespace>/<model>/<tag>` holds a Docker v2 manifest JSON,
`<models>/blobs/sha256-<hex>` the blobs, `blobs/sha256-<hex>-partial[-N]` unfinished pulls.
Read-only: nothing here writes, and symlinks are never followed out of the tree.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from reconciler.desired.refs import InvalidReference, parse_ref
from reconciler.errors import ObservationFailed
from reconciler.observed import Blob, DiskObs

_MAX_MANIFEST = 1 * 2**20
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def observe_disk(path: str, models_dir: Path | None = None) -> DiskObs:
    """Size and free space of the filesystem holding `path` (free: what a non-root writer gets),
    and what unfinished downloads in `models_dir` already hold."""
    try:
        st = os.statvfs(path)
    except OSError as exc:
        raise ObservationFailed(f"cannot read the free space of {path}: {exc.strerror or exc}") from exc
    partial = partial_bytes(models_dir) if models_dir is not None else {}
    return DiskObs(
        path=path, total=st.f_blocks * st.f_frsize, free=st.f_bavail * st.f_frsize, partial=partial
    )


def _blob(entry: object) -> Blob | None:
    if not isinstance(entry, dict):
        return None
    digest, size, media = entry.get("digest"), entry.get("size"), entry.get("mediaType", "")
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0 or not isinstance(media, str):
        return None
    return Blob(digest=digest, size=size, media_type=media)


def parse_manifest_file(data: bytes) -> tuple[Blob, ...] | None:
    """The config blob then the layers of a Docker v2 manifest, or None when it is not one.

    Shape: Ollama `manifest/manifest.go` `Manifest{Config Layer; Layers []Layer}`.
    """
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list):
        return None
    blobs = [_blob(e) for e in [doc.get("config"), *doc["layers"]]]
    if any(b is None for b in blobs):
        return None
    return tuple(b for b in blobs if b is not None)


def _read_regular(path: Path) -> bytes | None:
    """A regular file's bytes, refusing symlinks and oversized files."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_MANIFEST:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(_MAX_MANIFEST + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def _subdirs(path: Path) -> list[Path]:
    try:
        entries = list(os.scandir(path))
    except OSError:
        return []
    return sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))


def read_manifests(models_dir: Path) -> dict[str, tuple[Blob, ...]]:
    """Canonical name (`host/ns/model:tag`, lower case) → blobs, for every valid manifest."""
    found: dict[str, tuple[Blob, ...]] = {}
    for host in _subdirs(models_dir / "manifests"):
        for namespace in _subdirs(host):
            for model in _subdirs(namespace):
                try:
                    tags = sorted(os.scandir(model), key=lambda e: e.name)
                except OSError:
                    continue
                for tag in tags:
                    if not tag.is_file(follow_symlinks=False):
                        continue
                    try:
                        ref = parse_ref(f"{host.name}/{namespace.name}/{model.name}:{tag.name}")
                    except InvalidReference:
                        continue
                    data = _read_regular(Path(tag.path))
                    blobs = parse_manifest_file(data) if data is not None else None
                    if blobs is not None:
                        found[ref.canonical] = blobs
    return found


def blob_sizes(models_dir: Path) -> dict[str, int]:
    """Digest → size of every complete blob file (`blobs/sha256-<hex>`), symlinks not followed."""
    return {digest: info.st_size for digest, name, info in _blob_files(models_dir) if name == digest}


def gguf_magic_ok(models_dir: Path, digest: str) -> bool | None:
    """Does the blob start like a GGUF file? None when it cannot be read (no opinion)."""
    if not _DIGEST.match(digest):
        return None
    path = models_dir / "blobs" / digest.replace("sha256:", "sha256-", 1)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return os.read(fd, 4) == b"GGUF"
    except OSError:
        return None
    finally:
        os.close(fd)


def partial_bytes(models_dir: Path) -> dict[str, int]:
    """Disk held by unfinished downloads (`blobs/sha256-<hex>-partial*`), per blob digest.

    Counts allocated blocks, not the apparent size: Ollama truncates the `-partial` file to
    the blob's full size up front (server/download.go), so it is sparse until filled.
    """
    found: dict[str, int] = {}
    for digest, name, info in _blob_files(models_dir):
        if "-partial" in name:
            found[digest] = found.get(digest, 0) + info.st_blocks * 512
    return found


def _blob_files(models_dir: Path) -> list[tuple[str, str, os.stat_result]]:
    """(digest, file name as a digest, stat) of each regular file in `blobs/` named for one."""
    found: list[tuple[str, str, os.stat_result]] = []
    try:
        entries = list(os.scandir(models_dir / "blobs"))
    except OSError:
        return found
    for entry in entries:
        name = entry.name.replace("sha256-", "sha256:", 1)
        digest = name.split("-partial", 1)[0]
        if not _DIGEST.match(digest):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            found.append((digest, name, info))
    return found
