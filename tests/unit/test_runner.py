"""The runner blocks what depends on a failed action (one seam mocked: Ollama's client)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import MagicMock

import ollama

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
