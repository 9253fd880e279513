"""The example desired state (desired_state/server.yaml and ollama.yaml, as shipped) converging
on the real engine and staying converged: Llama3 pinned with a derived model on its weights,
nomic-embed-text pinned for RAG, the other models on disk. Only what ties it to this machine
changes: the registry the models come from (stand-ins with the real models' architecture),
the container's name, volume, network, port and image, no GPU passthrough, and no LAN
address (the example's is not this machine's)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import yaml

from tests.e2e.stack import EXAMPLE, Stack, example_on

pytestmark = pytest.mark.e2e


def test_the_example_converges_and_ten_resync_passes_change_nothing(stack: Stack) -> None:
    example = yaml.safe_load((EXAMPLE / "ollama.yaml").read_text())
    assert example["container"]["image"] == "ollama/ollama:0.32.15"
    names = example_on(stack)
    report = stack.apply()
    assert report.result == "converged", (report.plans[-1].violations, [o.failed for o in report.outcomes])
    llama3, embed = names["llama3:8b-instruct-q4_K_M"], names["nomic-embed-text"]
    loaded = stack.loaded()
    assert set(loaded) == {llama3, embed}  # llama3-work shares llama3's loaded copy
    assert all(m["expires_at"].startswith("23") for m in loaded.values())
    assert stack.tags() >= set(names.values()) | {"llama3-work:latest"}

    calls = stack.mutating_ollama_calls()
    time.sleep(1.1)  # docker events have one-second resolution: keep the first apply's out
    since = datetime.now(UTC)
    for _ in range(10):
        again = stack.apply()
        assert again.result == "converged" and again.actions_run == 0, again.plans[0].actions
        assert not any(n.kind == "eviction_loop" for n in again.notes)
    assert stack.mutating_ollama_calls() == calls  # zero mutating calls after the first pass
    time.sleep(1.1)
    assert stack.docker_events(since) == []
    assert stack.state.load().evictions == {}
