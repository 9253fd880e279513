"""The shipped example copied into a temporary repo, edited line by line, and loaded: the
helpers the desired-state tests share."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.desired.load import load_desired
from reconciler.desired.source import DirSource
from reconciler.errors import InvalidDesiredState, Problem

EXAMPLE = Path(__file__).resolve().parents[3] / "desired_state"


def copy_example(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE, tmp_path / "repo")
    return tmp_path / "repo"


def problems(repo: Path) -> list[Problem]:
    with pytest.raises(InvalidDesiredState) as info:
        load_desired(DirSource(repo))
    return info.value.problems


def edit(repo: Path, file: str, old: str, new: str) -> None:
    path = repo / file
    text = path.read_text()
    assert old in text, f"{old!r} not in {file}"
    path.write_text(text.replace(old, new, 1))


def line_of(repo: Path, file: str, needle: str) -> int:
    for number, line in enumerate((repo / file).read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(needle)
