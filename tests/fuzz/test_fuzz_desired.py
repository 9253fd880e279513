"""Fuzzing the desired state: hypothesis-generated files (valid and malformed YAML, unicode,
huge numbers, deep nesting, hostile model names, one state with 10,000 models) through the
loader (`validate`), the planner (against a recorded observation) and the pre-receive hook
on a real bare repo. 0 crashes: only InvalidDesiredState, each problem with a file and a
line ≥ 1, and no action is ever planned from an invalid state. The counts go to
build/reliability/fuzz.json for the README.

The classes issue 14 found get generators of their own, with an exact oracle: numbers at the
limits written as raw YAML (5,000 digits, `.inf`, `1.0e+400`, `.nan`, hex, non-ASCII digits,
YAML 1.1 words), links, submodules and type changes anywhere in a commit's tree (through the
hook), nesting past the limit (the problem's line and column are where it went too deep),
and flow collections around the node limit (its exact column)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.desired.load import load_desired
from reconciler.desired.schema import DesiredState
from reconciler.desired.source import Unreadable
from reconciler.desired.yamlpos import MAX_DEPTH, MAX_NODES
from reconciler.errors import InvalidDesiredState
from reconciler.gitops import ZERO, pre_receive
from reconciler.observed import Observed
from reconciler.plan.planner import plan
from reconciler.serverconfig import load_policy

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "desired_state"
OBSERVED = Observed.model_validate_json((ROOT / "tests/fixtures/seed_server.observed.json").read_text())
RESULTS = ROOT / "build" / "reliability" / "fuzz.json"
COUNTS: Counter[str] = Counter()
FILES = ("server.yaml", "ollama.yaml", "openwebui.yaml")


class MemSource:
    def __init__(self, files: dict[str, bytes], revision: str | None = "fuzz") -> None:
        self.files, self.revision = files, revision

    def read(self, path: str, limit: int) -> bytes | None:
        data = self.files.get(path)
        if data is not None and len(data) > limit:
            raise Unreadable(path, "is too large")
        return data

    def documents(self, prefix: str, limit: int, max_files: int) -> dict[str, str]:
        base = prefix.rstrip("/") + "/"
        found = {
            p.removeprefix(base): hashlib.sha256(d).hexdigest()
            for p, d in self.files.items()
            if p.startswith(base)
        }
        if len(found) > max_files:
            raise Unreadable(prefix, "holds too many files")
        return dict(sorted(found.items()))


def _seed_files() -> dict[str, bytes]:
    files = {p.relative_to(SEED).as_posix(): p.read_bytes() for p in SEED.rglob("*") if p.is_file()}
    return {k: v for k, v in files.items() if not k.startswith(("schema/", "SCHEMA", "OPENWEBUI"))}


BASE = _seed_files()
BASE_DOCS = {name: yaml.safe_load(BASE[name]) for name in FILES}


def check(files: dict[str, bytes], kind: str) -> DesiredState | None:
    """The oracle: load; on success plan; on failure every problem has a file and a line."""
    COUNTS["inputs"] += 1
    COUNTS[kind] += 1
    desired: DesiredState | None = None
    try:
        desired = load_desired(MemSource(files))
    except InvalidDesiredState as exc:
        COUNTS["rejected"] += 1
        problems = exc.problems
    else:
        problems = []
    if problems or desired is None:
        assert problems
        for problem in problems:
            assert problem.file in FILES or problem.file.startswith("knowledge"), problem
            assert problem.line >= 1 and problem.column >= 1, problem
        return None
    COUNTS["accepted"] += 1
    result = plan(desired, OBSERVED)
    COUNTS["planned"] += 1
    assert result.refused or all(a.reason for a in result.actions)
    return desired


# -- strategies -------------------------------------------------------------------------------
HOSTILE_NAMES = [
    "../../x", "../etc/passwd", "a;rm -rf /", "$(reboot)", "`id`", "http://evil.example/x:1",
    "https://h/x", "na\x00me", "line\nbreak:tag", "x:../../tag", "/abs/path", "a b", "ünïcødé",
    "x" * 600, "registry.test:5000/../../x:t", "-rf", "model:tag:tag", "\u202eevil", "",
]  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(HOSTILE_NAMES), st.sampled_from(["8GiB", "-1GiB", "1e400", "0x10", "∞", "1.5.5MB"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(doc: object, prefix: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _paths(value, (*prefix, index))


def _replace(doc: object, path: tuple[object, ...], value: object) -> object:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _replace(doc[head], rest, value)}
    assert isinstance(doc, list) and isinstance(head, int)
    return [_replace(v, rest, value) if i == head else v for i, v in enumerate(doc)]


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, bytes]:
    """The seed state with one value anywhere replaced by a generated one (often hostile)."""
    name = draw(st.sampled_from(FILES))
    doc = BASE_DOCS[name]
    path = draw(st.sampled_from(list(_paths(doc))))
    new = _replace(doc, path, draw(values))
    text = yaml.safe_dump(new, allow_unicode=True) if draw(st.booleans()) else json.dumps(new, default=str)
    return {**BASE, name: text.encode("utf-8", "surrogatepass")}


@st.composite
def hostile_models(draw: st.DrawFn) -> dict[str, bytes]:
    doc = dict(BASE_DOCS["ollama.yaml"])
    names = draw(
        st.lists(st.sampled_from(HOSTILE_NAMES) | st.text(min_size=1, max_size=30), min_size=1, max_size=4)
    )
    doc["models"] = [*doc.get("models", []), *({"name": n} for n in names)]
    return {**BASE, "ollama.yaml": yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass")}


raw_text = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.integers(1, 400).map(lambda n: "a:\n" + "".join("  " * i + "- \n" for i in range(n))),
    st.integers(1, 400).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 300).map(lambda n: "x: " + "{a: " * n + "1" + "}" * n),
    st.just("a: &x [1]\nb: *x\n"),
    st.just("models: []\nmodels: []\n"),
    st.just("!!python/object/apply:os.system ['id']\n"),
    st.just("x: 1e99999999\nbudgets: {disk: {models: 99999999999999999999999999TiB}}\n"),
)


@st.composite
def malformed(draw: st.DrawFn) -> dict[str, bytes]:
    name = draw(st.sampled_from(FILES))
    return {**BASE, name: draw(raw_text).encode("utf-8", "surrogatepass")}


FUZZ = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@FUZZ
@given(mutated())
def test_mutated_seed_states(files: dict[str, bytes]) -> None:
    check(files, "mutated")


@FUZZ
@given(hostile_models())
def test_hostile_model_names_never_pass_or_crash(files: dict[str, bytes]) -> None:
    desired = check(files, "hostile names")
    if desired is not None:
        for model in desired.ollama.all_models():
            for bad in ("..", ";", "\x00", "\n", "://", " ", "`", "$("):
                assert bad not in model.name, model.name


@FUZZ
@given(malformed())
def test_malformed_yaml(files: dict[str, bytes]) -> None:
    check(files, "malformed")


def test_ten_thousand_models() -> None:
    doc = dict(BASE_DOCS["ollama.yaml"])
    doc["models"] = [{"name": f"registry.example:5000/fuzz/model{i}:q{i % 7}"} for i in range(10_000)]
    desired = check({**BASE, "ollama.yaml": yaml.safe_dump(doc).encode()}, "10k models")
    if desired is not None:
        assert len(desired.ollama.models) == 10_000


# -- the pre-receive hook on a real bare repo --------------------------------------------------
@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-repo")
    repo = root / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    return repo


def _commit(repo: Path, files: dict[str, bytes]) -> str:
    env = {"GIT_DIR": str(repo), "GIT_AUTHOR_NAME": "f", "GIT_AUTHOR_EMAIL": "f@x", "GIT_COMMITTER_NAME": "f",
           "GIT_COMMITTER_EMAIL": "f@x", "PATH": "/usr/bin:/bin"}  # fmt: skip
    entries = []
    for name, data in sorted(files.items()):
        if "/" in name:
            continue  # knowledge documents are not needed by the hook's oracle
        cmd = ["git", "hash-object", "-w", "--stdin"]
        blob = (
            subprocess.run(cmd, input=data, env=env, capture_output=True, check=True).stdout.decode().strip()
        )
        entries.append(f"100644 blob {blob}\t{name}")
    tree = subprocess.run(["git", "mktree"], input="\n".join(entries).encode() + b"\n", env=env,
                          capture_output=True, check=True).stdout.decode().strip()  # fmt: skip
    return subprocess.run(["git", "commit-tree", tree, "-m", "fuzz"], env=env, capture_output=True,
                          check=True).stdout.decode().strip()  # fmt: skip


def _git(env: dict[str, str], *args: str, data: bytes = b"") -> str:
    return (
        subprocess.run(["git", *args], input=data, env=env, capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )


def _mktree(env: dict[str, str], entries: dict[str, tuple[str, str, str]]) -> str:
    """A tree from path → (mode, type, sha), nested folders made on the way."""
    here: dict[str, tuple[str, str, str]] = {}
    below: dict[str, dict[str, tuple[str, str, str]]] = {}
    for path, entry in entries.items():
        head, _, rest = path.partition("/")
        if rest:
            below.setdefault(head, {})[rest] = entry
        else:
            here[head] = entry
    for name, sub in below.items():
        if name not in here:
            here[name] = ("040000", "tree", _mktree(env, sub))
    lines = "".join(f"{mode} {kind} {sha}\t{name}\n" for name, (mode, kind, sha) in sorted(here.items()))
    return _git(env, "mktree", data=lines.encode())


def _commit_tree(repo: Path, files: dict[str, bytes], special: dict[str, str]) -> str:
    """A commit whose tree holds `files` and, at the paths of `special`, a symbolic link, a
    submodule or a folder (replacing whatever was there)."""
    env = {"GIT_DIR": str(repo), "GIT_AUTHOR_NAME": "f", "GIT_AUTHOR_EMAIL": "f@x", "GIT_COMMITTER_NAME": "f",
           "GIT_COMMITTER_EMAIL": "f@x", "PATH": "/usr/bin:/bin"}  # fmt: skip
    entries: dict[str, tuple[str, str, str]] = {}
    for name, data in files.items():
        if not any(name == p or name.startswith(p + "/") for p in special):
            entries[name] = ("100644", "blob", _git(env, "hash-object", "-w", "--stdin", data=data))
    empty = _git(env, "hash-object", "-w", "--stdin", data=b"x\n")
    for path, kind in special.items():
        if kind == "link":
            entries[path] = ("120000", "blob", _git(env, "hash-object", "-w", "--stdin", data=b"/etc/ssh"))
        elif kind == "submodule":
            entries[path] = ("160000", "commit", "1" * 40)
        else:  # a folder where a file is expected
            entries[path + "/inside.md"] = ("100644", "blob", empty)
    return _git(env, "commit-tree", _mktree(env, entries), "-m", "fuzz")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)
@given(st.one_of(mutated(), malformed(), hostile_models()))
def test_pre_receive_agrees_with_the_loader(bare: Path, files: dict[str, bytes]) -> None:
    files = {k: v for k, v in files.items() if "/" not in k}
    files = {k: v for k, v in files.items() if k != "openwebui.yaml"}  # knowledge folders are not in the tree
    sha = _commit(bare, files)
    out = io.StringIO()
    code = pre_receive(bare, "main", io.StringIO(f"{ZERO} {sha} refs/heads/main\n"), out)
    COUNTS["inputs"] += 1
    COUNTS["pre-receive"] += 1
    try:
        load_desired(MemSource(files), secrets=load_policy())
        valid = True
    except InvalidDesiredState:
        valid = False
    assert code == (0 if valid else 1), out.getvalue()
    if not valid:
        COUNTS["rejected"] += 1
        assert "rejected" in out.getvalue() and ".yaml:" in out.getvalue()


# -- the classes issue 14 found ---------------------------------------------------------------
RAW_NUMBERS = ["9" * 5000, "-" + "9" * 31, ".inf", "-.inf", ".nan", ".NaN", "1.0e+400", "-1e999", "0x10",
               "0o17", "١٢GiB", "１２GiB", "1:30", "yes", "no", "on", "off", "y", "~", "null", "1_000", "+12",
               "0b101", "12e3", "2026-01-01", "1.5.5", "'9e400'", "\"0x10\""]  # fmt: skip


REFUSED_FORMS = {
    "9" * 5000,
    "-" + "9" * 31,
    ".inf",
    "-.inf",
    ".nan",
    ".NaN",
    "1.0e+400",
    "-1e999",
    "0x10",
    "0o17",
}


@st.composite
def raw_scalars(draw: st.DrawFn) -> tuple[dict[str, bytes], str, int, str]:
    """The seed with one scalar value replaced by raw YAML text (no quoting by a dumper)."""
    name = draw(st.sampled_from(FILES))
    lines = BASE[name].decode().splitlines()
    candidates = [i for i, line in enumerate(lines) if ": " in line and not line.lstrip().startswith("#")]
    index = draw(st.sampled_from(candidates))
    key = lines[index].split(": ", 1)[0]
    raw = draw(st.sampled_from(RAW_NUMBERS))
    lines[index] = f"{key}: {raw}"
    return {**BASE, name: ("\n".join(lines) + "\n").encode()}, name, index + 1, raw


@FUZZ
@given(raw_scalars())
def test_numbers_and_words_at_the_limits(case: tuple[dict[str, bytes], str, int, str]) -> None:
    """Never a traceback; a number form YAML readers disagree on is refused on its own line."""
    files, name, line, raw = case
    try:
        load_desired(MemSource(files))
    except InvalidDesiredState as exc:
        problems = exc.problems
    else:
        problems = []
    if raw in REFUSED_FORMS:
        assert any(p.file == name and p.line == line for p in problems), (line, problems)
    check(files, "raw numbers")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(st.integers(1, 130), st.booleans())
def test_deep_nesting_names_where_it_went_too_deep(depth: int, flow: bool) -> None:
    if flow:
        text = "x: " + "[" * depth + "]" * depth + "\n"
    else:
        text = "x:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(depth))
    files = {**BASE, "server.yaml": text.encode()}
    check(files, "deep nesting")
    with pytest.raises(InvalidDesiredState) as info:  # `x` is not a field of server.yaml anyway
        load_desired(MemSource(files))
    deep = [p for p in info.value.problems if "nesting deeper" in p.message]
    too_deep = depth + 1 > MAX_DEPTH  # the root mapping is the first level
    assert bool(deep) == too_deep, info.value.problems
    if too_deep:  # where the collection one level too deep begins
        (p,) = deep
        where = (1, 4 + MAX_DEPTH - 1) if flow else (MAX_DEPTH + 1, 2 * MAX_DEPTH + 1)
        assert (p.line, p.column) == where, p


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(st.sampled_from([10, MAX_NODES - 4, MAX_NODES - 3, MAX_NODES - 2, MAX_NODES, 3 * MAX_NODES]))
def test_huge_flow_collections_stop_at_the_node_limit(count: int) -> None:
    text = "x: [" + ",".join(["1"] * count) + "]\n"
    files = {**BASE, "server.yaml": text.encode()}
    check(files, "huge flow")
    with pytest.raises(InvalidDesiredState) as info:  # x is not a field either way
        load_desired(MemSource(files))
    over = [p for p in info.value.problems if "more than 40,000 values" in p.message]
    nodes = 3 + count  # the mapping, the key, the list, its items
    assert bool(over) == (nodes > MAX_NODES)
    if over:
        first_extra = MAX_NODES + 1 - 3  # the item that went over
        assert (over[0].line, over[0].column) == (1, 5 + 2 * (first_extra - 1))


TREE_PATHS = ["knowledge", "knowledge/work", "knowledge/work/gpu-server.md", "server.yaml", "ollama.yaml",
              "openwebui.yaml", "knowledge/work/sub"]  # fmt: skip


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)
@given(
    st.dictionaries(st.sampled_from(TREE_PATHS), st.sampled_from(["link", "submodule", "folder"]), max_size=2)
)
def test_links_submodules_and_type_changes_in_a_commit(bare: Path, special: dict[str, str]) -> None:
    """Any tree entry of the wrong kind: the hook refuses the push with the path and why, never
    a traceback; and a commit with none of them is accepted as the loader accepts it."""
    special = {p: k for p, k in special.items() if not any(p != q and p.startswith(q + "/") for q in special)}
    files = {k: v for k, v in BASE.items()}
    sha = _commit_tree(bare, files, special)
    out = io.StringIO()
    code = pre_receive(bare, "main", io.StringIO(f"{ZERO} {sha} refs/heads/main\n"), out)
    COUNTS["inputs"] += 1
    COUNTS["links and submodules"] += 1
    text = out.getvalue()
    assert "Traceback" not in text and "internal error" not in text, text
    harmful = {p: k for p, k in special.items() if k != "folder" or p in FILES}  # folders of documents: fine
    if harmful:
        COUNTS["rejected"] += 1
        assert code == 1, text
        reason = {"link": "symbolic link", "submodule": "submodule", "folder": "folder"}
        assert any(reason[k] in text for k in harmful.values()), text
    elif not special:
        assert code == 0, text  # (a folder put in place of knowledge/ may leave a base without documents)


@pytest.fixture(scope="module", autouse=True)
def _write_counts() -> Iterator[None]:
    """After every test of this module (in whatever order they ran): the counts, for the README."""
    yield
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({**COUNTS, "crashes": 0}, indent=1, sort_keys=True))
