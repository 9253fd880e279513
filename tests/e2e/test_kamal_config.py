"""The real kamal 2.11 accepts the rendered project (`kamal config`), proxy and published."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from reconciler.desired.load import load_desired
from reconciler.desired.schema import DesiredState
from reconciler.desired.source import DirSource
from reconciler.kamal.cli import kamal_binary
from reconciler.kamal.project import write_project
from reconciler.kamal.render import render

pytestmark = pytest.mark.e2e  # the real kamal binary

ROOT = Path(__file__).resolve().parents[2]


def _variant(mode: str) -> DesiredState:
    desired = load_desired(DirSource(ROOT / "desired_state"))
    assert desired.openwebui is not None
    exposure = desired.openwebui.exposure.model_copy(
        update={"mode": mode, "host": "chat.lan" if mode == "proxy" else None}
    )
    return desired.model_copy(
        update={"openwebui": desired.openwebui.model_copy(update={"exposure": exposure})}
    )


@pytest.mark.parametrize("mode", ["published", "proxy"])
def test_kamal_config_accepts_rendered_project(mode: str, tmp_path: Path) -> None:
    desired = _variant(mode)
    project = render(desired, "v1")
    values = write_project(project, desired, tmp_path)
    done = subprocess.run(
        [kamal_binary(), "config", "--version=v1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    shown = yaml.safe_load(done.stdout)
    assert shown[":service_with_version"] == "openwebui-v1"
    assert shown[":absolute_image"] == "127.0.0.1:5000/openwebui-local:v1"
    assert shown[":volume_args"] == ["--volume", "open-webui:/app/backend/data"]
    assert values["WEBUI_SECRET_KEY"] not in done.stdout  # Kamal redacts the secrets it shows
