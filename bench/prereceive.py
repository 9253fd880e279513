"""The pre-receive hook's cost, and the worst file under the size limit.

    .venv/bin/python bench/prereceive.py            # all of it (~2 min on 2 cores)
    .venv/bin/python bench/prereceive.py --quick    # fewer repetitions

Targets (issue 14): the hook's p50 under 1 s for the example and under 5 s with 10,000
knowledge files; any single file under the size limit validated in under 5 s and 300 MB.

Measured side by side in one run:
- the installed hook script run as git runs it (a new process: start-up included), on a bare
  repo made by `reconciler init`, for the example and for the example plus 10,000 documents;
- the reader's one pass over a commit's tree against a lookup from the root for each file
  (what the reader did before), at 1,000 documents, in-process;
- each worst-case file alone in a fresh process (time and peak RSS): a 1 MiB flow list
  (stops at the node limit), a 1 MiB plain scalar, 13,000 models (under the node limit),
  a nesting 64 deep, and a 100 MB file (refused before it is read).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconciler.gitops import ZERO, init_repo  # noqa: E402

SEED = ROOT / "desired_state"
IDENT = ["-c", "user.name=bench", "-c", "user.email=bench@example.lan"]


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *IDENT, *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def repo_with(root: Path, documents: int) -> tuple[Path, str]:
    """A bare repo made by `init` whose branch holds the example plus `documents` files."""
    bare = root / f"repo-{documents}.git"
    init_repo(bare, seed=SEED, state_dir=root / "state")
    work = root / f"work-{documents}"
    git("clone", "-q", str(bare), str(work), cwd=root)
    folder = work / "knowledge" / "work" / "many"
    if documents:
        folder.mkdir()
        for i in range(documents):
            (folder / f"doc{i:05}.md").write_text(f"# note {i}\n\nsomething worth {i} words\n")
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", f"{documents} documents", cwd=work)
    sha = git("rev-parse", "HEAD", cwd=work).strip()
    git("push", "-q", str(bare), "HEAD:refs/heads/bench", cwd=work)  # objects in; main untouched
    return bare, sha


def hook_seconds(bare: Path, sha: str, repeats: int) -> list[float]:
    """The installed pre-receive script as git runs it: in the bare repo, the update of main
    (seeded by init) to `sha` on stdin."""
    hook = bare / "hooks" / "pre-receive"
    old = git("rev-parse", "main", cwd=bare).strip()
    old = ZERO if old == sha else old
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(
            [str(hook)], cwd=bare, input=f"{old} {sha} refs/heads/main\n", capture_output=True, text=True
        )
        times.append(time.perf_counter() - start)
        assert done.returncode == 0, done.stderr
    return times


def per_file_lookups(bare: Path, sha: str) -> float:
    """What the reader did before: a lookup from the root of the tree for every file."""
    import git as gitpython

    repo = gitpython.Repo(bare)
    start = time.perf_counter()
    tree = repo.commit(sha).tree
    paths = [str(item.path) for item in (tree / "knowledge/work").traverse() if item.type == "blob"]
    for path in paths:
        (tree / path).data_stream.read()
    repo.close()
    return time.perf_counter() - start


def one_pass(bare: Path, sha: str) -> float:
    from reconciler.desired.load import load_desired
    from reconciler.desired.source import GitCommitSource

    start = time.perf_counter()
    with GitCommitSource(bare, sha) as source:
        load_desired(source)
    return time.perf_counter() - start


# -- worst-case files, each in a fresh process ---------------------------------------------
def _case_text(name: str) -> str:
    limit = 2**20 - 64
    if name == "flow list, 1 MiB":
        return "x: [" + ",".join(["1"] * (limit // 2)) + "]\n"
    if name == "plain scalar, 1 MiB":
        return "budgets: {disk: {models: 1GiB}}\nx: " + "a" * limit + "\n"
    if name == "13,000 models":
        return "models:\n" + "".join(f"  - name: m{i}:q4\n" for i in range(13_000))
    if name == "nesting 64 deep":
        return "x: " + "[" * 63 + "]" * 63 + "\n"
    raise ValueError(name)


CASES = ["flow list, 1 MiB", "plain scalar, 1 MiB", "13,000 models", "nesting 64 deep", "100 MB file"]


def run_case(name: str) -> None:
    from reconciler.desired.load import load_desired
    from reconciler.desired.source import DirSource
    from reconciler.errors import InvalidDesiredState

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "desired"
        shutil.copytree(SEED, work)
        target = work / ("ollama.yaml" if name == "13,000 models" else "server.yaml")
        if name == "100 MB file":
            with target.open("wb") as fh:
                fh.truncate(100 * 10**6)
        else:
            target.write_text(_case_text(name))
        size = target.stat().st_size
        start = time.perf_counter()
        try:
            load_desired(DirSource(work))
            outcome = "valid"
        except InvalidDesiredState as exc:
            outcome = exc.problems[0].message[:60]
        seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"case": name, "bytes": size, "seconds": seconds, "rss": rss, "outcome": outcome}))


def cases() -> list[dict[str, object]]:
    results = []
    for name in CASES:
        done = subprocess.run(
            [sys.executable, __file__, "--case", name], capture_output=True, text=True, check=True, cwd=ROOT
        )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.case:
        run_case(args.case)
        return
    repeats = 3 if args.quick else 9
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        example, example_sha = repo_with(root, 0)
        many, many_sha = repo_with(root, 10_000 - 3)  # the example has 3: 10,000 in all
        thousand, thousand_sha = repo_with(root, 1_000)
        small = hook_seconds(example, example_sha, repeats)
        large = hook_seconds(many, many_sha, max(3, repeats // 3))
        old = per_file_lookups(thousand, thousand_sha)
        new = one_pass(thousand, thousand_sha)
    print(f"pre-receive hook, the example:            p50 {statistics.median(small):.2f} s "
          f"(min {min(small):.2f}, max {max(small):.2f}, {len(small)} runs)  target < 1 s")  # fmt: skip
    print(f"pre-receive hook, 10,000 documents:       p50 {statistics.median(large):.2f} s "
          f"(min {min(large):.2f}, max {max(large):.2f}, {len(large)} runs)  target < 5 s")  # fmt: skip
    print(f"1,000 documents in-process: one pass {new:.2f} s vs a lookup per file {old:.2f} s "
          f"({old / new:.1f}x)")  # fmt: skip
    print("worst file under the size limit (fresh process each; target < 5 s and 300 MB):")
    for result in cases():
        print(f"  {result['case']:<22} {int(result['bytes']) / 2**20:7.1f} MiB  {result['seconds']:5.2f} s  "  # type: ignore[call-overload]
              f"peak RSS {int(result['rss']) / 2**20:5.0f} MiB  → {result['outcome']}")  # type: ignore[call-overload]  # fmt: skip


if __name__ == "__main__":
    main()
