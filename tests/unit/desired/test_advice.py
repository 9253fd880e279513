"""`validate`'s advice: voice over plain HTTP to the LAN (browsers give the microphone only on
HTTPS or localhost)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.desired.advice import advice
from reconciler.desired.load import load_desired
from reconciler.desired.schema import DesiredState
from reconciler.desired.source import DirSource

ROOT = Path(__file__).resolve().parents[3]


PLAIN = {"mode": "published", "port": 3000, "tls": {"enabled": False, "names": []}}


def _state(**exposure: Any) -> DesiredState:
    desired = load_desired(DirSource(ROOT / "desired_state"))
    assert desired.openwebui is not None
    data = desired.openwebui.model_dump(mode="json", by_alias=True)
    data["exposure"].update(exposure)
    return desired.model_copy(update={"openwebui": type(desired.openwebui).model_validate(data)})


def test_voice_over_plain_http_to_the_lan_is_advised_with_the_fix() -> None:
    (found,) = advice(_state(**PLAIN))  # published on 127.0.0.1 and 192.168.1.50
    assert found.kind == "voice_needs_https" and found.field == "voice.enabled"
    assert "192.168.1.50" in found.message and "tls: {enabled: true}" in found.fix


@pytest.mark.parametrize(
    "exposure",
    [
        {**PLAIN, "addresses": ["127.0.0.1"]},  # loopback only: a secure context
        {"mode": "proxy", "tls": {"enabled": True, "names": ["llm.lan"]}},  # HTTPS
        {},  # the example: HTTPS through kamal-proxy by default
    ],
)
def test_no_advice_when_the_microphone_is_available(exposure: dict[str, Any]) -> None:
    assert advice(_state(**exposure)) == []


def test_no_advice_without_voice() -> None:
    desired = _state(**PLAIN)
    assert desired.openwebui is not None
    webui = desired.openwebui.model_copy(
        update={"voice": desired.openwebui.voice.model_copy(update={"enabled": False})}
    )
    assert advice(desired.model_copy(update={"openwebui": webui})) == []


def test_validate_prints_the_warning_and_still_passes(tmp_path: Path) -> None:
    repo = tmp_path / "desired"
    shutil.copytree(ROOT / "desired_state", repo)
    quiet = CliRunner().invoke(main, ["validate", str(repo)])
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr  # the example serves HTTPS
    webui = yaml.safe_load((repo / "openwebui.yaml").read_text())
    webui["exposure"] = {"mode": "published", "port": 3000}
    (repo / "openwebui.yaml").write_text(yaml.safe_dump(webui))
    result = CliRunner().invoke(main, ["validate", str(repo)])
    assert result.exit_code == 0
    assert "warning: openwebui.yaml: voice.enabled:" in result.stderr and "fix:" in result.stderr
    as_json = CliRunner().invoke(main, ["validate", "--json", str(repo)])
    assert json.loads(as_json.stdout)["warnings"][0]["kind"] == "voice_needs_https"
