"""Issue 14's hostile and careless input through the one loader (`validate`): every case is a
file:line problem, never a traceback, never an echo of the value, and never a file read from
outside the repo."""

from __future__ import annotations

import os
import shutil
import tracemalloc
from pathlib import Path

import pytest
import yaml

from reconciler.desired.load import load_desired
from reconciler.desired.source import DirSource
from reconciler.errors import InvalidDesiredState, Problem
from tests.unit.desired.example_repo import copy_example, edit, line_of, problems


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def one(repo: Path, field: str) -> Problem:
    found = [p for p in problems(repo) if p.field == field]
    assert len(found) == 1, problems(repo)
    return found[0]


# -- 1. secrets: a reference cannot name any file of the server --------------------------------
@pytest.mark.parametrize("path", ["/root/.ssh/id_ed25519", "/etc/shadow", "../x", "a/b"])
def test_a_secret_file_reference_is_a_name_in_the_secrets_directory(repo: Path, path: str) -> None:
    edit(repo, "openwebui.yaml", "auth: false", f"auth: false\nadmin_token: {{file: {path!r}}}")
    p = one(repo, "admin_token")
    assert p.line == line_of(repo, "openwebui.yaml", "admin_token") and "secrets directory" in p.message


# -- 2. the readers never leave the repo ------------------------------------------------------
def test_a_symlinked_knowledge_folder_is_refused_not_followed(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "etc-ssh"
    outside.mkdir()
    (outside / "ssh_host_ed25519_key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nplanted\n")
    shutil.rmtree(repo / "knowledge" / "work")
    (repo / "knowledge" / "work").symlink_to(outside, target_is_directory=True)
    p = one(repo, "knowledge[0].name")
    assert "knowledge/work is a symbolic link" in p.message and p.file == "openwebui.yaml"


def test_a_symlinked_knowledge_root_and_linked_files_are_refused(repo: Path, tmp_path: Path) -> None:
    shutil.move(repo / "knowledge", tmp_path / "knowledge")
    (repo / "knowledge").symlink_to(tmp_path / "knowledge", target_is_directory=True)
    assert "knowledge is a symbolic link" in one(repo, "knowledge[0].name").message
    (repo / "knowledge").unlink()
    shutil.move(tmp_path / "knowledge", repo / "knowledge")
    (repo / "knowledge" / "work" / "passwd.md").symlink_to("/etc/passwd")
    assert "knowledge/work/passwd.md is a symbolic link" in one(repo, "knowledge[0].name").message


def test_a_symlinked_or_folder_top_level_file_is_refused(repo: Path, tmp_path: Path) -> None:
    shutil.move(repo / "server.yaml", tmp_path / "server.yaml")
    (repo / "server.yaml").symlink_to(tmp_path / "server.yaml")
    (p,) = problems(repo)
    assert (p.file, p.message) == ("server.yaml", "is a symbolic link")
    (repo / "server.yaml").unlink()
    (repo / "server.yaml").mkdir()
    (p,) = problems(repo)
    assert p.message == "is a folder, not a file"


def test_a_knowledge_entry_that_is_a_file_is_refused(repo: Path) -> None:
    shutil.rmtree(repo / "knowledge" / "work")
    (repo / "knowledge" / "work").write_text("not a folder")
    assert "is a file, not a folder" in one(repo, "knowledge[0].name").message


# -- 3. cost: sizes before reading, bounded parsing ---------------------------------------------
def _sparse(path: Path, size: int) -> None:
    with path.open("wb") as fh:
        fh.truncate(size)


def test_sizes_are_checked_before_reading(repo: Path) -> None:
    _sparse(repo / "knowledge" / "work" / "huge.md", 100 * 2**20)
    _sparse(repo / "ollama.yaml", 100 * 2**20)
    tracemalloc.start()
    found = problems(repo)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MiB held: a file was read whole"
    assert any(p.file == "ollama.yaml" and "larger than" in p.message for p in found), found


def test_a_huge_flow_list_stops_at_the_node_limit_with_its_line(repo: Path) -> None:
    (repo / "ollama.yaml").write_text("models: []\nderived: []\nx:\n  - [" + ",".join(["1"] * 60_000) + "]\n")
    (p,) = problems(repo)
    assert p.file == "ollama.yaml" and p.line == 4 and "more than 40,000 values" in p.message


def test_fifteen_thousand_models_are_refused_at_parse_time(repo: Path) -> None:
    models = "".join(f"  - name: m{i}:q4\n" for i in range(15_000))
    (repo / "ollama.yaml").write_text("models:\n" + models)
    (p,) = problems(repo)
    assert p.file == "ollama.yaml" and "more than 40,000 values" in p.message


# -- 4. numbers at the limits: problems, not tracebacks -----------------------------------------
@pytest.mark.parametrize("value", ["9" * 5000, ".inf", "-.inf", "1.0e+400", ".nan", ".NaN"])
def test_numbers_at_the_limits_are_problems_with_a_line(repo: Path, value: str) -> None:
    edit(repo, "server.yaml", "models: 60GiB", f"models: {value}")
    (p,) = problems(repo)
    assert p.file == "server.yaml" and p.line == line_of(repo, "server.yaml", "models:")
    assert value[:20] not in p.message


@pytest.mark.parametrize("value", ["1e400", "1.0e+400GiB", "99999999999999999999999999999999999TiB"])
def test_sizes_beyond_any_disk_are_problems(repo: Path, value: str) -> None:
    edit(repo, "server.yaml", "models: 60GiB", f"models: '{value}'")
    (p,) = problems(repo)
    assert p.field == "budgets.disk.models"


# -- 5. values are never echoed; secret-shaped values are refused anywhere ----------------------
SECRET = "sk-planted0123456789abcdefXYZ"


@pytest.mark.parametrize(
    ("file", "old", "new", "field"),
    [
        ("openwebui.yaml", "cloud: []", "cloud:\n  - name: c\n    base_url: https://user:{s}@api.example.com/v1\n"
         "    api_key: {{env: K}}", "cloud[0].base_url"),
        ("ollama.yaml", "OLLAMA_KEEP_ALIVE: 10m", "OLLAMA_KEEP_ALIVE: {s}",
         "container.env.OLLAMA_KEEP_ALIVE"),
        ("ollama.yaml", "OLLAMA_KEEP_ALIVE: 10m", "OLLAMA_KEEP_ALIVE: 10m\n    extra: {{SOME_SETTING: {s}}}",
         "container.env.extra.SOME_SETTING"),
        ("openwebui.yaml", "cloud: []", "cloud: []\nenv: {{WEBUI_NAME: '{s}'}}", "env.WEBUI_NAME"),
        ("openwebui.yaml", "    system: Answer briefly.", "    system: 'Use {s} for the API.'",
         "presets[1].system"),
    ],
)  # fmt: skip
def test_a_secret_written_into_any_field_is_refused_and_never_echoed(
    repo: Path, file: str, old: str, new: str, field: str
) -> None:
    edit(repo, file, old, new.format(s=SECRET))
    found = problems(repo)
    assert any(p.field == field and "looks like" in p.message for p in found), found
    assert SECRET not in "".join(str(p) for p in found)


def test_a_registry_url_with_a_password_is_refused_without_echo(repo: Path) -> None:
    (repo / "ollama.yaml").write_text(
        (repo / "ollama.yaml").read_text()
        + f"registries:\n  - host: reg.lan:5000\n    url: http://u:{SECRET}@127.0.0.1:5000\n"
    )
    found = problems(repo)
    assert any(p.field == "registries[0].url" for p in found) and SECRET not in str(found)


@pytest.mark.parametrize("name", ["HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWD", "GOOGLE_CREDENTIALS"])
def test_secret_looking_names_in_ollama_extra_are_refused(repo: Path, name: str) -> None:
    edit(repo, "ollama.yaml", "OLLAMA_KEEP_ALIVE: 10m", f"OLLAMA_KEEP_ALIVE: 10m\n    extra: {{{name}: x}}")
    assert "looks like a secret" in one(repo, "container.env.extra").message


@pytest.mark.parametrize("name", ["DB_PASSWD", "GOOGLE_CREDENTIALS", "AUTH_HEADER", "X_PASS"])
def test_secret_looking_names_in_openwebui_env_are_refused(repo: Path, name: str) -> None:
    """Names OpenWebUI does not read: whether they hold a secret cannot be read from its
    settings, so the shape of the name decides (OpenWebUI's own names: test_load.py)."""
    edit(repo, "openwebui.yaml", "cloud: []", f"cloud: []\nenv: {{{name}: x}}")
    assert "looks like a secret" in one(repo, f"env.{name}").message


def test_a_huge_bad_value_is_not_echoed(repo: Path) -> None:
    edit(repo, "ollama.yaml", "OLLAMA_KEEP_ALIVE: 10m", "OLLAMA_KEEP_ALIVE: " + "q" * 900_000)
    (p,) = problems(repo)
    assert len(str(p)) < 500 and "qqqq" not in str(p)


def test_an_unknown_key_shaped_like_a_secret_is_not_echoed(repo: Path) -> None:
    edit(repo, "server.yaml", "lan_addresses:", f"{SECRET}: 1\nlan_addresses:")
    assert SECRET not in "".join(str(p) for p in problems(repo))


# -- 6. YAML 1.2 core semantics, as editors read them -------------------------------------------
def test_restart_no_is_the_string_no(repo: Path) -> None:
    edit(repo, "ollama.yaml", "  gpus: all", "  gpus: all\n  restart: no")
    assert load_desired(DirSource(repo)).ollama.container.restart == "no"


def test_sexagesimal_is_text_not_ninety(repo: Path) -> None:
    edit(repo, "ollama.yaml", "OLLAMA_KEEP_ALIVE: 10m", "OLLAMA_KEEP_ALIVE: 1:30")
    p = one(repo, "container.env.OLLAMA_KEEP_ALIVE")
    assert "Go duration" in p.message


@pytest.mark.parametrize("value", ["0x10", "0o20", "١٢GiB", "'١٢GiB'", "'12\u00a0GiB'"])
def test_hex_octal_and_non_ascii_digits_are_not_sizes(repo: Path, value: str) -> None:
    edit(repo, "server.yaml", "models: 60GiB", f"models: {value}")
    (p,) = problems(repo)
    assert p.line == line_of(repo, "server.yaml", "models:")


@pytest.mark.parametrize("word", ["yes", "on", "off", "y"])
def test_yaml_1_1_booleans_are_refused_with_a_hint(repo: Path, word: str) -> None:
    edit(repo, "openwebui.yaml", "auth: false", f"auth: {word}")
    p = one(repo, "auth")
    assert "true or false" in p.hint


def test_deep_nesting_names_the_line_where_it_went_too_deep(repo: Path) -> None:
    deep = "x:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(70))
    (repo / "server.yaml").write_text(deep)
    (p,) = problems(repo)
    assert "nesting deeper than 64" in p.message and p.line == 65


# -- 7. settings the schema refuses -------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["WEBUI_AUTH", "OLLAMA_BASE_URL", "ENABLE_SIGNUP", "ENABLE_PERSISTENT_CONFIG", "DEFAULT_MODELS"]
)
def test_openwebui_env_cannot_override_what_the_reconciler_manages(repo: Path, name: str) -> None:
    edit(repo, "openwebui.yaml", "cloud: []", f"cloud: []\nenv: {{{name}: 'False'}}")
    assert "set by the reconciler" in one(repo, f"env.{name}").message


