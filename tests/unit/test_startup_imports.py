"""Start-up: each command imports only what it needs (issue 19 item 9; bench/noop.py times it).

Each case runs the command (or imports a layer) in a fresh interpreter and lists the heavy
modules it imported; the no-op `apply` on a real server is tests/e2e/test_apply.py's."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

from reconciler.http import _trusts_nothing
from tests.imports_probe import imported, modules_after

# Never needed to read files, or to observe and plan a server that is already converged.
NEVER_ON_A_NOOP = {"cryptography", "apprise", "matplotlib", "git", "reconciler.apply"}


def test_validate_reads_files_and_never_imports_the_clients() -> None:
    modules = imported("validate", "desired_state")
    assert {"pydantic", "ruamel"} <= modules  # the loader runs
    clients = {"docker", "ollama", "httpx", "rich", "structlog"}
    assert not modules & {*clients, "reconciler.plan", *NEVER_ON_A_NOOP}


def test_status_reads_the_status_file_and_never_imports_the_clients(tmp_path: Path) -> None:
    modules = imported("status", "--state-dir", str(tmp_path))
    assert not modules & {"docker", "ollama", "httpx", *NEVER_ON_A_NOOP}


def test_post_receive_without_serve_imports_neither_the_loader_nor_the_clients(tmp_path: Path) -> None:
    repo = tmp_path / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    update = f"{'0' * 40} {'a' * 40} refs/heads/main\n"
    args = ("hook", "post-receive", "--repo", str(repo), "--state-dir", str(tmp_path / "state"))
    assert imported(*args, stdin=update) == set()


def test_the_apply_path_imports_no_executor_no_certificate_parser_and_no_advisor() -> None:
    modules = modules_after("import reconciler.cli, reconciler.reconcile, reconciler.runtime")
    assert not {m for m in modules if m.split(".")[0] in NEVER_ON_A_NOOP or m.startswith("reconciler.apply")}
    # a refusal's advice, and the benchmark history (read only with benchmarks.on_change)
    assert not modules & {"reconciler.plan.advise", "reconciler.analytics.history", "sqlite3"}


def test_the_bookkeeping_of_a_converged_reconcile_imports_no_executor() -> None:
    modules = modules_after(
        "from reconciler.reconcile import ReconcileReport, requeue_after_of, result_of\n"
        "report = ReconcileReport(result='converged', revision=None)\n"
        "assert result_of(report) == 'converged' and requeue_after_of(report) is None\n"
        "assert not report.stalled and not report.retrying and report.failures == []"
    )
    assert not {m for m in modules if m.startswith("reconciler.apply")}


def test_the_context_of_a_plain_http_client_verifies_and_trusts_no_certificate() -> None:
    context = _trusts_nothing()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0  # an HTTPS peer could never be trusted
