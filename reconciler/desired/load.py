"""Read and validate a desired state; every problem comes back with file:line:column.

Messages never repeat a value written in the files: they point at it (file:line:column and
the field). Only field names are repeated (through `shown`: truncated, and hidden when shaped
like a secret), so a key pasted into the wrong field never reaches a terminal or a log.

`load_desired` is the one loader used by `validate`, `plan`, `apply`, `serve` and the
pre-receive hook, so what passes one passes all.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from reconciler.desired.checks import port_and_volume_checks
from reconciler.desired.redact import secret_shape, shown
from reconciler.desired.refs import DEFAULT_HOST, canonical
from reconciler.desired.schema import (
    PARAMETERS_FROM_0_30,
    PARAMETERS_UNTIL_0_7,
    DerivedModel,
    DesiredState,
    ModelSpec,
    OllamaSpec,
    OpenWebUISpec,
    ServerSpec,
)
from reconciler.desired.secrets import SecretPolicy, secret_uses, use_refusal
from reconciler.desired.source import MAX_KNOWLEDGE_FILE, Source, Unreadable
from reconciler.desired.yamlpos import MAX_FILE_BYTES, Document, Path, YamlProblem, load_yaml
from reconciler.errors import InvalidDesiredState, Problem
from reconciler.versions import image_version

SERVER_FILE, OLLAMA_FILE, OPENWEBUI_FILE = "server.yaml", "ollama.yaml", "openwebui.yaml"
_SECTIONS: dict[str, tuple[str, type[BaseModel], bool]] = {
    "server": (SERVER_FILE, ServerSpec, True),
    "ollama": (OLLAMA_FILE, OllamaSpec, True),
    "openwebui": (OPENWEBUI_FILE, OpenWebUISpec, False),
}
_SCHEMA_HINT = "see desired_state/SCHEMA.md for every field and its default"
_REFERENCE_ADVICE = (
    "secrets never go in git: keep the value on the server and reference it as {file: NAME} or "
    "{env: NAME} (see docs/threat-model.md)"
)
_YAML11_HINT = "YAML 1.2 reads yes/no/on/off as text: write true or false"
MAX_DOCUMENTS = 10_000  # knowledge files in one desired state, all bases together


@dataclass
class _Parsed:
    file: str
    doc: Document
    model: BaseModel

    def problem(self, path: Path, message: str, hint: str = "") -> Problem:
        pos = self.doc.position_of(path)
        return Problem(self.file, pos.line, pos.column, format_path(path), message, hint)


def format_path(path: Iterable[str | int]) -> str:
    """`models[1].name`; a key shaped like a secret shows as `(hidden)`, and a long or
    unprintable one as `shown` writes it."""
    text = ""
    for part in path:
        if isinstance(part, str) and (secret_shape(part) or not part.isprintable() or len(part) > 60):
            part = "(hidden)" if secret_shape(part) else shown(part)
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load_desired(source: Source, *, secrets: SecretPolicy | None = None) -> DesiredState:
    """Parse, validate and cross-check every file; raise InvalidDesiredState listing all.

    With `secrets` (the server's policy), every secret reference is also checked against it:
    the hook and `serve` pass it; `validate` on a laptop, with no server config, checks only
    the form of the references."""
    problems: list[Problem] = []
    parsed: dict[str, _Parsed] = {}
    for section, (file, model, required) in _SECTIONS.items():
        result = _parse_file(source, file, model, required, problems)
        if result is not None:
            parsed[section] = result
    if problems:
        raise InvalidDesiredState(problems)
    knowledge = _knowledge_files(source, parsed, problems)
    problems.extend(_cross_checks(parsed, knowledge))
    if secrets is not None:
        problems.extend(_secret_checks(parsed, secrets))
    if problems:
        raise InvalidDesiredState(problems)
    return DesiredState(
        server=_spec(parsed, "server", ServerSpec),
        ollama=_spec(parsed, "ollama", OllamaSpec),
        openwebui=_spec(parsed, "openwebui", OpenWebUISpec) if "openwebui" in parsed else None,
        knowledge_files=knowledge,
        revision=source.revision,
    )


_M = TypeVar("_M", bound=BaseModel)


def _spec(parsed: dict[str, _Parsed], section: str, model: type[_M]) -> _M:
    spec = parsed[section].model
    assert isinstance(spec, model)
    return spec


def _parse_file(
    source: Source, file: str, model: type[BaseModel], required: bool, problems: list[Problem]
) -> _Parsed | None:
    try:
        raw = source.read(file, MAX_FILE_BYTES)
    except Unreadable as exc:
        problems.append(Problem(file, 1, 1, "", exc.message, exc.hint))
        return None
    if raw is None:
        if required:
            problems.append(Problem(file, 1, 1, "", "file is missing", f"create {file}; {_SCHEMA_HINT}"))
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(Problem(file, line, 1, "", "file is not UTF-8 text", "save it as UTF-8"))
        return None
    try:
        doc = load_yaml(text)
    except YamlProblem as exc:
        problems.append(Problem(file, exc.position.line, exc.position.column, "", exc.message, exc.hint))
        return None
    if doc.data is None:
        doc.data = {}
    if not isinstance(doc.data, dict):
        problems.append(Problem(file, 1, 1, "", "the file must be a mapping of fields", _SCHEMA_HINT))
        return None
    shaped = _secret_shaped(file, doc)
    problems.extend(shaped)
    try:
        result = _Parsed(file, doc, model.model_validate(doc.data))
    except ValidationError as exc:
        problems.extend(_validation_problems(file, doc, model, exc))
        return None
    return None if shaped else result


def _secret_shaped(file: str, doc: Document) -> list[Problem]:
    """A secret written into any field (or key) of the file, wherever it is."""
    problems: list[Problem] = []
    stack: list[tuple[Path, Any]] = [((), doc.data)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                child = (*path, key)
                kind = secret_shape(key)
                if kind is not None:
                    problems.append(_shaped(file, doc, child, path, f"a key looks like {kind}"))
                stack.append((child, value))
        elif isinstance(node, list):
            stack.extend(((*path, index), item) for index, item in enumerate(node))
        elif isinstance(node, str):
            kind = secret_shape(node)
            if kind is not None:
                problems.append(_shaped(file, doc, path, path, f"the value looks like {kind}", value=True))
    return sorted(problems, key=lambda p: (p.line, p.column))


def _shaped(file: str, doc: Document, at: Path, field: Path, message: str, value: bool = False) -> Problem:
    pos = doc.position_of(at, value=value)
    return Problem(file, pos.line, pos.column, format_path(field), message, _REFERENCE_ADVICE)


def _data_path(data: Any, loc: tuple[int | str, ...]) -> Path:
    """Keep the parts of a pydantic `loc` that exist in the data (drops union tags)."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, dict) and isinstance(part, str) and (part in node or last):
            path.append(part)
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
    return tuple(path)


def _validation_problems(
    file: str, doc: Document, model: type[BaseModel], exc: ValidationError
) -> list[Problem]:
    merged: dict[Path, list[str]] = {}
    hints: dict[Path, str] = {}
    on_value: set[Path] = set()
    for error in exc.errors(include_url=False):
        path = _data_path(doc.data, tuple(error["loc"]))
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown field {shown(path[-1])}"
            hints[path] = _field_hint(model, path)
        elif error["type"] == "missing":
            message = f"required field {shown(path[-1])} is missing"
        else:
            on_value.add(path)
            if error["type"].startswith("bool") and path in doc.plain_words:
                hints[path] = _YAML11_HINT
        messages = merged.setdefault(path, [])
        if message not in messages:
            messages.append(message)
    problems = []
    for path, messages in merged.items():
        pos = doc.position_of(path, value=path in on_value)
        hint = hints.get(path, _SCHEMA_HINT)
        problems.append(Problem(file, pos.line, pos.column, format_path(path), "; or ".join(messages), hint))
    return problems


def _field_hint(model: type[BaseModel], path: Path) -> str:
    """'did you mean ...' from the fields of the model that holds the unknown key."""
    current: Any = model
    for part in path[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if _is_model(current) else None
        if field is None:
            return _SCHEMA_HINT
        current = _model_in(field.annotation)
    if not _is_model(current):
        return _SCHEMA_HINT
    names = sorted(f.alias or n for n, f in current.model_fields.items())
    close = difflib.get_close_matches(str(path[-1]), names, n=1)
    prefix = f"did you mean {close[0]!r}? " if close else ""
    return f"{prefix}valid fields here: {', '.join(names)}"


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


def _model_in(annotation: Any) -> Any:
    if _is_model(annotation):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _knowledge_files(
    source: Source, parsed: dict[str, _Parsed], problems: list[Problem]
) -> dict[str, dict[str, str]]:
    webui = parsed.get("openwebui")
    if webui is None:
        return {}
    spec: OpenWebUISpec = webui.model  # type: ignore[assignment]
    result: dict[str, dict[str, str]] = {}
    counted = 0
    for index, base in enumerate(spec.knowledge):
        prefix = f"knowledge/{base.name}"
        try:
            files = source.documents(prefix, MAX_KNOWLEDGE_FILE, MAX_DOCUMENTS - counted)
        except Unreadable as exc:
            problems.append(
                webui.problem(("knowledge", index, "name"), f"{exc.path} {exc.message}", exc.hint)
            )
            result[base.name] = {}
            continue
        counted += len(files)
        if not files:
            problems.append(
                webui.problem(
                    ("knowledge", index, "name"),
                    f"the folder {prefix}/ has no documents",
                    f"add documents under {prefix}/ or remove this knowledge base",
                )
            )
        result[base.name] = files
    return result


def _cross_checks(parsed: dict[str, _Parsed], knowledge: dict[str, dict[str, str]]) -> list[Problem]:
    ollama = parsed["ollama"]
    problems = _model_checks(ollama)
    webui = parsed.get("openwebui")
    if webui is not None:
        problems += _webui_checks(webui, ollama.model)  # type: ignore[arg-type]
    checks = port_and_volume_checks(
        _spec(parsed, "server", ServerSpec),
        _spec(parsed, "ollama", OllamaSpec),
        _spec(parsed, "openwebui", OpenWebUISpec) if webui else None,
    )
    for section, path, message, hint in checks:
        problems.append(parsed[section].problem(path, message, hint))
    return problems


def _secret_checks(parsed: dict[str, _Parsed], policy: SecretPolicy) -> list[Problem]:
    webui = parsed.get("openwebui")
    problems = []
    uses = secret_uses(
        _spec(parsed, "ollama", OllamaSpec),
        _spec(parsed, "openwebui", OpenWebUISpec) if webui else None,
        _spec(parsed, "server", ServerSpec),
    )
    for use in uses:
        why = use_refusal(policy, use)
        if why is not None:
            section = {OLLAMA_FILE: "ollama", SERVER_FILE: "server"}.get(use.file, "openwebui")
            problems.append(parsed[section].problem(use.path, *why))
    return problems


def _model_checks(ollama: _Parsed) -> list[Problem]:
    spec: OllamaSpec = ollama.model  # type: ignore[assignment]
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for section in ("models", "derived"):
        for index, entry in enumerate(getattr(spec, section)):
            key = canonical(entry.name)
            if key in seen:
                first = ollama.doc.position_of(_first_path(spec, key)).line
                problems.append(
                    ollama.problem(
                        (section, index, "name"),
                        f"this model is listed twice (first on line {first})",
                        "keep one entry",
                    )
                )
            seen.setdefault(key, index)
    local = {canonical(m.name) for m in spec.models}
    for index, derived in enumerate(spec.derived):
        if canonical(derived.from_) not in local:
            problems.append(
                ollama.problem(
                    ("derived", index, "from"),
                    "this base model is not listed under models",
                    "add it to models so it is pulled first",
                )
            )
    problems += _shared_weights_checks(ollama, spec)
    problems += _parameter_version_checks(ollama, spec)
    problems += _benchmark_checks(ollama, spec)
    limit = spec.container.env.OLLAMA_MAX_LOADED_MODELS
    groups = pinned_groups(spec)
    if limit and len(groups) > limit:
        listing = ", ".join(" + ".join(shown(m.name) for m in group) for group in groups.values())
        problems.append(
            ollama.problem(
                ("container", "env", "OLLAMA_MAX_LOADED_MODELS"),
                f"{len(groups)} loaded copies are pinned (keep_loaded; a derived model pinned with "
                f"its base is one copy) but at most {limit} may be loaded: {listing}",
                "raise the limit or unpin a model",
            )
        )
    hosts = [r.host for r in spec.registries]
    for index, host in enumerate(hosts):
        if host in hosts[:index] or host == DEFAULT_HOST:
            problems.append(
                ollama.problem(
                    ("registries", index, "host"),
                    "this registry is declared twice or is the default",
                    "keep one entry",
                )
            )
    return problems


def _benchmark_checks(ollama: _Parsed, spec: OllamaSpec) -> list[Problem]:
    """benchmarks.models are desired models; candidates compare a model listed under models
    with other tags."""
    bench = spec.benchmarks
    desired = {canonical(m.name) for m in spec.all_models()}
    listed = {canonical(m.name) for m in spec.models}
    problems = [
        ollama.problem(
            ("benchmarks", "models", index),
            "this model is not listed under models or derived",
            "benchmark desired models (`reconciler bench MODEL` measures any present model once)",
        )
        for index, name in enumerate(bench.models)
        if canonical(name) not in desired
    ]
    for model, others in bench.candidates.items():
        if canonical(model) not in listed:
            problems.append(
                ollama.problem(
                    ("benchmarks", "candidates", model),
                    "candidates are listed for a model that is not under models",
                    "name the desired model whose quantization they replace",
                )
            )
        for index, other in enumerate(others):
            if canonical(other) == canonical(model):
                problems.append(
                    ollama.problem(
                        ("benchmarks", "candidates", model, index),
                        "a model is not its own candidate",
                        "list the other quantizations only",
                    )
                )
    return problems


def pinned_groups(spec: OllamaSpec) -> dict[str, list[ModelSpec | DerivedModel]]:
    """Pinned models by the weights they load: a derived model shares its base's (Ollama keeps
    one loaded copy per weights file, server/sched.go)."""
    listed = {canonical(m.name) for m in spec.models}
    groups: dict[str, list[ModelSpec | DerivedModel]] = {}
    for m in spec.all_models():
        key = canonical(m.from_ if isinstance(m, DerivedModel) else m.name)
        if m.keep_loaded and key in listed:  # a derived model on an unlisted base has its own error
            groups.setdefault(key, []).append(m)
    return groups


def runner_view(m: ModelSpec | DerivedModel, base: ModelSpec | None) -> dict[str, object]:
    """The runner options a pinned model is loaded with (what Ollama compares to reload)."""
    if isinstance(m, ModelSpec):
        return {"num_ctx": m.num_ctx}
    view: dict[str, object] = {"num_ctx": base.num_ctx if base else None}
    view.update(m.parameters.runner())
    return view


def _shared_weights_checks(ollama: _Parsed, spec: OllamaSpec) -> list[Problem]:
    """Pinned models on one weights file are one runner: loaded with other runner options
    they would reload each other on every pass."""
    bases = {canonical(m.name): m for m in spec.models}
    problems: list[Problem] = []
    for key, group in pinned_groups(spec).items():
        if len(group) < 2:
            continue
        first = group[0]
        want = runner_view(first, bases.get(key))
        for m in group[1:]:
            got = runner_view(m, bases.get(key))
            if got == want:
                continue
            index = spec.derived.index(m) if isinstance(m, DerivedModel) else spec.models.index(m)
            section = "derived" if isinstance(m, DerivedModel) else "models"
            path: Path = (section, index, "parameters") if section == "derived" else (section, index)
            differ = ", ".join(
                f"{k} {got.get(k)} vs {want.get(k)}"
                for k in sorted(set(got) | set(want))
                if got.get(k) != want.get(k)
            )
            problems.append(
                ollama.problem(
                    path,
                    f"{shown(m.name)} and {shown(first.name)} share one weights file, so Ollama keeps "
                    f"one loaded copy for both; pinned with other runner options ({differ}) they would "
                    "reload each other on every pass",
                    f"give {shown(m.name)} the same num_ctx (and num_batch, num_gpu, ...) as "
                    f"{shown(first.name)}, or pin only one of them",
                )
            )
    return problems


def _parameter_version_checks(ollama: _Parsed, spec: OllamaSpec) -> list[Problem]:
    """Options the pinned Ollama version does not take: it would ignore them with a warning."""
    version = image_version(spec.container.image)
    if version is None:
        return []
    problems: list[Problem] = []
    for index, d in enumerate(spec.derived):
        for name in d.parameters.as_options():
            if name in PARAMETERS_UNTIL_0_7 and version >= (0, 7, 0):
                why = "was removed in Ollama 0.7.0"
            elif name in PARAMETERS_FROM_0_30 and version < (0, 30, 0):
                why = "exists only from Ollama 0.30.0"
            else:
                continue
            problems.append(
                ollama.problem(
                    ("derived", index, "parameters", name),
                    f"{name} {why}; the image {shown(spec.container.image)} would ignore it",
                    "remove it, or pin an Ollama image that takes it",
                )
            )
    return problems


def _first_path(spec: OllamaSpec, key: str) -> Path:
    for section in ("models", "derived"):
        for index, entry in enumerate(getattr(spec, section)):
            if canonical(entry.name) == key:
                return (section, index, "name")
    return ()


def _model_uses(spec: OpenWebUISpec) -> list[tuple[Path, str]]:
    """Every place openwebui.yaml names a model, with the model it names."""
    uses: list[tuple[Path, str]] = [(("default_models", i), n) for i, n in enumerate(spec.default_models)]
    if spec.task_model:
        uses.append((("task_model",), spec.task_model))
    uses += [(("presets", i, "base"), p.base) for i, p in enumerate(spec.presets)]
    if spec.rag.embedding_engine == "ollama" and spec.knowledge:
        uses.append((("rag", "embedding_model"), spec.rag.embedding_model))
    return uses


def _known_model(name: str, local: set[str], clouds: set[str]) -> bool:
    head, _, rest = name.partition("/")
    if head in clouds and rest:
        return True
    try:
        return canonical(name) in local
    except ValueError:
        return False


def _duplicates(webui: _Parsed, spec: OpenWebUISpec) -> list[Problem]:
    problems = []
    for field, items in (
        ("presets", [p.id for p in spec.presets]),
        ("knowledge", [k.name for k in spec.knowledge]),
        ("cloud", [c.name for c in spec.cloud]),
    ):
        key = "id" if field == "presets" else "name"
        problems += [
            webui.problem((field, index, key), f"this {key} is declared twice", "keep one")
            for index, item in enumerate(items)
            if item in items[:index]
        ]
    return problems


def _webui_checks(webui: _Parsed, ollama: OllamaSpec) -> list[Problem]:
    spec: OpenWebUISpec = webui.model  # type: ignore[assignment]
    local = {canonical(m.name) for m in ollama.all_models()}
    clouds = {c.name for c in spec.cloud}
    bases = {k.name for k in spec.knowledge}
    problems = [
        webui.problem(
            path,
            "this model is neither in ollama.yaml nor a cloud model `<endpoint>/<model>`",
            "add it to ollama.yaml models, or name a cloud endpoint",
        )
        for path, name in _model_uses(spec)
        if not _known_model(name, local, clouds)
    ]
    problems += [
        webui.problem(
            ("presets", index, "knowledge", k_index),
            "this knowledge base is not declared",
            "add it under `knowledge`",
        )
        for index, preset in enumerate(spec.presets)
        for k_index, base in enumerate(preset.knowledge)
        if base not in bases
    ]
    return problems + _duplicates(webui, spec)
