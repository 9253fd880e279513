"""Each import-linter contract of `.importlinter` fails when the import it forbids is added.

A throwaway module is written into a temporary copy of the package, and `lint-imports` runs
on the copy: a contract that still passed would not hold the shape it names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")

# (contract id, where the throwaway module goes, the import it adds)
CASES = [
    ("pure-plan", "plan", "import os"),
    ("pure-plan", "plan", "import time"),
    ("pure-plan", "plan", "import subprocess"),
    ("pure-plan", "plan", "import reconciler.state.store"),
    ("pure-plan", "plan", "import reconciler.apply.table"),
    ("pure-plan", "plan", "import reconciler.clock"),
    ("readers-never-act", "observe", "import reconciler.apply.kamal"),
    ("observe-never-acts", "observe", "import reconciler.kamal.deploy"),
    ("observe-never-acts", "observe", "import reconciler.state.store"),
    ("layers", "observe", "import reconciler.plan.planner"),
    ("layers", "apply", "import reconciler.reconcile"),
    ("acyclic", "state", "import reconciler.apply.context"),
]


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("contracts")
    shutil.copytree(ROOT / "reconciler", root / "reconciler", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", root / ".importlinter")
    return root


def lint(root: Path, contract: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the copy, before the installed package
    return subprocess.run(
        [str(LINT), "--no-cache", "--no-logo", "--contract", contract],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_copy_keeps_every_contract(copy: Path) -> None:
    result = lint(copy, "pure-plan")
    assert result.returncode == 0, result.stdout
    assert "KEPT" in result.stdout


@pytest.mark.parametrize(("contract", "package", "line"), CASES)
def test_a_forbidden_import_breaks_its_contract(copy: Path, contract: str, package: str, line: str) -> None:
    probe = copy / "reconciler" / package / "_probe.py"
    probe.write_text(f"{line}  # noqa\n")
    try:
        result = lint(copy, contract)
    finally:
        probe.unlink()
    assert result.returncode == 1, result.stdout
    # the forbidden chain names the probe; a cycle is named by the packages it joins
    named = ".state -> .apply" if contract == "acyclic" else f"reconciler.{package}._probe"
    assert "BROKEN" in result.stdout and named in result.stdout, result.stdout
