"""YAML → plain data, remembering where every key and value was written.

PyYAML's composer gives nodes with marks; we build the data ourselves so each
path (("models", 1, "name")) maps to its line and column. We refuse what a
desired-state file never needs and an attacker could abuse: anchors/aliases
(billion laughs), duplicate keys (silently last-wins in PyYAML), non-string
keys, and absurd nesting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]
MAX_DEPTH = 64
MAX_FILE_BYTES = 4 * 2**20


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


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise YamlProblem(
                _pos(event.start_mark),
                "YAML anchors and aliases (*name) are not supported",
                "write the value out in full",
            )
        node: Node | None = super().compose_node(parent, index)
        return node


def _pos(mark: Any) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def load_yaml(text: str) -> Document:
    """Parse one YAML document; raise YamlProblem with a position on any problem."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise YamlProblem(Position(1, 1), f"file is larger than {MAX_FILE_BYTES // 2**20} MiB")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise YamlProblem(Position(line, 1), "file contains a NUL byte")
    try:
        loader = _NoAliasLoader(text)  # the reader refuses control characters here
    except yaml.reader.ReaderError as exc:
        line = text[: max(exc.position, 0)].count("\n") + 1
        why = f"invalid YAML: {exc.reason} (character #x{exc.character:04x})"
        raise YamlProblem(Position(line, 1), why) from None
    try:
        node = loader.get_single_node()
        doc = Document(data={})
        if node is not None:
            doc.values[()] = _pos(node.start_mark)
            doc.data = _build(loader, node, (), doc, 0)
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _pos(mark) if mark is not None else Position(1, 1)
        raise YamlProblem(where, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(Position(1, 1), f"invalid YAML: {exc}") from None
    except RecursionError:
        raise YamlProblem(Position(1, 1), f"nesting deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()


def _build(loader: yaml.SafeLoader, node: Node, path: Path, doc: Document, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise YamlProblem(_pos(node.start_mark), f"nesting deeper than {MAX_DEPTH} levels")
    if isinstance(node, ScalarNode):
        return loader.construct_object(node, deep=True)
    if isinstance(node, SequenceNode):
        items = []
        for index, child in enumerate(node.value):
            doc.values[(*path, index)] = _pos(child.start_mark)
            items.append(_build(loader, child, (*path, index), doc, depth + 1))
        return items
    if isinstance(node, MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlProblem(_pos(key_node.start_mark), "keys must be plain strings")
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key_node.value)
            child_path = (*path, key)
            if key in result:
                first = doc.keys[child_path]
                raise YamlProblem(
                    _pos(key_node.start_mark),
                    f"duplicate key {key!r} (first written on line {first.line})",
                    "keep one of them",
                )
            doc.keys[child_path] = _pos(key_node.start_mark)
            doc.values[child_path] = _pos(value_node.start_mark)
            result[key] = _build(loader, value_node, child_path, doc, depth + 1)
        return result
    raise YamlProblem(_pos(node.start_mark), "unsupported YAML node")
