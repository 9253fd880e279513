"""One reading of Ollama version numbers for the planner, the VRAM estimate and the loader."""

from __future__ import annotations

import pytest

from reconciler.versions import image_version, parse_version, show


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("0.32.15", (0, 32, 15)),
        ("v0.6.8", (0, 6, 8)),
        (" 0.9.7-rc1\n", (0, 9, 7)),
        ("0.5.9-3-g2629a7a", (0, 5, 9)),
        ("0.12", (0, 12, 0)),
        ("0.32.15-rocm", (0, 32, 15)),
        ("latest", None),
        ("", None),
        (None, None),
    ],
)
def test_versions_as_the_server_reports_them_or_a_tag_pins_them(text: str | None, version: object) -> None:
    assert parse_version(text) == version


def test_an_image_pins_a_version_only_by_its_tag() -> None:
    assert image_version("ollama/ollama:0.32.15") == (0, 32, 15)
    assert image_version("registry:5000/ollama/ollama:0.6.8@sha256:abc") == (0, 6, 8)
    assert image_version("registry:5000/ollama/ollama") is None  # a port is not a tag
    assert image_version("ollama/ollama:latest") is None
    assert show((0, 32, 15)) == "0.32.15"
