"""The runner blocks what depends on a failed action; a Kamal deploy whose container did not
become healthy is remembered (one seam mocked each: Ollama's client, Kamal's deploy)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import MagicMock

import ollama
import pytest

from reconciler.apply import kamal as kamal_exec
from reconciler.apply.context import ExecContext, OllamaClients
from reconciler.apply.runner import Runner
from reconciler.desired.refs import canonical
from reconciler.errors import KamalFailed
from reconciler.kamal import deploy as kamal_deploy
from reconciler.observe.kamal import parse_app
from reconciler.plan.actions import AddKnowledgeFile, KamalDeploy, Plan, PullModel
from reconciler.report.events import EventBus, Recorder
from reconciler.state.store import StateStore
from tests.unit.factories import desired

EMBED = "nomic-embed-text"
WEBUI = {"default_models": ["phi3:mini"]}


def _ctx(tmp_path: Path, recorder: Recorder, client: MagicMock | None = None) -> ExecContext:
    ollama_clients = (
        OllamaClients(api=client, puller=client, loader=client, load_timeout=None) if client else None
    )
    return ExecContext(
        desired=desired(["phi3:mini", EMBED], openwebui=WEBUI),
        docker=MagicMock(),
        state=StateStore(tmp_path),
        events=EventBus(recorder),
        now=lambda: datetime.now(UTC),
        ollama=ollama_clients,
    )


def test_a_failed_pull_of_the_embedding_model_blocks_the_files_it_embeds(tmp_path: Path) -> None:
    client = MagicMock()
    client.pull.side_effect = ollama.ResponseError("pull model manifest: file does not exist")
    recorder = Recorder()
    embed = canonical(EMBED)
    add = AddKnowledgeFile(base="work", path="a.md", sha256="a" * 64, embedding_model=embed, reason="new")
    pull = PullModel(model=EMBED, canonical=embed, download_bytes=1, reason="desired")
    outcome = Runner(_ctx(tmp_path, recorder, client)).run(Plan(actions=(pull, add)))
    assert [f.action for f in outcome.failed] == [pull.title()]
    assert outcome.blocked == [add.title()]
    assert recorder.named("action.blocked")[0]["reason"] == "an earlier action it depends on failed"


def test_a_deploy_whose_container_did_not_become_healthy_is_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_deploy(*_args: object, **_kw: object) -> None:
        raise KamalFailed("kamal deploy", 1, ["ERROR (SSHKit::Command::Failed): container not ready"])

    unhealthy = {"v-broken": True, "v-unreachable": False}
    monkeypatch.setattr(kamal_deploy, "deploy", failing_deploy)
    monkeypatch.setattr(kamal_exec, "version_unhealthy", lambda _c, _s, version: unhealthy[version])
    ctx = _ctx(tmp_path, Recorder())
    for version in ("v-unreachable", "v-broken"):  # SSH down: retried; the image at fault: held
        outcome = Runner(ctx).run(Plan(actions=(KamalDeploy(version=version, reason="changed"),)))
        assert len(outcome.failed) == 1
        expected = None if version == "v-unreachable" else version
        assert ctx.state.load().deployed.openwebui_failed_hash == expected
    assert ctx.state.load().deployed.openwebui_spec_hash is None  # nothing new was deployed


@pytest.mark.parametrize(
    ("running", "health", "unhealthy"),
    [(True, "healthy", False), (True, None, False), (False, None, True), (True, "unhealthy", True),
     (True, "starting", True)],
)  # fmt: skip
def test_an_app_container_is_unhealthy_unless_running_and_healthy(
    running: bool, health: str | None, unhealthy: bool
) -> None:
    state: dict[str, object] = {"Running": running, **({"Health": {"Status": health}} if health else {})}
    attrs = {"Name": "/owui-web-v1", "State": state, "Config": {"Labels": {"service": "owui", "role": "web"}}}
    app = parse_app(attrs, "owui")
    assert app is not None and app.version == "v1" and app.unhealthy is unhealthy
