"""scripts/test.sh's xdist scheduling (tests/harness/xdist_groups.py): the tests that hold the
machine alone run on one worker, one after another; the others spread over both."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.harness.xdist_groups import SERIAL_GROUP, SERIAL_PATHS, scope_of

ROOT = Path(__file__).resolve().parents[2]
TEST = "import pytest\n\n@pytest.mark.parametrize('n', range({n}))\ndef test_{kind}(n: int) -> None: pass\n"
SERIAL, FREE = TEST.format(n=4, kind="serial"), TEST.format(n=8, kind="free")


def test_serial_tests_run_on_one_worker_and_the_others_on_both(tmp_path: Path) -> None:
    for path, text in (("tests/faults/test_f.py", SERIAL), ("tests/e2e/test_fullstack.py", SERIAL),
                       ("tests/unit/test_u.py", FREE)):  # fmt: skip
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-n", "2", "-p", "no:randomly", "-p", "no:cacheprovider",
         "-p", "tests.harness.xdist_groups", "tests"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ran = re.findall(r"\[(gw\d)\] .*PASSED (\S+)::test_(serial|free)\[\d\]", done.stdout)
    assert len(ran) == 16, done.stdout[-3000:]
    assert len({worker for worker, _, kind in ran if kind == "serial"}) == 1, ran
    assert len({worker for worker, _, kind in ran if kind == "free"}) == 2, ran


def test_the_modules_that_hold_the_machine_are_all_serial() -> None:
    """Kamal over SSH (the `sshd` fixture), the full stack and the fresh servers."""
    holding = {
        f"tests/e2e/{p.name}"
        for p in (ROOT / "tests" / "e2e").glob("test_*.py")
        if re.search(r"\bsshd\b|mark\.fullstack|full_stack\(|FreshServer", p.read_text())
    }
    assert holding and all(scope_of(f"{m}::test_x") == SERIAL_GROUP for m in holding), holding
    assert scope_of("tests/unit/test_cli.py::test_x") == "tests/unit/test_cli.py::test_x"
    assert all((ROOT / p).exists() for p in SERIAL_PATHS)
