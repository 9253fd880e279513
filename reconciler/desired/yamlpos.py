"""YAML → plain data, remembering where every key and value was written.

One reading for every command and the hooks: the events of ruamel.yaml's YAML 1.2 parser,
composed here with the YAML 1.2 core schema (what editors' YAML language servers read), so
`no`, `on`, `1:30` and `2026-01-01` are text, and `true`, `null`, `12`, `1.5` are what they
look like. (libyaml's faster C parser is YAML 1.1: it refuses `[phi3:mini]`.)
Each path (("models", 1, "name")) maps to its line and column.

Refused, each with its position and a hint: anchors and aliases (billion laughs), tags,
merge keys, duplicate and non-scalar keys, more than one document, a `%YAML` other than 1.2,
hexadecimal/octal numbers, `.inf`/`.nan` and numbers beyond a float or longer than
`MAX_DIGITS`. Cost is bounded while parsing: at most `MAX_NODES` nodes and `MAX_DEPTH`
levels, counted event by event, so a huge flow list stops at the limit instead of being
built first (the caller checks the size in bytes before reading).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml import events as ev
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from reconciler.desired.redact import shown

Path = tuple[str | int, ...]
MAX_DEPTH = 64
MAX_NODES = 40_000  # ~13,000 models (a mapping, a key and a name each): about 2 s to parse
MAX_FILE_BYTES = 1 * 2**20
MAX_DIGITS = 30

_NULL = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_INT = re.compile(r"[-+]?[0-9]+", re.ASCII)
_OTHER_BASE = re.compile(r"0o[0-7]+|0x[0-9a-fA-F]+", re.ASCII)
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?", re.ASCII)
_SPECIAL_FLOAT = re.compile(r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)", re.ASCII)
# What YAML 1.1 (PyYAML, older tools) reads as a boolean: text here, and a hint when such a
# word is given where a boolean is expected.
YAML11_BOOLS = {"y", "n", "yes", "no", "on", "off"}


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True)
class YamlProblem(Exception):
    position: Position
    message: str
    hint: str = ""


@dataclass
class Document:
    data: Any
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)
    plain_words: set[Path] = field(default_factory=set)  # plain scalars YAML 1.1 read as booleans

    def position_of(self, path: Path, *, value: bool = False) -> Position:
        """Where `path` was written (its value when `value`, else its key), or the nearest
        enclosing key that was."""
        if value and path in self.values:
            return self.values[path]
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if prefix in self.keys:
                return self.keys[prefix]
            if prefix in self.values:
                return self.values[prefix]
        return Position(1, 1)


def _pos(mark: Any) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def resolve_scalar(text: str, where: Position) -> Any:
    """A plain scalar by the YAML 1.2 core schema, refusing the forms a desired state never
    needs and that readers disagree on."""
    if text in _NULL:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _INT.fullmatch(text):
        if len(text.lstrip("+-")) > MAX_DIGITS:
            raise YamlProblem(where, f"a number longer than {MAX_DIGITS} digits", "write a smaller number")
        return int(text)
    if _OTHER_BASE.fullmatch(text):
        raise YamlProblem(
            where,
            "hexadecimal and octal numbers are not accepted",
            "write the number in decimal, or quote it if it is text",
        )
    if _SPECIAL_FLOAT.fullmatch(text):
        raise YamlProblem(where, "infinity and NaN are not accepted", "write a finite number")
    if _FLOAT.fullmatch(text):
        number = float(text)
        if math.isinf(number):
            raise YamlProblem(where, "a number beyond the range of a float", "write a smaller number")
        return number
    return text


class _Frame:
    """A collection being built: its data, its path and (for mappings) the key waiting for
    its value."""

    __slots__ = ("data", "key", "path")

    def __init__(self, data: dict[str, Any] | list[Any], path: Path) -> None:
        self.data = data
        self.path = path
        self.key: str | None = None


def load_yaml(text: str) -> Document:
    """Parse one YAML document; raise YamlProblem with a position on any problem."""
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise YamlProblem(Position(1, 1), f"file is larger than {MAX_FILE_BYTES // 2**20} MiB", "split it")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise YamlProblem(Position(line, 1), "file contains a NUL byte")
    try:
        return _compose(YAML(typ="safe", pure=True).parse(text))
    except ReaderError as exc:
        line = text[: max(int(exc.position), 0)].count("\n") + 1
        why = f"invalid YAML: {exc.reason} (character #x{int(exc.character):04x})"
        raise YamlProblem(Position(line, 1), why) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _pos(mark) if mark is not None else Position(1, 1)
        raise YamlProblem(where, f"invalid YAML: {exc.problem or exc.context}") from None
    except YAMLError as exc:
        raise YamlProblem(Position(1, 1), f"invalid YAML: {str(exc)[:200]}") from None
    except RecursionError:
        raise YamlProblem(Position(1, 1), f"nesting deeper than {MAX_DEPTH} levels") from None


def _compose(events: Iterator[Any]) -> Document:
    doc = Document(data=None)
    stack: list[_Frame] = []
    nodes = 0
    documents = 0
    for event in events:
        if isinstance(event, ev.StreamEndEvent):
            return doc
        if isinstance(event, ev.StreamStartEvent | ev.DocumentEndEvent):
            continue
        where = _pos(event.start_mark)
        if isinstance(event, ev.DocumentStartEvent):
            documents += 1
            _check_document(event, documents, where)
            continue
        if isinstance(event, ev.SequenceEndEvent | ev.MappingEndEvent):
            stack.pop()
            continue
        nodes += 1
        if nodes > MAX_NODES:
            raise YamlProblem(
                where, f"more than {MAX_NODES:,} values in one file", "split the desired state or trim it"
            )
        _check_node(event, where)
        if stack and isinstance(stack[-1].data, dict) and stack[-1].key is None:
            _take_key(stack[-1], event, where, doc)
            continue
        path = _child_path(stack)
        doc.values[path] = where
        value: Any
        if isinstance(event, ev.ScalarEvent):
            value = _scalar(event, where)
            if _plain(event) and event.value.lower() in YAML11_BOOLS:
                doc.plain_words.add(path)
        else:
            if len(stack) >= MAX_DEPTH:
                raise YamlProblem(where, f"nesting deeper than {MAX_DEPTH} levels", "flatten the structure")
            value = {} if isinstance(event, ev.MappingStartEvent) else []
        _attach(stack, doc, value)
        if isinstance(event, ev.CollectionStartEvent):
            stack.append(_Frame(value, path))
    return doc


def _check_document(event: Any, documents: int, where: Position) -> None:
    if documents > 1:
        raise YamlProblem(where, "more than one YAML document in the file", "keep one document (no `---`)")
    version = getattr(event, "version", None)
    if version is not None and tuple(version) != (1, 2):
        shown = ".".join(str(part) for part in version)
        raise YamlProblem(
            where,
            f"the file asks for YAML {shown}; desired-state files are YAML 1.2",
            "remove the %YAML line",
        )
    if getattr(event, "tags", None):
        raise YamlProblem(where, "%TAG directives are not supported", "remove the %TAG line")


def _check_node(event: Any, where: Position) -> None:
    if isinstance(event, ev.AliasEvent) or getattr(event, "anchor", None):
        raise YamlProblem(
            where, "YAML anchors and aliases (&name, *name) are not supported", "write the value out in full"
        )
    if getattr(event, "tag", None):
        raise YamlProblem(where, "YAML tags (!!type, !name) are not supported", "remove the tag; quote text")


def _plain(event: Any) -> bool:
    return not event.style


def _scalar(event: Any, where: Position) -> Any:
    return resolve_scalar(event.value, where) if _plain(event) else event.value


def _child_path(stack: list[_Frame]) -> Path:
    if not stack:
        return ()
    top = stack[-1]
    if isinstance(top.data, dict):
        assert top.key is not None
        return (*top.path, top.key)
    return (*top.path, len(top.data))


def _take_key(frame: _Frame, event: Any, where: Position, doc: Document) -> None:
    if not isinstance(event, ev.ScalarEvent):
        raise YamlProblem(where, "keys must be plain strings", "write the key as text")
    key = event.value
    if _plain(event) and key == "<<":
        raise YamlProblem(where, "merge keys (<<) are not supported", "write the fields out in full")
    assert isinstance(frame.data, dict)
    path = (*frame.path, key)
    if path in doc.keys:
        first = doc.keys[path]
        raise YamlProblem(
            where, f"duplicate key {shown(key)} (first written on line {first.line})", "keep one of them"
        )
    doc.keys[path] = where
    frame.key = key


def _attach(stack: list[_Frame], doc: Document, value: Any) -> None:
    if not stack:
        doc.data = value
        return
    top = stack[-1]
    if isinstance(top.data, dict):
        assert top.key is not None
        top.data[top.key] = value
        top.key = None
    else:
        top.data.append(value)
