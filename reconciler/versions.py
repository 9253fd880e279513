"""Ollama version numbers, read from what the server reports or an image tag pins (pure)."""

from __future__ import annotations

import re

Version = tuple[int, int, int]

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str | None) -> Version | None:
    """`0.32.15`, `v0.6.8`, `0.5.9-3-g2629a7a`, `0.30.0-rc2`, an image tag such as
    `0.32.15-rocm`, or `0.12` (patch 0) → a comparable triple; None when it is not a version."""
    match = _VERSION.match((text or "").strip())
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def show(version: Version) -> str:
    return ".".join(map(str, version))


def image_version(image: str) -> Version | None:
    """The version an image reference pins by its tag (`ollama/ollama:0.32.15`), if any."""
    name = image.split("@", 1)[0]
    _, sep, tag = name.rpartition(":")
    return parse_version(tag) if sep and "/" not in tag else None
