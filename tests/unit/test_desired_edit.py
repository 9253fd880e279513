"""Exact edits of desired-state YAML (reconciler/desired/edit.py): only the lines that change
change, comments stay, and the result reads back as intended."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.desired.edit import Edit, EditImpossible, OverlaySource, apply, render, unified_diff
from reconciler.desired.load import load_desired
from reconciler.desired.source import DirSource
from reconciler.desired.yamlpos import load_yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "desired_state"
TEXT = (EXAMPLE / "ollama.yaml").read_text()


def _changed(before: str, after: str) -> list[tuple[str, str]]:
    return [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=False) if a != b]


def test_a_value_is_replaced_in_place_keeping_its_comment() -> None:
    after = apply(TEXT, [Edit(("models", 0, "name"), "llama3:8b-instruct-q5_K_M")])
    assert _changed(TEXT, after) == [
        ("  - name: llama3:8b-instruct-q4_K_M   # primary model, always in VRAM",
         "  - name: llama3:8b-instruct-q5_K_M   # primary model, always in VRAM"),
    ]  # fmt: skip
    assert load_yaml(after).data["models"][0]["name"] == "llama3:8b-instruct-q5_K_M"


def test_flow_list_items_keys_with_colons_and_new_keys() -> None:
    after = apply(
        TEXT,
        [
            Edit(("benchmarks", "models", 1), "phi3:medium"),
            Edit(
                ("benchmarks", "candidates", "llama3:8b-instruct-q4_K_M"),
                "llama3:8b-instruct-q5_K_M",
                key=True,
            ),
            Edit(("container", "env", "OLLAMA_GPU_OVERHEAD"), "256MiB"),
            Edit(("models", 1, "keep_loaded"), True),
            Edit(("models", 0, "num_ctx"), 4096),
        ],
    )
    data = load_yaml(after).data
    assert data["benchmarks"]["models"] == ["llama3:8b-instruct-q4_K_M", "phi3:medium", "deepseek-r1:7b"]
    assert list(data["benchmarks"]["candidates"]) == ["llama3:8b-instruct-q5_K_M"]
    assert data["container"]["env"]["OLLAMA_GPU_OVERHEAD"] == "256MiB"
    edited = data["models"][1]
    assert {k: edited[k] for k in ("name", "keep_loaded", "num_ctx")} == {
        "name": "phi3:mini", "keep_loaded": True, "num_ctx": 4096
    }  # fmt: skip
    assert data["models"][0]["num_ctx"] == 4096
    assert len(after.splitlines()) == len(TEXT.splitlines()) + 2  # two keys added, nothing else moved
    assert "# the quantizations `advise` compares llama3 with" in after


@pytest.mark.parametrize(
    ("value", "text"),
    [("q8_0", "q8_0"), (True, "true"), (8192, "8192"), ("yes", '"yes"'), ("1e3", '"1e3"'), ("a b", '"a b"'),
     ("llama3:8b", "llama3:8b"), ("", '""')],
)  # fmt: skip
def test_scalars_render_so_they_read_back_the_same(value: object, text: str) -> None:
    assert render(value) == text
    assert load_yaml(f"k: {text}\n").data["k"] == value


def test_a_quoted_value_is_replaced_whole() -> None:
    assert apply('a: "x # y"   # note\n', [Edit(("a",), "z")]) == "a: z   # note\n"
    assert apply("a: 'it''s'\n", [Edit(("a",), "b")]) == "a: b\n"


def test_no_place_for_the_edit_is_said() -> None:
    with pytest.raises(EditImpossible, match="no mapping with keys"):
        apply("a: {}\n", [Edit(("a", "b"), 1)])


def test_the_diff_applies_and_the_overlay_reads_as_the_loader_does() -> None:
    after = apply(TEXT, [Edit(("models", 1, "num_ctx"), 2048)])
    diff = unified_diff("ollama.yaml", TEXT, after)
    assert diff.startswith("--- a/ollama.yaml\n+++ b/ollama.yaml\n") and "+    num_ctx: 2048" in diff
    desired = load_desired(OverlaySource(DirSource(EXAMPLE), {"ollama.yaml": after}))
    assert desired.ollama.models[1].num_ctx == 2048
