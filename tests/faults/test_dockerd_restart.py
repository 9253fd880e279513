"""The Docker engine restarted in the middle of a reconcile (mid-pull): the interrupted
reconcile fails cleanly, and the next one converges with the pull resumed and nothing lost."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.stack import Stack, apply_until_pulling
from tests.faults.support import full_downloads, volume_containers
from tests.harness.dockerd import restart_dockerd, started_here
from tests.harness.registry import Registry

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.engine_restart]
KiB = 1024


def test_dockerd_restarted_mid_pull(stack: Stack, registry: Registry, survived: dict[str, Any]) -> None:
    if not started_here():
        pytest.skip(
            "the Docker engine was not started by this process (it was already running, or this is "
            "an xdist worker and the controller owns it): not ours to restart; scripts/test.sh "
            "runs this test alone"
        )
    model = stack.registry.push_model("fault-dockerd", "t", size_bytes=2048 * KiB, seed="dockerd")
    stack.ollama["container"]["env"]["extra"]["FAKE_OLLAMA_PULL_RATE"] = str(512 * KiB)
    stack.set_models(model.name)
    proc = apply_until_pulling(stack, 30)
    restart_dockerd()
    assert proc.stdout is not None
    rest = proc.stdout.read()
    assert proc.wait(timeout=120) == 4, rest[-2000:]  # the interrupted reconcile failed, it did not hang
    assert '"action.failed"' in rest
    registry.restart()  # no restart policy: it stays stopped after an engine restart, like any such container
    survived["faults"] = 1

    report = stack.apply()
    assert report.result == "converged", report.notes
    assert model.name in stack.tags()
    assert len(volume_containers(stack)) == 1  # no orphaned container on the models volume
    assert full_downloads(stack, [model.model_layer.digest])[model.model_layer.digest] <= 1  # resumed
