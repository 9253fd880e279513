"""The example desired state (desired_state/server.yaml and ollama.yaml, as shipped) converging
on the real engine and staying converged: Llama3 pinned with a derived model on its weights,
nomic-embed-text pinned for RAG, the other models on disk. Only what ties it to this machine
changes: the registry the models come from (stand-ins with the real models' architecture),
the container's name, volume, network, port and image, no GPU passthrough, and no LAN
address (the example's is not this machine's)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from tests.e2e.stack import EXAMPLE, Stack, example_on, stand_in

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


def test_the_example_status_with_one_update_available_and_one_applied(stack: Stack) -> None:
    """phi3:mini (`auto`) and llama3 (the example's global `notify`) are re-published upstream:
    inside the example's window phi3 is updated (its old digest kept for rollback), llama3 is
    only reported. The status printed here is the one the README shows."""
    from io import StringIO

    from rich.console import Console

    from reconciler.desired.load import load_desired
    from reconciler.desired.refs import canonical
    from reconciler.desired.source import DirSource
    from reconciler.reconcile import write_status
    from reconciler.report.text import print_status

    names = example_on(stack, window="12:00-13:00")  # no benchmark at these hours
    day = datetime.now().astimezone().replace(hour=4, minute=0, second=0, microsecond=0)
    assert stack.apply(at=day.astimezone(UTC)).result == "converged"
    for name in ("phi3:mini", "llama3:8b-instruct-q4_K_M"):
        stand_in(stack, name, version="-republished")
    report = stack.apply(at=(day + timedelta(days=1, minutes=30)).astimezone(UTC))
    assert report.result == "converged", report.notes
    status = write_status(
        stack.state.root, result="converged", head="5e1f0c2a9b7d", memory=stack.state.load(),
        desired=load_desired(DirSource(stack.repo)), report=report,
    )  # fmt: skip
    rows = {m.name: m for m in status.models}
    phi3, llama3 = rows[canonical(names["phi3:mini"])], rows[canonical(names["llama3:8b-instruct-q4_K_M"])]
    assert [a.kind for a in report.plans[0].actions] == ["update"]  # phi3 only: llama3 is `notify`
    assert phi3.update_state == "current" and phi3.digest == phi3.upstream_digest
    assert phi3.update is not None and phi3.update.startswith("updated sha256:")
    assert llama3.update_state == "available" and llama3.update and "update available" in llama3.update
    kept = [m for m in status.models if m.cached and "-sha256-" in m.name]
    assert len(kept) == 1 and kept[0].name.startswith(canonical(names["phi3:mini"]) + "-sha256-")
    out = StringIO()
    print_status(status, 4242, Console(file=out, width=200))
    print(out.getvalue())
