"""The Ollama side failing: its container killed or removed mid-pull, its API answering 500s
or hanging. Every call has a timeout, the reconciler never hangs, the status says why, and
the server converges once the fault clears."""

from __future__ import annotations

import threading
import time
from typing import Any

import docker.errors
import pytest

from reconciler.loop.queue import Trigger
from reconciler.loop.serve import ServeConfig, Server
from reconciler.reconcile import ReconcileReport
from reconciler.report.eventlog import EventLog, log_path
from reconciler.report.events import EventBus
from tests.e2e.gitops import GitOps, dump_state
from tests.faults.support import (
    KiB,
    assert_converged,
    clear_faults,
    fault,
    full_downloads,
    read_status,
    tags,
)

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


def test_the_ollama_container_killed_then_removed_mid_pull_converges_and_resumes(
    gitops: GitOps, survived: dict[str, Any]
) -> None:
    stack = gitops.stack
    a = stack.registry.push_model("fault-kill", "t", size_bytes=1024 * KiB, seed="fk")
    b = stack.registry.push_model("fault-rm", "t", size_bytes=1024 * KiB, seed="fr")
    stack.ollama["container"]["env"]["extra"]["FAKE_OLLAMA_PULL_RATE"] = str(768 * KiB)
    gitops.start_serve()
    for model, how in ((a, "kill"), (b, "remove")):
        stack.ollama["models"] = [*stack.ollama["models"], {"name": model.name}]
        sha = gitops.commit(f"add {model.name}", dump_state(gitops))
        start = len(gitops.events())
        gitops.push(timeout=0)
        gitops.wait_event(
            lambda e, m=model.name: e["event"] == "pull.progress" and e.get("model") == m
            and 20 <= e.get("percent", 0) < 90, after=start, timeout=60,
        )  # fmt: skip
        container = stack.container()
        if how == "kill":
            container.kill()
        else:
            container.remove(force=True)
        assert_converged(gitops, sha, [m["name"] for m in stack.ollama["models"]], timeout=90)
        assert full_downloads(stack, model.digests)[model.model_layer.digest] == 1  # resumed, not restarted
    failed = [e for e in gitops.events() if e["event"] == "action.failed"]
    assert failed, "the interrupted pull was not reported"
    survived["faults"] = 2


def _server(ops: GitOps) -> Server:
    runtime = ops.stack.runtime
    runtime.api_timeout, runtime.pull_timeout = 1.0, 2.0
    bus = EventBus(EventLog(log_path(ops.state_dir)), ops.stack.recorder)
    return Server(ServeConfig(repo=ops.bare), runtime, bus)


def _bounded(server: Server, seconds: float) -> ReconcileReport | None:
    """One reconcile in a thread that must finish within `seconds`."""
    box: dict[str, ReconcileReport | None] = {}
    once = {Trigger("sighup")}
    worker = threading.Thread(target=lambda: box.update(r=server.reconcile_once(once)), daemon=True)
    began = time.monotonic()
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"the reconcile hung for more than {seconds} s"
    assert time.monotonic() - began < seconds
    return box.get("r")


def test_ollama_api_500s_and_hangs_time_out_fail_with_a_reason_and_then_converge(
    gitops: GitOps, survived: dict[str, Any]
) -> None:
    stack = gitops.stack
    a = stack.registry.push_model("fault-api-a", "t", size_bytes=128 * KiB, seed="fa")
    b = stack.registry.push_model("fault-api-b", "t", size_bytes=128 * KiB, seed="fb")
    server = _server(gitops)
    stack.set_models(a.name)
    first = gitops.commit("a", dump_state(gitops))
    gitops.push(timeout=0)
    report = _bounded(server, 60)
    assert report is not None and report.result == "converged", report and report.notes
    stack.set_models(a.name, b.name)
    second = gitops.commit("a and b", dump_state(gitops))
    gitops.push(timeout=0)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"status": 500, "error": "injected: out of memory", "paths": ["/api/*"]}, "does not answer"),
        ({"hang_seconds": 30, "paths": ["/api/*"]}, "does not answer"),
        ({"hang_seconds": 30, "paths": ["/api/pull"], "count": 1}, "did not answer in time"),
        ({"drop": True, "paths": ["/api/pull"], "count": 1}, f"pull {b.name} failed"),
        ({"status": 500, "error": "injected: disk I/O error", "paths": ["/api/pull"]}, "disk I/O error"),
    ]
    for spec, why in cases:
        fault(stack, **spec)
        report = _bounded(server, 20)
        assert report is not None and report.result == "failed", (spec, report and report.result)
        status = read_status(gitops)
        assert why in (status["last_error"] or ""), (spec, status["last_error"])
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["status"] is False and status["last_applied_revision"] == first
        clear_faults(stack)
    report = _bounded(server, 60)
    assert report is not None and report.result == "converged", report and report.notes
    assert {a.name, b.name} <= tags(stack)
    assert read_status(gitops)["last_applied_revision"] == second
    survived["faults"] = len(cases)


def test_the_reconciler_never_crashes_when_docker_inspect_fails(gitops: GitOps) -> None:
    """Not dockerd restarted (too risky on a shared engine): the container vanishing between
    observation and action is the engine-side race that matters; a removed container is
    created again."""
    stack = gitops.stack
    server = _server(gitops)
    gitops.push(timeout=0)
    assert (r := _bounded(server, 60)) is not None and r.result == "converged"
    stack.container().remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        stack.container()
    assert (r := _bounded(server, 60)) is not None and r.result == "converged"
    assert_converged(gitops, gitops.head(), [])
