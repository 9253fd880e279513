"""Model names and the on-disk model store, in Ollama's exact layout (stdlib only).

Names follow types/model/name.go (``ParseNameBare``/``ParseName``, ``isValidPart``,
``DisplayShortest``): ``[scheme://][host/][namespace/]model[:tag]`` with defaults
``registry.ollama.ai`` / ``library`` / ``latest`` (name.go L39-42).

Layout (reference §2, manifest/paths.go): ``$OLLAMA_MODELS/manifests/<host>/<ns>/<model>/<tag>``
and ``$OLLAMA_MODELS/blobs/sha256-<hex>``. Manifests are written the way Go's ``json.Marshal``
writes ``Manifest{schemaVersion, mediaType, config, layers}`` (compact, that key order), so the
manifest digest is sha256 of those bytes (server/manifest.go ``Manifest.Digest``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

MT_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_MODEL = "application/vnd.ollama.image.model"
MT_TEMPLATE = "application/vnd.ollama.image.template"
MT_SYSTEM = "application/vnd.ollama.image.system"
MT_PARAMS = "application/vnd.ollama.image.params"
MT_LICENSE = "application/vnd.ollama.image.license"
MT_MESSAGES = "application/vnd.ollama.image.messages"

BLOB_RE = re.compile(r"^sha256[:-]([0-9a-fA-F]{64})$")


@dataclass(frozen=True)
class Name:
    scheme: str
    host: str
    namespace: str
    model: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> Name:
        """``model.ParseName``: ``ParseNameBare`` merged with the defaults. No digest part: Name
        has none since "types/model: remove knowledge of digest" (#5500; v0.6.8 and v0.32.15
        types/model/name.go), so ``m:t@sha256:x`` is a tag ``x`` of a model ``m:t@sha256`` —
        invalid (name_test.go: ``"m@d": false``), and a model cannot be pulled by digest."""
        s = text
        scheme = ""
        tag = ""
        # "/" is illegal in a tag, so a ':' after the last '/' starts the tag.
        if s.rfind(":") > s.rfind("/"):
            s, tag = s.rsplit(":", 1)
        host = namespace = ""
        if "/" in s:
            s, model = s.rsplit("/", 1)
            if "/" in s:
                s, namespace = s.rsplit("/", 1)
                if "://" in s:
                    scheme, host = s.split("://", 1)
                else:
                    host = s
            else:
                namespace = s
        else:
            model = s
        return cls(
            scheme=scheme or "https",
            host=host or DEFAULT_HOST,
            namespace=namespace or DEFAULT_NAMESPACE,
            model=model,
            tag=tag or DEFAULT_TAG,
        )

    @property
    def explicit_scheme(self) -> bool:
        return self.scheme != "https"

    def is_valid(self) -> bool:
        return (
            _valid_part("host", self.host)
            and _valid_part("namespace", self.namespace)
            and _valid_part("model", self.model)
            and _valid_part("tag", self.tag)
        )

    def display_shortest(self) -> str:
        """name.go ``DisplayShortest``: drop the default host (and then default namespace)."""
        prefix = ""
        if self.host.lower() != DEFAULT_HOST:
            prefix = f"{self.host}/{self.namespace}/"
        elif self.namespace.lower() != DEFAULT_NAMESPACE:
            prefix = f"{self.namespace}/"
        return f"{prefix}{self.model}:{self.tag}"

    def parts(self) -> tuple[str, str, str, str]:
        return (self.host, self.namespace, self.model, self.tag)

    def key(self) -> tuple[str, str, str, str]:
        return tuple(p.lower() for p in self.parts())  # type: ignore[return-value]


def _valid_part(kind: str, s: str) -> bool:
    """name.go ``isValidPart``: first char alnum or '_'; then alnum, '_', '-', '.' (not in a
    namespace), ':' only in a host; lengths host 1..350, others 1..80."""
    limit = 350 if kind == "host" else 80
    if not 1 <= len(s) <= limit:
        return False
    for i, ch in enumerate(s):
        ok_alnum = ch.isascii() and (ch.isalnum() or ch == "_")
        if i == 0:
            if not ok_alnum:
                return False
            continue
        if ch in "_-":
            continue
        if ch == ".":
            if kind == "namespace":
                return False
            continue
        if ch == ":":
            if kind != "host":
                return False
            continue
        if not ok_alnum:
            return False
    return True


def go_json(obj: Any) -> bytes:
    """Compact JSON like Go's json.Marshal (no spaces; <, >, & escaped as Go does)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.encode()


def layer_json(layer: dict[str, Any]) -> dict[str, Any]:
    """manifest/layer.go ``Layer``: mediaType, digest, size, from/name omitted when empty."""
    out: dict[str, Any] = {
        "mediaType": layer["mediaType"],
        "digest": layer["digest"],
        "size": int(layer["size"]),
    }
    for key in ("from", "name"):
        if layer.get(key):
            out[key] = layer[key]
    return out


