"""Generate the JSON Schemas and SCHEMA.md of the desired-state format from the models, and
the package's copy of the example (what `reconciler init` seeds from an installed wheel).

python -m reconciler.desired.docs          # write desired_state/schema/*.json, SCHEMA.md, and
                                           # mirror desired_state/ into reconciler/data/desired_state/
python -m reconciler.desired.docs --check  # fail when any of them is out of date (CI)

The top-level `desired_state/` is the one to edit; the package copy is only ever written here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from reconciler.desired.load import OLLAMA_FILE, OPENWEBUI_FILE, SERVER_FILE
from reconciler.desired.schema import OllamaSpec, OpenWebUISpec, ServerSpec

CHECKOUT = Path(__file__).resolve().parents[2]
ROOT = CHECKOUT / "desired_state"
PACKAGE_COPY = CHECKOUT / "reconciler" / "data" / "desired_state"
FILES: list[tuple[str, type[BaseModel]]] = [
    (SERVER_FILE, ServerSpec),
    (OLLAMA_FILE, OllamaSpec),
    (OPENWEBUI_FILE, OpenWebUISpec),
]


def json_schema(model: type[BaseModel], file: str) -> str:
    schema = model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = file
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


_NAMED = {
    "_model_ref": "model reference",
    "_ip": "IP address",
    "_image": "image reference",
    "_slug": "name",
    "_docker_name": "Docker name",
    "_env_value": "string",
    "_setting": "string, boolean, number, list, object or secret reference",
    "_validate": "size",
    "_host": "host",
}


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        for meta in annotation.__metadata__:
            name = getattr(getattr(meta, "func", None), "__name__", "")
            if name in _NAMED:
                return _NAMED[name]
        return _type_name(args[0])
    if origin in (Union, UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is Literal:
        return " or ".join(f"`{json.dumps(a)}`" for a in args)
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "mapping"
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


def _field_type(field: Any) -> str:
    for meta in field.metadata:
        name = getattr(getattr(meta, "func", None), "__name__", "")
        if name in _NAMED:
            return _NAMED[name]
    return _type_name(field.annotation)


def _size(n: int) -> str:
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n and n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
        if value is None:
            return "—"
        if "size" in _field_type(field) and isinstance(value, int):
            return f"`{_size(value)}`"
        return f"`{json.dumps(value)}`"
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return "(see below)"
        return f"`{json.dumps(value)}`"
    return "**required**"


def _nested(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    for arg in getattr(annotation, "__args__", ()):
        found += _nested(arg)
    return found


def _section(model: type[BaseModel], prefix: str, out: list[str], seen: set[str]) -> None:
    out.append(f"\n### `{prefix or '(top level)'}`\n")
    if model.__doc__ and not model.__doc__.startswith("Create a new model"):
        out.append(model.__doc__.strip().splitlines()[0] + "\n")
    out.append("| field | type | default | meaning |\n|---|---|---|---|")
    children: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        type_name = _field_type(field)
        desc = (field.description or "").replace("|", "\\|")
        out.append(f"| `{key}` | {type_name} | {_default(field)} | {desc} |")
        for child in _nested(field.annotation):
            path = f"{prefix}.{key}" if prefix else key
            if path not in seen:
                seen.add(path)
                children.append((path, child))
    for path, child in children:
        _section(child, path, out, seen)


def markdown() -> str:
    out = [
        "# Desired-state format\n",
        "Generated from `reconciler/desired/schema.py` by `python -m reconciler.desired.docs`;",
        "do not edit by hand. Sizes accept bytes or units (`120GiB`, `7.5GB`, `512MiB`).",
        "Editors: point YAML language servers at `schema/<file>.schema.json`, e.g. with",
        "`# yaml-language-server: $schema=schema/ollama.schema.json` on the first line.",
        "",
        "The files are read as YAML 1.2 (core schema), as editors read them: `no`, `on` and `1:30`",
        "are text, a boolean is `true`/`false`; anchors, aliases, tags, merge keys, duplicate keys,",
        "hexadecimal/octal numbers, `.inf`/`.nan`, more than 40,000 values or 64 levels in a file,",
        "files over 1 MiB and knowledge documents over 64 MiB (10,000 in all) are refused with",
        "file:line:column. Symbolic links and submodules are refused, never followed.",
        "",
        "Secrets are never written here: they are referenced as `{env: NAME}` or `{file: NAME}`, and",
        "the server's own `/etc/reconciler/reconciler.toml` (outside git) says which names may be used",
        "and where each may be sent:",
        "",
        "```toml",
        "[secrets]",
        'dir = "/etc/reconciler/secrets"   # {file: NAME} is a file in this folder (0700, root)',
        'env = ["OPENAI_API_KEY"]          # the only names {env: NAME} may use',
        "[secrets.send_to]                 # hosts (or image:REPOSITORY) each secret may reach, besides",
        'OPENAI_API_KEY = ["api.openai.com"]  # this machine and the default OpenWebUI image',
        "```",
        "",
        "`validate` checks references against that file where it exists (on the server, and in the",
        "pre-receive hook); on a laptop without it, only their form. A value shaped like a secret",
        "(`sk-…`, `ghp_…`, `hf_…`, `AKIA…`, a private key, `user:password@` in a URL) is refused in",
        "any field, and no message repeats a value written here.",
    ]
    for file, model in FILES:
        out.append(f"\n## `{file}`\n")
        _section(model, "", out, set())
    return "\n".join(out) + "\n"


def schemas() -> dict[str, str]:
    """`{file: JSON Schema text}` for the three files (what `reconciler schema` prints)."""
    return {file: json_schema(model, file) for file, model in FILES}


def outputs() -> dict[Path, bytes]:
    """Every generated file and its content: the docs, then the package copy of the example."""
    files = {ROOT / "SCHEMA.md": markdown().encode()}
    for file, text in schemas().items():
        files[ROOT / "schema" / file.replace(".yaml", ".schema.json")] = text.encode()
    example = {p for p in ROOT.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    for path in sorted(example | set(files)):
        files[PACKAGE_COPY / path.relative_to(ROOT)] = files.get(path) or path.read_bytes()
    return files


def strays(wanted: dict[Path, bytes]) -> list[Path]:
    """Files in the package copy that the example no longer has."""
    found = (p for p in PACKAGE_COPY.rglob("*") if p.is_file()) if PACKAGE_COPY.is_dir() else iter(())
    return sorted(p for p in found if p not in wanted)


def main(argv: list[str]) -> int:
    wanted = outputs()
    stale = [path for path, data in wanted.items() if not path.is_file() or path.read_bytes() != data]
    extra = strays(wanted)
    if "--check" in argv:
        for path in stale:
            print(f"out of date: {path} (run python -m reconciler.desired.docs)", file=sys.stderr)
        for path in extra:
            print(f"not in desired_state/: {path} (run python -m reconciler.desired.docs)", file=sys.stderr)
        return 1 if stale or extra else 0
    for path, data in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for path in extra:
        path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
