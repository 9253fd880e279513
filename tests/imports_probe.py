"""Which heavy modules a command imports, run in a fresh interpreter as a user or a hook runs
it (shared by tests/unit/test_startup_imports.py and the no-op `apply` of tests/e2e/test_apply.py;
bench/noop.py times the same commands)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Third-party packages, and the reconciler's own heavy layers, by their top two names.
HEAVY = (
    "docker",
    "ollama",
    "httpx",
    "git",
    "pydantic",
    "ruamel",
    "rich",
    "structlog",
    "cryptography",
    "apprise",
    "matplotlib",
    "reconciler.apply",
    "reconciler.plan",
    "reconciler.analytics",
)

PROBE = """
import json, sys
from reconciler.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
heavy = {heavy!r}
print(json.dumps(sorted({{m.split(".")[0] if not m.startswith("reconciler") else ".".join(m.split(".")[:2])
                         for m in sys.modules if m.startswith(heavy)}})), file=sys.stderr)
"""


def imported(*args: str, stdin: str = "", cwd: Path = ROOT) -> set[str]:
    """The HEAVY packages `reconciler ARGS…` imported (the command runs to its end)."""
    return probe(*args, stdin=stdin, cwd=cwd)[0]


def probe(*args: str, stdin: str = "", cwd: Path = ROOT) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """`reconciler ARGS…` run to its end: the HEAVY packages it imported, and the process (its
    stdout is the command's; its exit code is 0 whatever the command's)."""
    code = PROBE.format(heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", code, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=120
    )
    return set(json.loads(result.stderr.strip().splitlines()[-1])), result


def modules_after(code: str) -> set[str]:
    """Every module in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60, check=True
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))
