"""A push storm with concurrent readers, and a corrupted state directory."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from reconciler.report.readiness import EXIT_NOT_READY
from tests.e2e.gitops import GitOps, dump_state, git
from tests.faults.support import KiB, assert_converged

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
CLI = [sys.executable, "-m", "reconciler.cli"]


def _readers(ops: GitOps, stop: threading.Event, failures: list[str], counts: dict[str, int]) -> None:
    state = ["--state-dir", str(ops.state_dir)]
    commands = {
        "status": [*CLI, "status", "--json", *state],
        "logs": [*CLI, "logs", "--json", "-n", "20", *state],
    }
    while not stop.is_set():
        for name, cmd in commands.items():
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
            counts[name] = counts.get(name, 0) + 1
            if out.returncode != 0 or "Traceback" in out.stderr:
                failures.append(f"{name}: rc {out.returncode}: {out.stderr[-500:]}")
                continue
            try:
                if name == "status":
                    json.loads(out.stdout)
                else:
                    [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
            except ValueError as exc:
                failures.append(f"{name}: unparsable output ({exc})")


def test_a_push_storm_with_concurrent_readers_ends_on_the_newest_commit(
    gitops: GitOps, survived: dict[str, Any]
) -> None:
    model = gitops.stack.registry.push_model("storm", "t", size_bytes=64 * KiB, seed="storm")
    gitops.stack.set_models(model.name)
    gitops.commit("model", dump_state(gitops))
    gitops.start_serve()
    gitops.push(timeout=0)
    gitops.wait_event(lambda e: e["event"] == "reconcile.done" and e.get("result") == "converged", timeout=60)
    start = len(gitops.events())
    # 100 commits made beforehand: pushes 1, 50 and 100 are real `git push`es through the hooks,
    # the other 97 are the ref updates that ending pushes make.
    shas = [gitops.commit(f"storm {i}", {"notes.md": f"change {i}\n"}) for i in range(100)]
    git("push", "-q", "origin", "HEAD:refs/staging/storm", cwd=gitops.work)  # objects only
    real = {0, 49, 99}
    stop, failures, counts = threading.Event(), [], {}  # type: ignore[var-annotated]
    readers = [threading.Thread(target=_readers, args=(gitops, stop, failures, counts))]
    for reader in readers:
        reader.start()
    t0 = time.monotonic()
    try:
        for i, sha in enumerate(shas):
            if i in real:
                push = git("push", "origin", f"{sha}:refs/heads/main", cwd=gitops.work, check=False,
                           env={"RECONCILER_PUSH_TIMEOUT": "0"})  # fmt: skip
                assert push.returncode == 0, push.stderr
            else:
                git("update-ref", "refs/heads/main", sha, cwd=gitops.bare)
            time.sleep(max(0.0, t0 + i * 0.07 - time.monotonic()))
        elapsed = time.monotonic() - t0
        final = shas[-1]
        assert_converged(gitops, final, [model.name], timeout=60)
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=120)
    assert not failures, failures[:3]
    assert counts.get("status", 0) >= 4 and counts.get("logs", 0) >= 4, counts
    time.sleep(1.5)
    starts = [e for e in gitops.events()[start:] if e["event"] == "reconcile.start"]
    # ≈ one per coalescing window (serve's 1 s min_interval), not one per push; a loaded machine
    # stretches the storm, and the windows with it (never a bound on the machine's speed)
    assert len(starts) <= max(16, int(elapsed) + 6), (len(starts), elapsed)
    survived["faults"] = len(shas)
    survived["detail"] = {"pushes": len(shas), "seconds": round(elapsed, 1), "reconciles": len(starts),
                          "reader_calls": sum(counts.values())}  # fmt: skip


CORRUPTIONS: dict[str, bytes] = {
    "empty": b"",
    "truncated": b'{"inventory": [{"name": "x", "pul',
    "garbage": b"\x00\xff\xfe garbage \x89PNG\r\n",
    "wrong shape": b'["not", "an", "object"]',
    "wrong types": b'{"inventory": 5, "conditions": "yes", "action": 7, "models": {}}',
}
STATE_FILES = ("memory.json", "status.json", "journal.json")


def test_a_corrupted_state_directory_is_rebuilt_and_never_crashes_a_command(
    gitops: GitOps, survived: dict[str, Any]
) -> None:
    model = gitops.stack.registry.push_model("state-corrupt", "t", size_bytes=64 * KiB, seed="sc")
    gitops.stack.set_models(model.name)
    sha = gitops.commit("model", dump_state(gitops))
    gitops.start_serve()
    gitops.push(timeout=0)
    assert_converged(gitops, sha, [model.name])
    gitops.stop_serve()
    state = ["--state-dir", str(gitops.state_dir)]
    log = gitops.state_dir / "events.jsonl"
    faults = 0
    for label, data in CORRUPTIONS.items():
        for name in STATE_FILES:
            (gitops.state_dir / name).write_bytes(data)
        with log.open("ab") as fh:  # a torn last line, then garbage
            fh.write(b'{"event": "pull.progress", "model": "x", "perc' + b"\n" + data + b"\n")
        faults += len(STATE_FILES) + 1
        for cmd in (["status"], ["status", "--json"], ["logs"], ["logs", "--json"]):
            out = subprocess.run(
                [*CLI, *cmd, *state], capture_output=True, text=True, timeout=60, check=False
            )
            # `status` exits 1 while not Ready (its documented code, never a crash); `logs` 0
            wanted = (0, EXIT_NOT_READY) if cmd[0] == "status" else (0,)
            assert out.returncode in wanted and "Traceback" not in out.stderr, (
                label,
                cmd,
                out.stderr[-1500:],
            )
    applied = subprocess.run(
        [*CLI, "apply", "--repo", str(gitops.bare), *state], capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert applied.returncode == 0 and "Traceback" not in applied.stderr, applied.stderr[-1500:]
    for name in STATE_FILES:
        (gitops.state_dir / name).write_bytes(CORRUPTIONS["truncated"])
    gitops.start_serve()
    assert_converged(gitops, sha, [model.name])
    assert gitops.proc is not None and gitops.proc.poll() is None
    survived["faults"] = faults + len(STATE_FILES)
