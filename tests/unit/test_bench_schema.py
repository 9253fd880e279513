"""`benchmarks:` in ollama.yaml: its fields and cross-checks, each refused with file:line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.desired.load import load_desired
from reconciler.desired.schema import DEFAULT_PROMPTS
from reconciler.desired.source import DirSource
from reconciler.errors import InvalidDesiredState, Problem

EXAMPLE = Path(__file__).resolve().parents[2] / "desired_state"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE, tmp_path / "repo")
    return tmp_path / "repo"


def _problems(repo: Path, old: str, new: str) -> list[Problem]:
    path = repo / "ollama.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(InvalidDesiredState) as info:
        load_desired(DirSource(repo))
    return info.value.problems


def _line(repo: Path, needle: str) -> int:
    lines = (repo / "ollama.yaml").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if needle in line)


def test_the_example_benchmarks_three_models_at_night_with_the_builtin_prompts() -> None:
    bench = load_desired(DirSource(EXAMPLE)).ollama.benchmarks
    assert bench.models == ["llama3:8b-instruct-q4_K_M", "phi3:mini", "deepseek-r1:7b"]
    assert bench.on_change and bench.window == "03:00-05:00" and bench.runs == 3
    assert bench.prompt_set() == DEFAULT_PROMPTS and len(DEFAULT_PROMPTS) == 3
    assert "llama3:8b-instruct-q5_K_M" in bench.candidates["llama3:8b-instruct-q4_K_M"]


@pytest.mark.parametrize(
    ("old", "new", "field", "says"),
    [
        ('window: "03:00-05:00"', 'window: "3am-5am"', "benchmarks.window", "HH:MM-HH:MM"),
        ('window: "03:00-05:00"', 'window: "03:00-03:00"', "benchmarks.window", "never be open"),
        ("runs: 3 ", "runs: 0 ", "benchmarks.runs", "greater than or equal to 1"),
        ("runs: 3 ", "quiet: soon\n  runs: 3 ", "benchmarks.quiet", "Go duration"),
        ("on_change: true", "on_change: yes", "benchmarks.on_change", "boolean"),
    ],
)
def test_a_bad_field_is_refused_with_its_line(repo: Path, old: str, new: str, field: str, says: str) -> None:
    (p,) = _problems(repo, old, new)
    assert (p.file, p.field) == ("ollama.yaml", field) and says in p.message
    assert p.line == _line(repo, new.splitlines()[0].strip().split(":")[0] + ":")


def test_benchmarked_and_compared_models_must_be_desired(repo: Path) -> None:
    found = _problems(
        repo,
        "  candidates:",
        "  candidates:\n    gemma:2b: [gemma:7b]\n    phi3:mini: [phi3:mini]",
    )
    found += _problems(repo, "models: [llama3:8b-instruct-q4_K_M,", "models: [mistral:7b,")
    messages = {(p.field, p.message) for p in found}
    assert (
        "benchmarks.candidates.gemma:2b",
        "candidates are listed for a model that is not under models",
    ) in messages
    assert ("benchmarks.candidates.phi3:mini[0]", "a model is not its own candidate") in messages
    assert ("benchmarks.models[0]", "this model is not listed under models or derived") in messages
