"""Exact edits of desired-state YAML text: change a value, add a key, rename a key (pure).

What the advisor proposes is applied to the file's own text at the positions the loader
read (yamlpos.py), so comments, order and layout stay as the owner wrote them and the diff
is only the lines that change. `OverlaySource` serves the edited files over the original
source, so the edit is checked by the one loader before it is shown.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.desired.source import Source
from reconciler.desired.yamlpos import Document, Path, Position, load_yaml

_PLAIN_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "~"}


class EditImpossible(ValueError):
    """The text has no place for this edit (e.g. a flow mapping); the message says where."""


@dataclass(frozen=True)
class Edit:
    path: Path
    value: Any
    key: bool = False  # rename the key at `path` to `value`


def render(value: Any) -> str:
    """A YAML 1.2 scalar that reads back as `value`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    plain = _PLAIN_SAFE.fullmatch(text) and text.lower() not in _RESERVED and not _looks_numeric(text)
    return text if plain else json.dumps(text)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _token_end(line: str, start: int) -> int:
    """Where the scalar starting at `start` (0-based) ends on its line."""
    quote = line[start] if start < len(line) else ""
    if quote == '"':
        i = start + 1
        while i < len(line) and not (line[i] == '"' and line[i - 1] != "\\"):
            i += 1
        return i + 1
    if quote == "'":
        i = start + 1
        while i < len(line):
            if line[i] == "'" and (i + 1 >= len(line) or line[i + 1] != "'"):
                return i + 1
            i += 2 if line[i] == "'" else 1
        return len(line)
    flow = "[" in line[:start] or "{" in line[:start]
    stops = [
        j for j in (line.find(" #", start), *((line.find(c, start) for c in ",]}") if flow else ())) if j >= 0
    ]
    end = min(stops, default=len(line))
    return len(line[:end].rstrip())


def _key_end(line: str, start: int) -> int:
    """Where a block mapping key ends: its closing quote, or the `:` followed by a space or
    the end of the line (a plain key may hold colons: `llama3:8b:`)."""
    if line[start : start + 1] in ('"', "'"):
        return _token_end(line, start)
    for i in range(start, len(line)):
        if line[i] == ":" and (i + 1 == len(line) or line[i + 1] in " \t"):
            return i
    return len(line)


def _replace(lines: list[str], where: Position, new: str, *, key: bool = False) -> None:
    i, start = where.line - 1, where.column - 1
    line = lines[i]
    end = _key_end(line, start) if key else _token_end(line, start)
    lines[i] = line[:start] + new + line[end:]


def _add_key(lines: list[str], doc: Document, parent: Path, key: str, value: str) -> None:
    children = sorted(
        (
            (pos, path)
            for path, pos in doc.keys.items()
            if path[:-1] == parent and len(path) == len(parent) + 1
        ),
        key=lambda item: (item[0].line, item[0].column),
    )
    if not children:
        raise EditImpossible(f"no mapping with keys at {'.'.join(map(str, parent)) or 'the top level'}")
    first, first_path = children[0]
    indent = " " * (first.column - 1)
    shared = first_path in doc.values and doc.values[first_path].line == first.line
    scalar = shared and not isinstance(_get(doc.data, first_path), dict | list)
    at = first.line if scalar else first.line - 1  # after a one-line first key, else before it
    if not scalar and lines[first.line - 1].lstrip().startswith("- "):
        raise EditImpossible(f"cannot add {key} beside a nested first key on a list item's line")
    lines.insert(at, f"{indent}{key}: {value}")


def _get(data: Any, path: Path) -> Any:
    for part in path:
        data = data[part]
    return data


def apply(text: str, edits: Sequence[Edit]) -> str:
    """`text` with each edit made in turn (re-read after each, so positions stay true)."""
    for edit in edits:
        doc = load_yaml(text)
        lines = text.split("\n")
        if edit.key:
            where = doc.keys.get(edit.path)
            if where is None:
                raise EditImpossible(f"no key at {edit.path}")
            _replace(lines, where, render(edit.value), key=True)
        elif edit.path in doc.values and not isinstance(_get(doc.data, edit.path), dict | list):
            _replace(lines, doc.values[edit.path], render(edit.value))
        else:
            _add_key(lines, doc, edit.path[:-1], str(edit.path[-1]), render(edit.value))
        text = "\n".join(lines)
    return text


def unified_diff(name: str, before: str, after: str) -> str:
    """A diff `git apply` and `patch -p1` take, run from the repo's root."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{name}", f"b/{name}", n=2
    )
    return "".join(lines)


class OverlaySource:
    """`base` with some files replaced (what the desired state would be after an edit)."""

    def __init__(self, base: Source, files: Mapping[str, str]) -> None:
        self.base = base
        self.files = dict(files)
        self.revision = base.revision

    def read(self, path: str, limit: int) -> bytes | None:
        if path in self.files:
            return self.files[path].encode()
        return self.base.read(path, limit)

    def documents(self, prefix: str, limit: int, max_files: int) -> dict[str, str]:
        return self.base.documents(prefix, limit, max_files)
