"""Start-up: each command imports only what it needs (issue 19 item 9; bench/noop.py times it).

Each case runs the command in a fresh interpreter and lists the heavy modules it imported."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

from reconciler.http import _trusts_nothing

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("docker", "ollama", "httpx", "git", "pydantic", "ruamel", "rich", "structlog", "reconciler.apply")

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
    code = PROBE.format(heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", code, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=60
    )
    return set(json.loads(result.stderr.strip().splitlines()[-1]))


def test_validate_reads_files_and_never_imports_the_clients() -> None:
    modules = imported("validate", "desired_state")
    assert {"pydantic", "ruamel"} <= modules  # the loader runs
    assert not modules & {"docker", "ollama", "httpx", "git", "reconciler.apply", "rich", "structlog"}


def test_post_receive_without_serve_imports_neither_the_loader_nor_the_clients(tmp_path: Path) -> None:
    repo = tmp_path / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    update = f"{'0' * 40} {'a' * 40} refs/heads/main\n"
    args = ("hook", "post-receive", "--repo", str(repo), "--state-dir", str(tmp_path / "state"))
    assert imported(*args, stdin=update) == set()


def test_the_reconcile_imports_the_executors_only_when_there_is_something_to_do() -> None:
    code = (
        "import sys, reconciler.reconcile; print(any(m.startswith('reconciler.apply') for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "False"


def test_the_context_of_a_plain_http_client_verifies_and_trusts_no_certificate() -> None:
    context = _trusts_nothing()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0  # an HTTPS peer could never be trusted
