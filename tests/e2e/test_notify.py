"""Notifications through Apprise to a JSON sink on loopback, driven by `serve`'s reconcile:
a reconcile failing after retries then recovering, and an update available then applied, each
told exactly once; the URL (a secret: it carries a token) appears in no notification, event or
status."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from reconciler.desired.refs import canonical
from reconciler.loop.queue import Trigger
from reconciler.loop.serve import ServeConfig, Server
from reconciler.report.events import EventBus
from tests.e2e.stack import Stack
from tests.harness.notify_sink import NotifySink

pytestmark = pytest.mark.e2e
KiB = 1024
TOKEN = "tok-3f9a1c7e55d2"


@pytest.fixture
def sink() -> Iterator[NotifySink]:
    s = NotifySink()
    try:
        yield s
    finally:
        s.close()


def _commit(stack: Stack) -> None:
    stack.write()
    git = ["git", "-c", "user.name=owner", "-c", "user.email=owner@example.lan", "-C", str(stack.repo)]
    if not (stack.repo / ".git").exists():
        subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "change"], check=True)


def _window(hours_before: int, hours_after: int) -> str:
    from datetime import datetime

    now = datetime.now().astimezone()
    return f"{now - timedelta(hours=hours_before):%H:%M}-{now + timedelta(hours=hours_after):%H:%M}"


def test_failing_then_recovering_and_an_update_are_each_told_once_without_the_secret(
    stack: Stack, sink: NotifySink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "reconciler.toml"
    config.write_text('[secrets]\nenv = ["RCL_NOTIFY_URL"]\n')
    monkeypatch.setenv("RECONCILER_CONFIG", str(config))
    monkeypatch.setenv("RCL_NOTIFY_URL", sink.url(f"hook/{TOKEN}"))
    a = stack.registry.push_model("e2e-nta", "v1", size_bytes=64 * KiB, seed="nta")
    b = stack.registry.push_model("e2e-ntb", "v1", size_bytes=64 * KiB, seed="ntb-old")
    stack.server["notify"] = [{"to": "127.0.0.1", "url": {"env": "RCL_NOTIFY_URL"}}]
    stack.set_models(a.name)
    _commit(stack)
    recorded: list[dict[str, object]] = []
    server = Server(ServeConfig(repo=stack.repo), stack.runtime, EventBus(recorded.append))
    assert server.reconcile_once({Trigger("push")}) is not None
    assert sink.received == []  # a first healthy reconcile is not news

    # The new model's pull fails every time: told once, after the retries, then recovery.
    stack.set_models(a.name, b.name)
    _commit(stack)
    fault = {"status": 500, "error": "disk I/O error", "paths": ["/api/pull"], "count": 100}
    httpx.post(f"{stack.url}/__fake/fault", json=fault, timeout=10).raise_for_status()
    for _ in range(4):
        server.reconcile_once({Trigger("retry")})
    assert sink.titles() == ["reconciler: failing"]
    assert (
        "failed 3 times in a row" in sink.received[0]["message"]
        and "disk I/O error" in sink.received[0]["message"]
    )
    httpx.delete(f"{stack.url}/__fake/fault", timeout=10).raise_for_status()
    head = subprocess.run(["git", "-C", str(stack.repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert server.reconcile_once({Trigger("retry")}).result == "converged"  # type: ignore[union-attr]
    assert sink.titles() == ["reconciler: failing", "reconciler: recovered"]
    assert head.stdout.strip()[:12] in sink.received[1]["message"]

    # b is re-published: notify tells it once; auto inside the window applies it and tells that.
    new = stack.registry.push_model("e2e-ntb", "v1", size_bytes=64 * KiB, seed="ntb-new")
    stack.ollama["updates"] = {"policy": "notify", "check_every": "5m"}
    _commit(stack)
    _age_checks(stack)
    server.reconcile_once({Trigger("resync")})
    server.reconcile_once({Trigger("resync")})  # not due again: nothing more is said
    assert sink.titles()[2:] == ["reconciler: update available"]
    assert f"sha256:{new.manifest_digest[:12]}" in sink.received[2]["message"]
    stack.ollama["updates"] = {"policy": "auto", "check_every": "5m", "window": _window(1, 1)}
    _commit(stack)
    server.reconcile_once({Trigger("push")})
    assert sink.titles()[3:] == ["reconciler: update applied"]
    assert f"{canonical(b.name)}@sha256:" in sink.received[3]["message"]  # how to go back
    server.reconcile_once({Trigger("resync")})
    assert len(sink.received) == 4

    leaked = [r for r in sink.received if TOKEN in r["raw"]]
    assert leaked == [] and all(TOKEN not in str(e) for e in recorded)
    assert TOKEN not in (stack.state.root / "status.json").read_text()
    assert all(r["path"] == f"/hook/{TOKEN}" for r in sink.received)  # it did go where the URL says
    assert [e["event"] for e in recorded if str(e["event"]).startswith("notify.")].count("notify.sent") == 4


def _age_checks(stack: Stack) -> None:
    """The last registry checks ran an hour ago (the interval has passed)."""
    stack.state.update(
        lambda m: m.model_copy(
            update={
                "upstream": {
                    k: v.model_copy(update={"checked_at": v.checked_at - timedelta(hours=1)})
                    for k, v in m.upstream.items()
                }
            }
        )
    )


def test_a_notify_url_pointing_elsewhere_than_its_to_is_not_sent(tmp_path: Path) -> None:
    """The policy allowed the secret for `to`; a URL naming another host never gets it."""
    from reconciler.desired.schema import NotifyTarget
    from reconciler.notify.decide import Notice
    from reconciler.notify.send import send

    config = tmp_path / "reconciler.toml"
    config.write_text('[secrets]\nenv = ["RCL_NOTIFY_URL"]\n')
    events: list[tuple[str, dict[str, object]]] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECONCILER_CONFIG", str(config))
        mp.setenv("RCL_NOTIFY_URL", f"json://elsewhere.example:9/{TOKEN}")
        target = NotifyTarget.model_validate({"to": "127.0.0.1", "url": {"env": "RCL_NOTIFY_URL"}})
        notice = Notice("stalled", "health", "stalled", "reconciler: stalled", "x")
        assert send([target], [notice], lambda name, **data: events.append((name, data))) == []
    ((name, data),) = events
    assert name == "notify.failed" and "does not point at 127.0.0.1" in str(data["error"])
    assert TOKEN not in str(events)
    assert yaml  # the module is used by Stack's files