def test_two_services_on_one_port(repo: Path) -> None:
    edit(repo, "openwebui.yaml", "  mode: proxy", "  mode: published\n  port: 11434")
    edit(repo, "openwebui.yaml", "    enabled: true", "    enabled: false")
    p = one(repo, "exposure.port")
    assert "Ollama's" in p.message and p.line == line_of(repo, "openwebui.yaml", "port: 11434")


def test_the_registry_cannot_take_ollamas_port(repo: Path) -> None:
    edit(repo, "openwebui.yaml", "cloud: []", "cloud: []\nkamal: {registry: {server: '127.0.0.1:11434'}}")
    assert "Ollama's" in one(repo, "kamal.registry.server").message


def test_ollama_cannot_be_given_openwebuis_data_volume(repo: Path) -> None:
    edit(repo, "ollama.yaml", "  volume: ollama", "  volume: open-webui")
    assert "OpenWebUI's data volume" in one(repo, "container.volume").message


@pytest.mark.parametrize("network", ["host", "none", "bridge"])
def test_docker_builtin_networks_are_refused(repo: Path, network: str) -> None:
    edit(repo, "ollama.yaml", "  network: llm", f"  network: {network}")
    assert "built-in" in one(repo, "container.network").message


def test_a_registry_port_above_65535_is_refused(repo: Path) -> None:
    edit(repo, "openwebui.yaml", "cloud: []", "cloud: []\nkamal: {registry: {server: 'reg.lan:99999'}}")
    assert "65535" in one(repo, "kamal.registry.server").message
    edit(repo, "ollama.yaml", "  - name: phi3:mini", "  - name: reg.lan:70000/x/phi3:mini")
    assert "65535" in one(repo, "models[1].name").message


def test_a_model_namespace_with_a_dot_is_refused_as_ollama_does(repo: Path) -> None:
    edit(repo, "ollama.yaml", "  - name: phi3:mini", "  - name: my.team/phi3:mini")
    assert "namespace" in one(repo, "models[1].name").message


def test_a_name_with_a_trailing_newline_is_not_a_slug(repo: Path) -> None:
    doc = yaml.safe_load((repo / "openwebui.yaml").read_text())
    doc["knowledge"][0]["name"] = "work\n"
    (repo / "openwebui.yaml").write_text(yaml.safe_dump(doc))
    assert one(repo, "knowledge[0].name")


def test_knowledge_outside_is_never_read(repo: Path, tmp_path: Path) -> None:
    """The same tree as the symlink case, as `apply --repo` reads it: nothing of the outside
    folder reaches the desired state."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "key").write_text("x")
    os.symlink(outside, repo / "knowledge" / "work" / "linked")
    with pytest.raises(InvalidDesiredState):
        load_desired(DirSource(repo))
