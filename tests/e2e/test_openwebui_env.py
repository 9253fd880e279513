"""Typed `env` settings and the cloud model filter, through the real OpenWebUI 0.12.4.

OpenWebUI runs with the environment the reconciler renders (`clear_env`) for a desired state
with a boolean and a JSON `env` setting and a cloud endpoint limited to one model; what its
API then answers shows OpenWebUI read them as meant. The lists in
`reconciler.desired.webui_names` / `webui_env` are checked against the installed package.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.desired.load import load_desired
from reconciler.desired.schema import DesiredState
from reconciler.desired.source import DirSource
from reconciler.desired.webui_env import SECRET_SETTINGS, SEPARATED_LISTS
from reconciler.desired.webui_names import KNOWN_SETTINGS
from reconciler.kamal.render import clear_env
from reconciler.openwebui.client import connect
from tests.harness.openwebui import HostOllama, OpenWebUIServer, openwebui_process

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ("cloud-a:1b", "cloud-b:1b")  # what the endpoint's /v1/models lists
ALLOWED = "gpt-4o-mini"  # the only model the desired state lets the picker offer from it
SUGGESTIONS = [{"title": ["Homework", "help"], "content": "Explain fractions with pizza"}]
_READ = re.compile(r"""os\.(?:getenv|environ\.get|environ\[)\(?\s*['"]([A-Z0-9_]+)['"]""")


def _package(binary: Path) -> Path:
    (found,) = (binary.parent.parent / "lib").glob("python3*/site-packages/open_webui")
    return found


def test_the_setting_lists_match_the_installed_openwebui(openwebui_venv: Path) -> None:
    source = {p: p.read_text(encoding="utf-8") for p in _package(openwebui_venv).rglob("*.py")}
    read = {name for text in source.values() for name in _READ.findall(text)}
    assert sorted(KNOWN_SETTINGS ^ read) == []  # regenerate webui_names.py when OpenWebUI moves
    assert read >= SECRET_SETTINGS
    everything = "\n".join(source.values())
    for name, separator in SEPARATED_LISTS.items():
        assert re.search(rf"getenv\('{name}'[^)]*\)\s*\.split\({re.escape(repr(separator))}\)", everything), (
            name
        )


def _desired(host: HostOllama) -> DesiredState:
    desired = load_desired(DirSource(ROOT / "desired_state"))
    assert desired.openwebui is not None
    data: dict[str, Any] = desired.openwebui.model_dump(mode="json", by_alias=True)
    data["env"] = {"ENABLE_MEMORIES": False, "DEFAULT_PROMPT_SUGGESTIONS": SUGGESTIONS}
    data["cloud"] = [
        {"name": "lan", "base_url": f"{host.url}/v1", "api_key": {"env": "K"}, "models": [ALLOWED]}
    ]
    webui = type(desired.openwebui).model_validate(data)
    return desired.model_copy(update={"openwebui": webui})


@pytest.fixture(scope="module")
def server(openwebui_venv: Path, host_ollama: HostOllama) -> Iterator[OpenWebUIServer]:
    host_ollama.seed(*CATALOGUE)
    env = clear_env(_desired(host_ollama), ollama_url=host_ollama.url)
    env["OPENAI_API_KEYS"] = "unused"  # Kamal's secrets file carries it in a deploy
    with (
        tempfile.TemporaryDirectory(prefix="rcl-owui-env-") as tmp,
        openwebui_process(openwebui_venv, Path(tmp), env) as srv,
    ):
        yield srv


def test_typed_env_settings_take_effect(server: OpenWebUIServer) -> None:
    client = connect(server.url, auth=False, timeout=30)
    config = client.config()
    assert config["features"]["enable_memories"] is False  # a YAML boolean; OpenWebUI's default is True
    assert config["default_prompt_suggestions"] == SUGGESTIONS  # a JSON list of objects


def test_the_picker_offers_only_the_cloud_models_listed(
    server: OpenWebUIServer, host_ollama: HostOllama
) -> None:
    catalogue = {m["id"] for m in httpx.get(f"{host_ollama.url}/v1/models", timeout=10).json()["data"]}
    assert set(CATALOGUE) <= catalogue  # without the filter OpenWebUI would list all of these
    client = connect(server.url, auth=False, timeout=30)
    from_cloud = {m["id"] for m in client.models() if m.get("owned_by") == "openai"}
    assert from_cloud == {ALLOWED}
