"""The registry down, hanging or serving a corrupted blob; the models disk filling up; pinned
models that no longer fit in VRAM. Each ends converged (or, for VRAM, Degraded with the
numbers and no load/unload loop) with nothing lost."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from reconciler.apply.runner import RunHooks
from reconciler.desired.load import load_desired
from reconciler.desired.source import DirSource
from reconciler.reconcile import reconcile
from reconciler.report.events import EventBus
from tests.e2e.gitops import GitOps, dump_state
from tests.faults.support import KiB, fake_events, read_status, tags
from tests.faults.test_ollama_faults import _bounded, _server

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
MiB = 1024 * KiB


def _registry_answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_registry_down_hanging_and_corrupted_then_restored(gitops: GitOps, survived: dict[str, Any]) -> None:
    stack, registry = gitops.stack, gitops.stack.registry
    model = registry.push_model("fault-reg", "t", size_bytes=256 * KiB, seed="freg")
    server = _server(gitops)
    stack.runtime.registry_timeout = 2.0
    gitops.push(timeout=0)
    assert (r := _bounded(server, 60)) is not None and r.result == "converged"
    stack.set_models(model.name)
    sha = gitops.commit("model", dump_state(gitops))
    gitops.push(timeout=0)
    # down: the look-up fails, the plan is refused with the reason, nothing is written
    registry.container.stop(timeout=1)
    try:
        assert (r := _bounded(server, 20)) is not None and r.result == "refused"
        status = read_status(gitops)
        assert "unreachable" in (status["last_error"] or "") and status["last_applied_revision"] != sha
        stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
        assert stalled["status"] is True
    finally:
        registry.container.start()
        deadline = time.monotonic() + 30
        while not _registry_answers(registry.url) and time.monotonic() < deadline:
            time.sleep(0.1)
    # hanging (paused): the look-up times out within registry_timeout
    registry.container.pause()
    try:
        began = time.monotonic()
        assert (r := _bounded(server, 20)) is not None and r.result == "refused"
        assert time.monotonic() - began < 15
        assert "timed out" in (read_status(gitops)["last_error"] or "")
    finally:
        registry.container.unpause()
    # corrupted blob: digest mismatch, blob discarded, retried with growing backoff
    layer = model.model_layer.digest
    registry.corrupt_blob(layer)
    try:
        delays = []
        for _ in range(2):
            assert (r := _bounded(server, 30)) is not None and r.result == "failed"
            error = read_status(gitops)["last_error"] or ""
            assert "digest mismatch" in error, error
            delays.append(server.backoff.failures)
        assert delays == [1, 2]  # each failure lengthens the next wait
        assert any(e["type"] == "digest_mismatch" for e in fake_events(stack))
        blobs = _volume(stack) / "models" / "blobs"
        assert not (blobs / layer.replace(":", "-")).exists()  # the bad blob was discarded
        retries = [e for e in gitops.events() if e["event"] == "retry.scheduled"]
        assert len(retries) >= 2
    finally:
        registry.blob_data_path(layer).write_bytes(model.gguf)  # restored (as a re-push would)
    assert (r := _bounded(server, 60)) is not None and r.result == "converged", r and r.notes
    assert model.name in tags(stack) and read_status(gitops)["last_applied_revision"] == sha
    survived["faults"] = 3


def _volume(stack: Any) -> Path:
    return Path(stack.client.volumes.get(stack.volume).attrs["Mountpoint"])


def _tmpfs_volume(stack: Any, size: str) -> None:
    stack.client.volumes.create(
        stack.volume, driver_opts={"type": "tmpfs", "device": "tmpfs", "o": f"size={size}"},
        labels={"reconciler.test": "1"},
    )  # fmt: skip


def test_a_full_disk_is_refused_before_writing_and_enospc_mid_pull_is_reported_then_resumed(
    stack: Any, survived: dict[str, Any]
) -> None:
    _tmpfs_volume(stack, "4m")
    big = stack.registry.push_model("fault-disk-big", "t", size_bytes=3 * MiB + 512 * KiB, seed="fdb")
    small = stack.registry.push_model("fault-disk-small", "t", size_bytes=1536 * KiB, seed="fds")
    stack.server["budgets"]["disk"] = {"models": "1GiB", "min_free": "1MiB"}
    stack.set_models()
    assert stack.apply().result == "converged"  # the container runs: the tmpfs is mounted
    # 1. the plan refuses before a byte is written
    stack.set_models(big.name)
    report = stack.apply()
    assert report.result == "refused"
    text = " ".join(v.message for v in report.plans[-1].violations)
    assert "would leave" in text and "minimum 1.0 MiB" in text, text
    assert not [e for e in fake_events(stack) if e["type"] == "download"]
    # 2. the budget allows, the disk does not: another writer fills it after the plan
    stack.server["budgets"]["disk"] = {"models": "1GiB", "min_free": 0}
    stack.set_models(small.name)
    filler = _volume(stack) / "filler"

    def fill(action: Any) -> None:
        if action.kind == "pull" and not filler.exists():
            filler.write_bytes(b"\0" * (3 * MiB))

    desired = load_desired(DirSource(stack.repo, revision="enospc"))
    stack.recorder.events.clear()
    report = reconcile(desired, stack.runtime, EventBus(stack.recorder), hooks=RunHooks(before=fill))
    assert report.result == "failed"
    errors = [str(error) for o in report.outcomes for _, error in o.failed]
    assert any("No space left on device" in e for e in errors), errors
    assert not report.stalled  # a full disk is temporary: serve retries once space is freed
    filler.unlink()  # the other writer goes away
    assert stack.apply().result == "converged"
    blobs = os.listdir(_volume(stack) / "models" / "blobs")
    assert not [b for b in blobs if "-partial" in b], blobs  # nothing left holding space
    assert small.name in stack.tags()
    survived["faults"] = 2


def test_pinned_models_pushed_out_of_vram_are_degraded_with_numbers_not_thrashed(
    gitops: GitOps, survived: dict[str, Any]
) -> None:
    stack = gitops.stack
    pinned = stack.registry.push_model("fault-vram-pin", "t", size_bytes=512 * KiB, seed="fvp")
    hog = stack.registry.push_model("fault-vram-hog", "t", size_bytes=1300 * KiB, seed="fvh")
    stack.set_models({"name": pinned.name, "keep_loaded": True, "num_ctx": 256}, hog.name)
    server = _server(gitops)
    gitops.commit("pin", dump_state(gitops))
    gitops.push(timeout=0)
    assert (r := _bounded(server, 60)) is not None and r.result == "converged", r and r.notes
    people = ollama.Client(host=stack.url, timeout=10)
    loads: list[int] = []
    for _ in range(6):  # someone keeps chatting with the big model, which evicts the pinned one
        people.generate(model=hog.name, keep_alive="5m")
        assert pinned.name not in stack.loaded()
        before = len([e for e in fake_events(stack) if e["type"] == "load" and e.get("model") == pinned.name])
        _bounded(server, 30)
        after = len([e for e in fake_events(stack) if e["type"] == "load" and e.get("model") == pinned.name])
        loads.append(after - before)
    assert sum(loads) <= 3 and loads[-3:] == [0, 0, 0], loads  # stopped re-warming: no loop
    status = read_status(gitops)
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] is True and "evicted 3 times" in degraded["message"], degraded
    assert hog.name in degraded["message"]
    assert status["vram"]["pinned_estimate"] and status["vram"]["loaded_vram"] is not None
    assert {pinned.name, hog.name} <= tags(stack)  # nothing lost
    survived["faults"] = 6
    with contextlib.suppress(Exception):
        people._client.close()
