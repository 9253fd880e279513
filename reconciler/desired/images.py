"""Image references as Docker resolves them, and release tags (semantic versions)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_RELEASE = re.compile(r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")


@dataclass(frozen=True)
class ImageRef:
    host: str  # registry host as Docker resolves it
    repository: str  # namespace/name
    tag: str | None  # None: a digest-only or untagged reference

    @property
    def key(self) -> str:
        return f"{self.host}/{self.repository}"


def parse_image(image: str) -> ImageRef:
    """`ollama/ollama:0.32.15` → registry-1.docker.io, ollama/ollama, 0.32.15 (Docker's own
    defaults: Docker Hub for a first part without '.' or ':', `library/` for one part)."""
    name = image.split("@", 1)[0]
    tag = None
    if name.rfind(":") > name.rfind("/"):
        name, tag = name.rsplit(":", 1)
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, repository = first, rest
    else:
        host, repository = "registry-1.docker.io", name if rest else f"library/{name}"
    return ImageRef(host=host, repository=repository, tag=tag)


def release(tag: str) -> tuple[int, int, int] | None:
    """A release's version (`0.32.15`, `v0.6.8`); None for a pre-release or another tag."""
    found = _RELEASE.fullmatch(tag)
    return (int(found.group(1)), int(found.group(2)), int(found.group(3))) if found else None


def with_tag(image: str, tag: str) -> str:
    """`image` on another tag (`ollama/ollama:0.32.15`, `0.32.16` → `ollama/ollama:0.32.16`)."""
    name = image.split("@", 1)[0]
    if name.rfind(":") > name.rfind("/"):
        name = name.rsplit(":", 1)[0]
    return f"{name}:{tag}"
