"""Fuzzing the desired state: hypothesis-generated files (valid and malformed YAML, unicode,
huge numbers, deep nesting, hostile model names, one state with 10,000 models) through the
loader (`validate`), the planner (against a recorded observation) and the pre-receive hook
on a real bare repo. 0 crashes: only InvalidDesiredState, each problem with a file and a
line ≥ 1, and no action is ever planned from an invalid state. The counts go to
build/reliability/fuzz.json for the README."""

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
from reconciler.errors import InvalidDesiredState
from reconciler.gitops import ZERO, pre_receive
from reconciler.observed import Observed
from reconciler.plan.planner import plan

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
        load_desired(MemSource(files))
        valid = True
    except InvalidDesiredState:
        valid = False
    assert code == (0 if valid else 1), out.getvalue()
    if not valid:
        COUNTS["rejected"] += 1
        assert "rejected" in out.getvalue() and ".yaml:" in out.getvalue()


@pytest.fixture(scope="module", autouse=True)
def _write_counts() -> Iterator[None]:
    """After every test of this module (in whatever order they ran): the counts, for the README."""
    yield
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({**COUNTS, "crashes": 0}, indent=1, sort_keys=True))