def manifest_bytes(config: dict[str, Any], layers: list[dict[str, Any]]) -> bytes:
    return go_json(
        {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": layer_json(config),
            "layers": [layer_json(layer) for layer in layers],
        }
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


@dataclass
class Manifest:
    name: Name
    path: Path
    raw: bytes
    data: dict[str, Any]
    mtime: float

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.data.get("config") or {})

    @property
    def layers(self) -> list[dict[str, Any]]:
        return list(self.data.get("layers") or [])

    def all_layers(self) -> list[dict[str, Any]]:
        cfg = self.config
        return self.layers + ([cfg] if cfg.get("digest") else [])

    @property
    def size(self) -> int:
        # server/manifest.go Manifest.Size: layers + config.
        return sum(int(layer.get("size", 0)) for layer in self.all_layers())

    def layer(self, media_type: str) -> dict[str, Any] | None:
        for layer in self.layers:
            if layer.get("mediaType") == media_type:
                return layer
        return None


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifests_dir = root / "manifests"
        self.blobs_dir = root / "blobs"
        self.manifests_dir.mkdir(parents=True, exist_ok=True)
        self.blobs_dir.mkdir(parents=True, exist_ok=True)

    # -- blobs -------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        m = BLOB_RE.match(digest)
        if m is None:
            raise ValueError(f"invalid digest format: {digest!r}")
        return self.blobs_dir / f"sha256-{m.group(1)}"

    def partial_path(self, digest: str) -> Path:
        return self.blob_path(digest).with_name(self.blob_path(digest).name + "-partial")

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        path = self.blob_path(digest)
        if not path.is_file():
            return False
        return size is None or path.stat().st_size == size

    def write_blob(self, data: bytes) -> tuple[str, int]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not path.exists():
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return digest, len(data)

    # -- manifests ---------------------------------------------------------------------------
    def manifest_path(self, name: Name) -> Path:
        return self.manifests_dir.joinpath(*name.parts())

    def _find_path(self, name: Name) -> Path | None:
        exact = self.manifest_path(name)
        if exact.is_file():
            return exact
        # Ollama matches names case-insensitively (name.go EqualFold).
        for m in self.list_manifests():
            if m.name.key() == name.key():
                return m.path
        return None

    def read_manifest(self, name: Name) -> Manifest | None:
        path = self._find_path(name)
        if path is None:
            return None
        return self._load(path)

    def _load(self, path: Path) -> Manifest | None:
        try:
            raw = path.read_bytes()
            data = json.loads(raw)
            mtime = path.stat().st_mtime
        except (OSError, ValueError):
            return None
        rel = path.relative_to(self.manifests_dir).parts
        if len(rel) != 4:
            return None
        name = Name("https", *rel)
        return Manifest(name=name, path=path, raw=raw, data=data, mtime=mtime)

    def list_manifests(self) -> list[Manifest]:
        out: list[Manifest] = []
        for path in sorted(self.manifests_dir.glob("*/*/*/*")):
            if path.is_file():
                m = self._load(path)
                if m is not None:
                    out.append(m)
        return out

    def write_manifest(self, name: Name, config: dict[str, Any], layers: list[dict[str, Any]]) -> bytes:
        raw = manifest_bytes(config, layers)
        path = self.manifest_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(raw)
        os.replace(tmp, path)
        return raw

    def remove_manifest(self, manifest: Manifest) -> None:
        """manifest.go ``Remove``: delete the file, then prune empty directories."""
        manifest.path.unlink(missing_ok=True)
        parent = manifest.path.parent
        while parent != self.manifests_dir and parent.is_dir():
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def referenced_digests(self, exclude: Path | None = None) -> set[str]:
        refs: set[str] = set()
        for m in self.list_manifests():
            if exclude is not None and m.path == exclude:
                continue
            refs.update(layer["digest"] for layer in m.all_layers() if layer.get("digest"))
        return refs

    def remove_unreferenced(self, digests: list[str]) -> list[str]:
        """Delete those of ``digests`` no manifest references (manifest.go ``RemoveLayers``)."""
        refs = self.referenced_digests()
        removed: list[str] = []
        for digest in digests:
            if digest in refs:
                continue
            with contextlib.suppress(FileNotFoundError, ValueError):
                self.blob_path(digest).unlink()
                removed.append(digest)
        return removed

    def prune(self) -> list[str]:
        """Startup prune (images.go ``PruneLayers``, v0.6.8 behaviour: no grace period): remove
        blobs no manifest references and files whose names are not valid digests (partials)."""
        refs = {d.replace(":", "-") for d in self.referenced_digests()}
        removed: list[str] = []
        for path in self.blobs_dir.iterdir():
            if path.is_file() and (not BLOB_RE.match(path.name) or path.name not in refs):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path.name)
        return removed
