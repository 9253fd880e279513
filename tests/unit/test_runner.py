"""The runner blocks what depends on a failed action (one seam mocked: Ollama's client)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import MagicMock

import ollama
import pytest

from reconciler.apply.runner import Runner
from reconciler.desired.refs import canonical
from reconciler.plan.actions import ApplyWebUISettings, Plan, PullModel
from reconciler.report.events import EventBus, Recorder
from reconciler.runtime import Runtime
from reconciler.state.store import StateStore

EMBED = "nomic-embed-text"


def test_a_failed_pull_of_the_embedding_model_blocks_the_settings_apply(tmp_path: Path) -> None:
    client = MagicMock()
    client.pull.side_effect = ollama.ResponseError("pull model manifest: file does not exist")
    runtime = Runtime(docker=MagicMock(), state=StateStore(tmp_path))
    runtime._clients = {("http://x", runtime.pull_timeout): client, ("http://x", runtime.api_timeout): client}
    recorder = Recorder()
    runner = Runner(runtime, "http://x", EventBus(recorder), lambda: datetime.now(UTC))
    embed = canonical(EMBED)
    outcome = runner.run(
        Plan(
            actions=(
                PullModel(model=EMBED, canonical=embed, download_bytes=1, reason="desired"),
                ApplyWebUISettings(settings_hash="s", needs=(embed,), reason="desired"),
            )
        )
    )
    assert [title for title, _ in outcome.failed] == [f"pull {EMBED} (1 B to download)"]
    assert outcome.blocked == ["apply OpenWebUI settings s (knowledge, presets)"]
    assert recorder.named("action.blocked")[0]["reason"] == "an earlier action it depends on failed"


def test_a_deploy_whose_container_did_not_become_healthy_is_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.apply import runner as runner_mod
    from reconciler.errors import KamalFailed
    from reconciler.plan.actions import KamalDeploy
    from tests.unit.factories import desired

    def failing_deploy(*_args: object, **_kw: object) -> None:
        raise KamalFailed("kamal deploy", 1, ["ERROR (SSHKit::Command::Failed): container not ready"])

    unhealthy = {"v-broken": True, "v-unreachable": False}
    monkeypatch.setattr(runner_mod.kamal, "deploy", failing_deploy)
    monkeypatch.setattr(runner_mod.kamal, "available_versions", lambda *_a: ())
    monkeypatch.setattr(runner_mod.kamal, "version_unhealthy", lambda _c, _s, version: unhealthy[version])
    state = StateStore(tmp_path)
    runtime = Runtime(docker=MagicMock(), state=state)
    state_desired = desired(["phi3:mini"], openwebui={"default_models": ["phi3:mini"]})
    clock = lambda: datetime.now(UTC)  # noqa: E731
    runner = Runner(runtime, "http://x", EventBus(Recorder()), clock, desired=state_desired)
    for version in ("v-unreachable", "v-broken"):  # SSH down: retried; the image at fault: held
        outcome = runner.run(Plan(actions=(KamalDeploy(spec_hash=version, reason="changed"),)))
        assert len(outcome.failed) == 1
        expected = None if version == "v-unreachable" else version
        assert state.load().deployed.openwebui_failed_hash == expected
    assert state.load().deployed.openwebui_spec_hash is None  # nothing new was deployed


def test_version_unhealthy_reads_the_containers_of_that_version() -> None:
    from types import SimpleNamespace

    from reconciler.kamal.executor import version_unhealthy
    from reconciler.kamal.render import VERSION_LABEL

    def container(version: str, running: bool, health: str | None) -> SimpleNamespace:
        state: dict[str, object] = {"Running": running, **({"Health": {"Status": health}} if health else {})}
        labels = {"service": "owui", "role": "web", VERSION_LABEL: version}
        return SimpleNamespace(labels=labels, attrs={"State": state, "Config": {"Labels": labels}})

    client = MagicMock()
    client.containers.list.return_value = [
        container("good", True, "healthy"),
        container("exited", False, None),
        container("sick", True, "unhealthy"),
    ]
    assert [version_unhealthy(client, "owui", v) for v in ("good", "exited", "sick", "never")] == [
        False,
        True,
        True,
        False,
    ]
