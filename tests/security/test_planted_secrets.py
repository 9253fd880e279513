"""A secret planted in every field of the desired state that accepts text never appears in
any output stream (`validate`, `plan`, plain and `--json`, stdout and stderr).

Two plants per field: a value shaped like a secret (a key prefix, credentials in a URL),
which is refused wherever it is written; and a plain random token, which a field with a
syntax refuses — and then must not echo — while a free-text field may take it (it is then
configuration the owner wrote, not a secret)."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from reconciler.cli import main

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "desired_state"
OBSERVED = ROOT / "tests" / "fixtures" / "seed_server.observed.json"
SHAPED = "sk-planted7f1c9e2a4b0d8c6e"
PLAIN = "Zq7PlantedToken9xW"
FILES = ("server.yaml", "ollama.yaml", "openwebui.yaml")

# Every text field of the schema, present once, so each can be planted.
EXTRA: dict[str, dict[str, object]] = {
    "ollama.yaml": {
        "registries": [{"host": "registry.lan:5000", "insecure": True, "url": "http://127.0.0.1:5000"}],
    },
    "openwebui.yaml": {
        "admin_token": {"file": "admin.token"},
        "cloud": [
            {"name": "openai", "base_url": "https://api.openai.com/v1", "api_key": {"env": "OPENAI_API_KEY"},
             "models": ["gpt-4o"]},
        ],
        "env": {"WEBUI_NAME": "Home"},
        "kamal": {
            "service": "openwebui", "servers": ["127.0.0.1"], "ssh_user": "root",
            "ssh_keys": ["/root/.ssh/id"],
            "registry": {"server": "127.0.0.1:5000", "username": "reconciler", "password": {"env": "REG_PW"}},
            "image": "openwebui-local", "webui_secret_key": {"file": "webui.key"},
            "data_volume": "open-webui",
        },
        "exposure": {
            "mode": "proxy", "host": "gpu-box.lan", "tls": {"enabled": True, "names": ["gpu-box.lan"]},
        },
    },
}  # fmt: skip


def _docs() -> dict[str, object]:
    docs: dict[str, object] = {}
    for name in FILES:
        doc = yaml.safe_load((SEED / name).read_text())
        doc.update(copy.deepcopy(EXTRA.get(name, {})))  # each case plants into its own copy
        docs[name] = doc
    derived = docs["ollama.yaml"]["derived"][0]  # type: ignore[index]
    derived["template"] = "{{ .Prompt }}"
    derived["parameters"]["stop"] = ["<|end|>"]
    docs["ollama.yaml"]["container"]["env"]["OLLAMA_ORIGINS"] = "http://gpu-box.lan"  # type: ignore[index]
    docs["ollama.yaml"]["container"]["env"]["extra"] = {"OLLAMA_DEBUG": "1"}  # type: ignore[index]
    return docs


def _text_leaves(node: object, path: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _text_leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _text_leaves(value, (*path, index))
    elif isinstance(node, str):
        yield path


def _set(doc: object, path: tuple[object, ...], value: str) -> None:
    for part in path[:-1]:
        doc = doc[part]  # type: ignore[index]
    doc[path[-1]] = value  # type: ignore[index]


CASES = [(file, path) for file, doc in _docs().items() for path in _text_leaves(doc)]


def _write(root: Path, docs: dict[str, object]) -> Path:
    work = root / "desired"
    if not work.exists():
        shutil.copytree(SEED, work)
    for name, doc in docs.items():
        (work / name).write_text(yaml.safe_dump(doc, allow_unicode=True))
    return work


def _outputs(work: Path) -> tuple[list[int], str]:
    runner = CliRunner()
    codes, text = [], ""
    for args in (["validate", str(work)], ["validate", str(work), "--json"],
                 ["plan", "--repo", str(work), "--observed", str(OBSERVED)],
                 ["plan", "--repo", str(work), "--observed", str(OBSERVED), "--json"]):  # fmt: skip
        result = runner.invoke(main, args, catch_exceptions=False)
        codes.append(result.exit_code)
        text += result.stdout + result.stderr
    return codes, text


def test_every_text_field_is_covered_and_the_unplanted_state_is_valid(tmp_path: Path) -> None:
    assert len(CASES) > 60
    codes, text = _outputs(_write(tmp_path, _docs()))
    assert codes[0] == 0, text


@pytest.mark.parametrize(("file", "path"), CASES, ids=[f"{f}:{'.'.join(map(str, p))}" for f, p in CASES])
def test_a_planted_secret_never_appears_in_any_output(
    tmp_path: Path, file: str, path: tuple[object, ...]
) -> None:
    for planted in (SHAPED, f"https://u:{SHAPED}@h.example/", PLAIN):
        docs = _docs()
        _set(docs[file], path, planted)
        codes, text = _outputs(_write(tmp_path, docs))
        if planted is not PLAIN:
            assert codes[0] == 2, f"{planted} accepted in {file}:{path}"
        if codes[0] == 2 or planted is not PLAIN:
            assert planted not in text and SHAPED not in text and PLAIN not in text, text
        assert "Traceback" not in text
