"""Every class of invalid input names file, line, column and field, with a hint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.desired.load import load_desired
from reconciler.desired.schema import SecretRef
from reconciler.desired.source import DirSource
from tests.unit.desired.example_repo import EXAMPLE, copy_example, edit, line_of, problems


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def test_example_is_valid() -> None:
    state = load_desired(DirSource(EXAMPLE))
    assert [m.name for m in state.ollama.models][:3] == [
        "llama3:8b-instruct-q4_K_M",
        "phi3:mini",
        "deepseek-r1:7b",
    ]
    assert state.ollama.models[0].keep_loaded and state.openwebui is not None and not state.openwebui.auth
    assert set(state.knowledge_files["work"]) >= {"gpu-server.md", "conventions.md"}


def test_bad_yaml_reports_the_line(repo: Path) -> None:
    edit(repo, "ollama.yaml", "  - name: phi3:mini", "  - name: [phi3:mini")
    (p,) = problems(repo)
    assert p.file == "ollama.yaml" and p.line >= line_of(repo, "ollama.yaml", "[phi3:mini")
    assert "invalid YAML" in p.message


def test_unknown_field_names_line_field_and_suggests_the_right_one(repo: Path) -> None:
    edit(repo, "ollama.yaml", "    keep_loaded: true", "    keep_loadd: true")
    (p,) = problems(repo)
    assert (p.file, p.line, p.column) == ("ollama.yaml", line_of(repo, "ollama.yaml", "keep_loadd"), 5)
    assert p.field == "models[0].keep_loadd" and "unknown field" in p.message
    assert "did you mean 'keep_loaded'" in p.hint
    assert str(p).startswith(f"ollama.yaml:{p.line}:5: models[0].keep_loadd: unknown field")


def test_wrong_type_names_the_field(repo: Path) -> None:
    edit(repo, "ollama.yaml", "num_ctx: 8192", "num_ctx: lots")
    (p,) = problems(repo)
    assert p.field == "models[0].num_ctx" and p.line == line_of(repo, "ollama.yaml", "num_ctx: lots")
    assert "integer" in p.message


@pytest.mark.parametrize(
    "name",
    [
        "../../x",
        "a;rm -rf /",
        "http://evil/x:1",
        "llama3:8b\nrm",
        "x y",
        "a/b/c/d",
        "-leading",
        "m:",
        "llama3:a..b",
    ],
)
def test_hostile_model_references_are_rejected(repo: Path, name: str) -> None:
    edit(
        repo,
        "ollama.yaml",
        "  - name: phi3:mini",
        f"  - name: {name!r}".replace("'", '"').replace("\n", "\\n"),
    )
    found = [p for p in problems(repo) if p.field == "models[1].name"]
    assert found and "not a valid Ollama model reference" in found[0].message
    assert found[0].line == line_of(repo, "ollama.yaml", '  - name: "')


def test_duplicate_model_points_at_both_lines(repo: Path) -> None:
    edit(
        repo,
        "ollama.yaml",
        "  - name: phi3:mini",
        "  - name: PHI3:mini\n  - name: registry.ollama.ai/library/phi3:mini",
    )
    found = [p for p in problems(repo) if "listed twice" in p.message]
    assert len(found) == 1 and found[0].field == "models[2].name"
    assert f"first on line {line_of(repo, 'ollama.yaml', 'PHI3:mini')}" in found[0].message


def test_unparseable_budget_explains_the_units(repo: Path) -> None:
    edit(repo, "server.yaml", "models: 60GiB", "models: 60 gigs")
    (p,) = problems(repo)
    assert (p.file, p.field) == ("server.yaml", "budgets.disk.models")
    assert p.line == line_of(repo, "server.yaml", "60 gigs") and "GiB" in p.message


def test_missing_required_field_points_at_its_parent(repo: Path) -> None:
    edit(repo, "server.yaml", "    models: 60GiB        # all models together, rollback cache included\n", "")
    (p,) = problems(repo)
    assert p.field == "budgets.disk.models" and "required" in p.message
    assert p.line == line_of(repo, "server.yaml", "  disk:")


def test_duplicate_yaml_key_and_aliases_are_refused(repo: Path) -> None:
    edit(repo, "server.yaml", "lan_addresses:", "lan_addresses: []\nlan_addresses:")
    (p,) = problems(repo)
    assert "duplicate key 'lan_addresses'" in p.message
    (repo / "server.yaml").write_text("budgets: &b\n  disk: {models: 1GiB}\nother: *b\n")
    (p,) = problems(repo)
    assert "aliases" in p.message and p.line == 1  # refused at the anchor, before any alias


def test_missing_file_and_non_mapping(repo: Path) -> None:
    (repo / "server.yaml").unlink()
    (repo / "ollama.yaml").write_text("- just\n- a list\n")
    found = {p.file: p.message for p in problems(repo)}
    assert found == {"server.yaml": "file is missing", "ollama.yaml": "the file must be a mapping of fields"}


def test_cross_file_references_are_checked(repo: Path) -> None:
    edit(repo, "openwebui.yaml", "    base: phi3:mini", "    base: mistral:7b")
    edit(
        repo,
        "openwebui.yaml",
        "    knowledge: [work]\n  - id: deepseek",
        "    knowledge: [play]\n  - id: deepseek",
    )
    found = {p.field: p for p in problems(repo)}
    assert (
        "not in ollama.yaml" in found["presets[1].base"].message
        or "neither" in found["presets[1].base"].message
    )
    assert found["presets[1].knowledge[0]"].message == "this knowledge base is not declared"
    assert found["presets[1].base"].file == "openwebui.yaml"


def test_literal_secret_in_env_is_refused(repo: Path) -> None:
    edit(repo, "openwebui.yaml", "cloud: []", "cloud: []\nenv:\n  OPENAI_API_KEY: sk-live-123")
    (p,) = problems(repo)
    assert p.field == "env.OPENAI_API_KEY" and "secret settings" in p.message
    assert p.line == line_of(repo, "openwebui.yaml", "OPENAI_API_KEY: sk-live")
    assert "sk-live-123" not in str(p)


def test_typed_env_settings_load(repo: Path) -> None:
    """Booleans, numbers, lists, objects and names OpenWebUI does not call secret (TOKEN in
    TIKTOKEN, KEYS in ENABLE_API_KEYS) are accepted as written."""
    env = (
        "env:\n  ENABLE_RAG_HYBRID_SEARCH: true\n  RAG_TOP_K_RERANKER: 3\n"
        "  TIKTOKEN_ENCODING_NAME: o200k_base\n  ENABLE_API_KEYS: true\n"
        "  WEB_SEARCH_DOMAIN_FILTER_LIST: [example.org]\n  DEFAULT_MODEL_PARAMS: {temperature: 0.2}\n"
        "  TAVILY_API_KEY: {env: TAVILY_KEY}"
    )
    edit(repo, "openwebui.yaml", "cloud: []", "cloud: []\n" + env)
    webui = load_desired(DirSource(repo)).openwebui
    assert webui is not None
    assert webui.env["ENABLE_RAG_HYBRID_SEARCH"] is True and webui.env["RAG_TOP_K_RERANKER"] == 3
    assert webui.env["WEB_SEARCH_DOMAIN_FILTER_LIST"] == ["example.org"]
    assert webui.env_secrets() == {"TAVILY_API_KEY": SecretRef(env="TAVILY_KEY")}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("  ENABLE_RAG_HYBRID_SEARCH: null", "a string, true/false, a number"),
        ("  TAVILY_API_KEY: {env: tavily}", "not an environment variable name"),
        ("  TAVILY_API_KEY: {env: A, file: b}", "exactly one of"),
        ("  DATABASE_URL: postgres://u:hunter2@db/owui", "credentials in a URL"),
        ("  OPENAI_API_CONFIGS: {}", "from `cloud` models"),
    ],
)
def test_bad_env_setting_names_its_line(repo: Path, line: str, message: str) -> None:
    edit(repo, "openwebui.yaml", "cloud: []", "cloud: []\nenv:\n  OK_SETTING: 1\n" + line)
    (p,) = problems(repo)
    assert p.file == "openwebui.yaml" and p.line == line_of(repo, "openwebui.yaml", line.strip())
    assert p.field.startswith("env.") and message in p.message
    assert "hunter2" not in str(p)


def test_api_key_must_be_a_reference(repo: Path) -> None:
    edit(
        repo,
        "openwebui.yaml",
        "cloud: []",
        "cloud:\n  - name: openai\n    base_url: https://api.openai.com/v1\n    api_key: sk-live-123",
    )
    (p,) = problems(repo)
    assert p.field == "cloud[0].api_key" and "sk-live-123" not in str(p)


def test_derived_model_needs_a_listed_base(repo: Path) -> None:
    edit(repo, "ollama.yaml", "    from: llama3:8b-instruct-q4_K_M", "    from: mistral:7b")
    (p,) = problems(repo)
    assert p.field == "derived[0].from" and p.line == line_of(repo, "ollama.yaml", "from: mistral")


def test_empty_knowledge_folder_is_an_error(repo: Path) -> None:
    shutil.rmtree(repo / "knowledge" / "work")
    (p,) = problems(repo)
    assert p.field == "knowledge[0].name" and "no documents" in p.message


def test_all_problems_are_reported_at_once(repo: Path) -> None:
    edit(repo, "server.yaml", "models: 60GiB", "models: -5")
    edit(repo, "ollama.yaml", "gpus: all", "gpus: some")
    edit(repo, "openwebui.yaml", "auth: false", "auth: maybe")
    assert {p.file for p in problems(repo)} == {"server.yaml", "ollama.yaml", "openwebui.yaml"}


def test_non_utf8_and_nul_bytes(repo: Path) -> None:
    (repo / "server.yaml").write_bytes(b"budgets:\n  disk: {models: \xff}\n")
    (p,) = problems(repo)
    assert p.line == 2 and "UTF-8" in p.message
    (repo / "server.yaml").write_bytes(b"budgets:\n\n  x: \x00\n")
    (p,) = problems(repo)
    assert p.line == 3 and "NUL" in p.message


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('"<|end|>"', "list of strings"),  # Ollama: option "stop" must be of type array
        ("[1, 2]", "list of strings"),  # must be of an array of strings
    ],
)
def test_stop_must_be_a_list_of_strings(repo: Path, value: str, words: str) -> None:
    edit(repo, "ollama.yaml", "      temperature: 0.4", f"      temperature: 0.4\n      stop: {value}")
    (p,) = problems(repo)
    assert (p.file, p.field) == ("ollama.yaml", "derived[0].parameters.stop")
    assert p.line == line_of(repo, "ollama.yaml", "stop:") and words in p.message


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("temperature", '"warm"', "must be a number"),
        ("temperature", "true", "must be a number"),
        ("num_ctx", '"4096"', "whole number"),
        ("top_k", "40.5", "silently drop the fraction"),
        ("use_mmap", "1", "true or false"),
    ],
)
def test_parameters_are_typed_as_ollama_checks_them(repo: Path, option: str, value: str, words: str) -> None:
    edit(repo, "ollama.yaml", "      temperature: 0.4", f"      {option}: {value}")
    (p,) = problems(repo)
    assert p.field == f"derived[0].parameters.{option}" and words in p.message
    assert p.line == line_of(repo, "ollama.yaml", f"      {option}: {value}")


def test_an_unknown_parameter_is_refused_with_the_known_ones(repo: Path) -> None:
    edit(repo, "ollama.yaml", "      temperature: 0.4", "      temprature: 0.4")
    (p,) = problems(repo)
    assert p.field == "derived[0].parameters.temprature" and "unknown field" in p.message
    assert "did you mean 'temperature'" in p.hint


def test_a_parameter_the_pinned_version_ignores_is_refused(repo: Path) -> None:
    edit(repo, "ollama.yaml", "      temperature: 0.4", "      temperature: 0.4\n      mirostat: 2")
    (p,) = problems(repo)
    assert p.field == "derived[0].parameters.mirostat" and "removed in Ollama 0.7.0" in p.message
    edit(repo, "ollama.yaml", "ollama/ollama:0.32.15", "ollama/ollama:0.6.8")
    load_desired(DirSource(repo))  # 0.6.8 takes it


def test_pinned_models_on_one_weights_file_must_agree_on_runner_options(repo: Path) -> None:
    edit(repo, "ollama.yaml", "      temperature: 0.4", "      temperature: 0.4\n      num_ctx: 4096")
    (p,) = problems(repo)
    assert p.field == "derived[0].parameters" and "share one weights file" in p.message
    assert "num_ctx 4096 vs 8192" in p.message and "same num_ctx" in p.hint


def test_max_loaded_models_counts_one_copy_for_a_derived_model_pinned_with_its_base(repo: Path) -> None:
    load_desired(DirSource(repo))  # llama3 + llama3-work (one copy) + nomic-embed-text = 2
    edit(
        repo,
        "ollama.yaml",
        "  - name: phi3:mini                   # fast answers",
        "  - name: phi3:mini\n    keep_loaded: true",
    )
    (p,) = problems(repo)
    assert p.field == "container.env.OLLAMA_MAX_LOADED_MODELS" and "3 loaded copies" in p.message
