from __future__ import annotations

import pytest

from reconciler.desired.refs import InvalidReference, parse_ref


@pytest.mark.parametrize(
    ("text", "canonical", "short"),
    [
        ("phi3:mini", "registry.ollama.ai/library/phi3:mini", "phi3:mini"),
        (
            "llama3:8b-instruct-q4_K_M",
            "registry.ollama.ai/library/llama3:8b-instruct-q4_k_m",
            "llama3:8b-instruct-q4_K_M",
        ),
        ("nomic-embed-text", "registry.ollama.ai/library/nomic-embed-text:latest", "nomic-embed-text:latest"),
        (
            "hf.co/bartowski/Qwen2.5-7B-GGUF:Q4_K_M",
            "hf.co/bartowski/qwen2.5-7b-gguf:q4_k_m",
            "hf.co/bartowski/Qwen2.5-7B-GGUF:Q4_K_M",
        ),
        ("registry.lan:5000/team/m:q4", "registry.lan:5000/team/m:q4", "registry.lan:5000/team/m:q4"),
        ("me/model", "registry.ollama.ai/me/model:latest", "me/model:latest"),
    ],
)
def test_valid_references(text: str, canonical: str, short: str) -> None:
    ref = parse_ref(text)
    assert ref.canonical == canonical and ref.short == short


@pytest.mark.parametrize(
    "text",
    [
        "",
        "../../x",
        "a/../b",
        "a;rm -rf /",
        "$(reboot)",
        "http://h/x",
        "a b",
        "a\nb",
        "a\x00b",
        "x:",
        ":tag",
        "a/b/c/d",
        "-x",
        "a" * 81,
        "m:" + "t" * 81,
        "host:99999999/a/b",
    ],
)
def test_invalid_references(text: str) -> None:
    with pytest.raises(InvalidReference):
        parse_ref(text)
