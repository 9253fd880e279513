"""The Kamal project rendered from the desired state (pure), and the secrets written for it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from reconciler.desired.load import load_desired
from reconciler.desired.schema import DesiredState, KamalSpec
from reconciler.desired.source import DirSource
from reconciler.ensure_ollama import SshConfig, is_local
from reconciler.kamal.project import SecretUnavailable, write_project
from reconciler.kamal.render import Timing, render
from reconciler.labels import VERSION_LABEL
from reconciler.openwebui.client import default_url
from reconciler.plan.kamal import deploy_hash
from tests.harness.server_config import allow_secrets

ROOT = Path(__file__).resolve().parents[3]
SECRET_VALUES = {"REG_PW": "hunter2-registry", "OWUI_KEY": "s3cr3t-session-key", "OPENAI_KEY": "sk-live-abc"}


def seed() -> DesiredState:
    return load_desired(DirSource(ROOT / "desired_state"))


def with_webui(desired: DesiredState, **changes: Any) -> DesiredState:
    assert desired.openwebui is not None
    data = desired.openwebui.model_dump(mode="json", by_alias=True)
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return desired.model_copy(update={"openwebui": type(desired.openwebui).model_validate(data)})


def with_secrets(desired: DesiredState) -> DesiredState:
    return with_webui(
        desired,
        kamal__registry__password={"env": "REG_PW"},
        kamal__webui_secret_key={"env": "OWUI_KEY"},
        cloud=[
            {"name": "openai", "base_url": "https://api.openai.com/v1", "api_key": {"env": "OPENAI_KEY"}},
            {"name": "other", "base_url": "https://llm.example/v1", "api_key": {"file": "other.key"}},
        ],
    )


def published(**changes: Any) -> DesiredState:
    """The example served as plain HTTP on a published port (no proxy, no TLS)."""
    return with_webui(seed(), exposure__mode="published", exposure__tls__enabled=False, **changes)


def test_published_mode_binds_loopback_and_lan_only() -> None:
    config = yaml.safe_load(render(published(), "v1").deploy_yml)
    web = config["servers"]["web"]
    assert web["proxy"] is False
    assert web["options"]["publish"] == ["127.0.0.1:3000:8080", "192.168.1.50:3000:8080"]
    assert "proxy" not in config
    assert not any("0.0.0.0" in p for p in web["options"]["publish"])
    # Kamal waits for Docker's `healthy`: checked every 5 s, not the image's default 30 s
    assert web["options"]["health-interval"] == "5s"
    assert web["options"]["health-start-period"] == "120s"


def test_published_mode_explicit_addresses_and_ipv6() -> None:
    desired = published(exposure__addresses=["::1", "10.0.0.2"], exposure__port=8088)
    publish = yaml.safe_load(render(desired, "v1").deploy_yml)["servers"]["web"]["options"]["publish"]
    assert publish == ["[::1]:8088:8080", "10.0.0.2:8088:8080"]


def test_proxy_mode_without_tls() -> None:
    desired = with_webui(seed(), exposure__tls__enabled=False, exposure__host="chat.lan")
    config = yaml.safe_load(render(desired, "v1").deploy_yml)
    assert config["proxy"]["app_port"] == 8080
    assert config["proxy"]["healthcheck"]["path"] == "/health"
    assert config["proxy"]["hosts"] == ["chat.lan"] and config["proxy"]["ssl"] is False
    assert config["proxy"]["run"]["bind_ips"] == ["127.0.0.1", "192.168.1.50"]
    assert "proxy" not in config["servers"]["web"] and "options" not in config["servers"]["web"]
    no_host = yaml.safe_load(render(with_webui(seed(), exposure__tls__enabled=False), "v1").deploy_yml)
    assert "hosts" not in no_host["proxy"] and "host" not in no_host["proxy"]  # every host


def test_the_example_serves_https_on_every_name_and_address_its_certificate_covers() -> None:
    """kamal-proxy routes by the Host header (service_map.go at v0.9.2): a phone opening the
    LAN address must find the service, so every name and address of the certificate is a host."""
    config = yaml.safe_load(render(seed(), "v1").deploy_yml)
    proxy = config["proxy"]
    assert proxy["hosts"] == ["gpu-box.lan", "127.0.0.1", "192.168.1.50"]
    assert proxy["ssl"] == {
        "certificate_pem": "OPENWEBUI_TLS_CERTIFICATE_PEM",
        "private_key_pem": "OPENWEBUI_TLS_PRIVATE_KEY_PEM",
    }
    assert proxy["run"] == {"bind_ips": ["127.0.0.1", "192.168.1.50"], "http_port": 80, "https_port": 443}
    assert proxy["response_timeout"] == 600  # kamal-proxy's 30 s is shorter than a model load
    moved = with_webui(seed(), exposure__https_port=8443, exposure__http_port=8080)
    assert yaml.safe_load(render(moved, "v1").deploy_yml)["proxy"]["run"]["https_port"] == 8443


def test_config_core_fields() -> None:
    project = render(seed(), "abc123", Timing(readiness_delay=1, deploy_timeout=20))
    config = yaml.safe_load(project.deploy_yml)
    assert config["service"] == "openwebui"
    assert config["image"] == "openwebui-local"
    assert project.image_ref == "127.0.0.1:5000/openwebui-local:abc123"
    assert config["servers"]["web"]["hosts"] == ["127.0.0.1"]
    assert config["registry"] == {
        "server": "127.0.0.1:5000",
        "username": "reconciler",
        "password": ["KAMAL_REGISTRY_PASSWORD"],
    }
    assert config["volumes"] == ["open-webui:/app/backend/data"]
    assert config["builder"] == {"arch": "amd64"}
    assert (config["readiness_delay"], config["deploy_timeout"]) == (1, 20)
    clear = config["env"]["clear"]
    assert clear["OLLAMA_BASE_URL"] == "http://ollama:11434"
    assert clear["WEBUI_AUTH"] == "False"
    assert clear["ENABLE_PERSISTENT_CONFIG"] == "False"
    assert clear["ENABLE_OPENAI_API"] == "False"
    assert clear["DEFAULT_MODELS"] == "llama3:8b-instruct-q4_K_M"
    assert clear["TASK_MODEL"] == "phi3:mini"
    assert (clear["RAG_EMBEDDING_ENGINE"], clear["RAG_EMBEDDING_MODEL"]) == ("ollama", "nomic-embed-text")
    assert (clear["CHUNK_SIZE"], clear["CHUNK_OVERLAP"], clear["RAG_TOP_K"]) == ("1000", "100", "5")
    assert clear["WHISPER_MODEL"] == "base"
    assert config["env"]["secret"] == ["WEBUI_SECRET_KEY"]


def test_dockerfile_wraps_image_with_service_label() -> None:
    project = render(seed(), "abc123")
    assert project.dockerfile.splitlines() == [
        "FROM ghcr.io/open-webui/open-webui:v0.12.4",
        'LABEL service="openwebui"',
        f'LABEL {VERSION_LABEL}="abc123"',
    ]


def test_secret_names_and_cloud() -> None:
    project = render(with_secrets(seed()), "v1")
    assert project.secret_names == (
        "KAMAL_REGISTRY_PASSWORD",
        "WEBUI_SECRET_KEY",
        "OPENAI_API_KEYS",
        "OPENWEBUI_TLS_CERTIFICATE_PEM",
        "OPENWEBUI_TLS_PRIVATE_KEY_PEM",
    )
    config = yaml.safe_load(project.deploy_yml)
    assert config["env"]["secret"] == ["WEBUI_SECRET_KEY", "OPENAI_API_KEYS"]
    assert config["env"]["clear"]["ENABLE_OPENAI_API"] == "True"
    assert (
        config["env"]["clear"]["OPENAI_API_BASE_URLS"] == "https://api.openai.com/v1;https://llm.example/v1"
    )


def _allow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    allow_secrets(
        monkeypatch,
        tmp_path,
        env=SECRET_VALUES,
        files={"other.key": "sk-file-xyz"},
        send_to={"OPENAI_KEY": ["api.openai.com"], "other.key": ["llm.example"]},
    )


def test_no_secret_value_in_rendered_text(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in SECRET_VALUES.items():
        monkeypatch.setenv(name, value)
    _allow(monkeypatch, tmp_path)
    desired = with_secrets(seed())
    project = render(desired, "v1")
    rendered = project.deploy_yml + project.dockerfile + repr(project)
    for value in [*SECRET_VALUES.values(), "sk-file-xyz"]:
        assert value not in rendered
    workdir = tmp_path / "project"
    values = write_project(project, desired, workdir)
    secrets_file = workdir / ".kamal" / "secrets"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
    assert secrets_file.read_text().splitlines()[:3] == [
        "KAMAL_REGISTRY_PASSWORD='hunter2-registry'",
        "WEBUI_SECRET_KEY='s3cr3t-session-key'",
        "OPENAI_API_KEYS='sk-live-abc;sk-file-xyz'",
    ]
    assert secrets_file.read_text().splitlines()[3].startswith('OPENWEBUI_TLS_CERTIFICATE_PEM="-----BEGIN')
    assert values["OPENAI_API_KEYS"] == "sk-live-abc;sk-file-xyz"
    for path in workdir.rglob("*"):
        if path.is_file() and path != secrets_file:
            text = path.read_text()
            for value in [*SECRET_VALUES.values(), "sk-file-xyz"]:
                assert value not in text, path
    for hook in ("docker-setup", "pre-app-boot", "post-deploy"):
        assert os.access(workdir / ".kamal" / "hooks" / hook, os.X_OK)


def test_missing_secret_names_the_reference_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REG_PW", raising=False)
    _allow(monkeypatch, tmp_path)
    desired = with_secrets(seed())
    with pytest.raises(SecretUnavailable, match="env:REG_PW"):
        write_project(render(desired, "v1"), desired, tmp_path / "p")
    assert not (tmp_path / "p" / ".kamal" / "secrets").exists()


def test_unquotable_secret_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _allow(monkeypatch, tmp_path)
    monkeypatch.setenv("REG_PW", "it's-a-secret")
    monkeypatch.setenv("OWUI_KEY", "k")
    monkeypatch.setenv("OPENAI_KEY", "k")
    desired = with_webui(seed(), kamal__registry__password={"env": "REG_PW"})
    with pytest.raises(SecretUnavailable) as info:
        write_project(render(desired, "v1"), desired, tmp_path / "p")
    assert "it's-a-secret" not in str(info.value) and "env:REG_PW" in str(info.value)


def test_generated_webui_key_is_stable(tmp_path: Path) -> None:
    desired = seed()
    write_project(render(desired, "v1"), desired, tmp_path)
    first = (tmp_path / ".kamal" / "secrets").read_text()
    write_project(render(desired, "v2"), desired, tmp_path)
    assert (tmp_path / ".kamal" / "secrets").read_text() == first
    assert "WEBUI_SECRET_KEY='" in first


def test_a_secret_the_server_does_not_allow_is_not_resolved(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in SECRET_VALUES.items():
        monkeypatch.setenv(name, value)
    desired = with_secrets(seed())
    with pytest.raises(SecretUnavailable, match="allows no secrets") as info:  # no reconciler.toml
        write_project(render(desired, "v1"), desired, tmp_path / "p")
    assert not (tmp_path / "p" / ".kamal" / "secrets").exists()
    assert not any(v in str(info.value) for v in SECRET_VALUES.values())


def test_deploy_hash_covers_kamal_settings() -> None:
    desired = seed()
    assert deploy_hash(desired) != deploy_hash(with_webui(desired, kamal__ssh_port=2222))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("servers", ["host; rm -rf /"]),
        ("servers", ["$(id)"]),
        ("servers", []),
        ("ssh_keys", ["relative/key"]),
        ("ssh_keys", ["/root/.ssh/id ed25519"]),
        ("ssh_keys", ["/root/../etc/shadow"]),
        ("ssh_user", "root;id"),
        ("image", "Open WebUI"),
        ("data_volume", "vol/../x"),
        ("registry", {"server": "reg`id`:5000"}),
    ],
)
def test_kamal_spec_refuses_shell_characters(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        KamalSpec.model_validate({field: value})


def test_kamal_spec_defaults() -> None:
    spec = KamalSpec()
    assert spec.servers == ["127.0.0.1"] and spec.registry.server == "127.0.0.1:5000"
    assert spec.data_volume == "open-webui" and spec.service == "openwebui"


def test_ssh_argv_quotes_the_remote_command() -> None:
    ssh = SshConfig(
        user="root", port=2222, keys=("/k/id",), remote_command=("/opt/venv/bin/python", "-m", "x")
    )
    argv = ssh.argv("10.0.0.5", "--state", "-", "--hosts", "a b")
    assert argv[:3] == ["ssh", "-p", "2222"]
    assert argv[-3:-1] == ["root", "10.0.0.5"]
    assert argv[-1] == "/opt/venv/bin/python -m x --state - --hosts 'a b'"


def test_is_local() -> None:
    assert is_local("127.0.0.1") and is_local("localhost") and is_local("::1")
    assert not is_local("203.0.113.7")


def test_every_setting_the_reconciler_renders_is_managed_or_a_documented_default() -> None:
    """What `env` may not override (the schema's MANAGED_WEBUI_ENV) covers what clear_env sets
    from a field; the rest are defaults the owner may change through `env`."""
    from reconciler.desired.schema import MANAGED_WEBUI_ENV
    from reconciler.kamal.render import clear_env

    overridable = {"OFFLINE_MODE", "HF_HUB_OFFLINE", "ENABLE_VERSION_UPDATE_CHECK", "SCARF_NO_ANALYTICS",
                   "DO_NOT_TRACK", "ANONYMIZED_TELEMETRY"}  # fmt: skip
    desired = with_webui(seed(), voice__enabled=False, rag__embedding_engine="ollama", persistent_config=True)
    rendered = set(clear_env(desired)) | set(clear_env(seed()))
    assert rendered - set(MANAGED_WEBUI_ENV) == overridable
    assert clear_env(desired)["ENABLE_PERSISTENT_CONFIG"] == "True"


def test_the_desired_state_written_for_the_hooks_loads_back(tmp_path: Path) -> None:
    """The Kamal hooks run `ensure-ollama` from the snapshot `write_project` leaves in the
    project; the example (a derived model with typed parameters) must load from it."""
    from reconciler.desired.load import load_desired
    from reconciler.desired.schema import DesiredState
    from reconciler.desired.source import DirSource
    from reconciler.kamal.project import DESIRED_SNAPSHOT, write_project

    example = load_desired(DirSource(Path(__file__).resolve().parents[3] / "desired_state"))
    assert example.ollama.derived and example.ollama.derived[0].parameters.temperature == 0.4
    write_project(render(example, "v1"), example, tmp_path, environ={})
    again = DesiredState.model_validate_json((tmp_path / DESIRED_SNAPSHOT).read_text())
    assert again == example


def test_openwebui_reaches_ollama_by_its_container_name() -> None:
    """The name is unique on the engine; the `ollama` alias on the shared `kamal` network is
    not once a second Ollama sits there (Docker then answers with either)."""
    from reconciler.kamal.render import clear_env

    desired = seed()
    container = desired.ollama.container.model_copy(update={"name": "gpu-ollama"})
    renamed = desired.model_copy(
        update={"ollama": desired.ollama.model_copy(update={"container": container})}
    )
    assert clear_env(desired)["OLLAMA_BASE_URL"] == "http://ollama:11434"
    env = clear_env(renamed)
    assert env["OLLAMA_BASE_URL"] == env["RAG_OLLAMA_BASE_URL"] == "http://gpu-ollama:11434"


def test_typed_env_settings_render_as_openwebui_reads_them() -> None:
    """config.py of open-webui 0.12.4: booleans `.lower() == 'true'`, numbers `int(...)`, JSON
    settings `JSONCodec.loads(...)`, CORS_ALLOW_ORIGIN `.split(';')`."""
    env = {
        "ENABLE_RAG_HYBRID_SEARCH": True,
        "ENABLE_MEMORIES": False,
        "RAG_TOP_K_RERANKER": 3,
        "RAG_RELEVANCE_THRESHOLD": 0.25,
        "TIKTOKEN_ENCODING_NAME": "o200k_base",
        "WEB_SEARCH_DOMAIN_FILTER_LIST": ["example.org", "wikipedia.org"],
        "DEFAULT_MODEL_PARAMS": {"temperature": 0.2, "stop": ["<|end|>"]},
        "CORS_ALLOW_ORIGIN": ["https://a.lan", "https://b.lan"],
    }
    clear = yaml.safe_load(render(with_webui(seed(), env=env), "v1").deploy_yml)["env"]["clear"]
    assert clear["ENABLE_RAG_HYBRID_SEARCH"] == "True" and clear["ENABLE_MEMORIES"] == "False"
    assert clear["RAG_TOP_K_RERANKER"] == "3" and clear["RAG_RELEVANCE_THRESHOLD"] == "0.25"
    assert clear["TIKTOKEN_ENCODING_NAME"] == "o200k_base"
    assert json.loads(clear["WEB_SEARCH_DOMAIN_FILTER_LIST"]) == ["example.org", "wikipedia.org"]
    assert json.loads(clear["DEFAULT_MODEL_PARAMS"]) == {"temperature": 0.2, "stop": ["<|end|>"]}
    assert clear["CORS_ALLOW_ORIGIN"] == "https://a.lan;https://b.lan"


def test_cloud_models_render_as_the_connection_model_filter() -> None:
    desired = with_webui(
        seed(),
        cloud=[
            {"name": "all", "base_url": "https://llm.example/v1", "api_key": {"env": "K1"}},
            {
                "name": "openai",
                "base_url": "https://api.openai.com/v1",
                "api_key": {"env": "K2"},
                "models": ["gpt-4o-mini", "gpt-4o"],
            },
        ],
    )
    clear = yaml.safe_load(render(desired, "v1").deploy_yml)["env"]["clear"]
    # routers/openai.py: a connection with model_ids lists exactly those; one absent from
    # the configs (index 0 here) lists the provider's whole catalogue
    assert json.loads(clear["OPENAI_API_CONFIGS"]) == {
        "1": {"enable": True, "model_ids": ["gpt-4o-mini", "gpt-4o"]}
    }
    assert "OPENAI_API_CONFIGS" not in yaml.safe_load(render(seed(), "v1").deploy_yml)["env"]["clear"]


def test_env_secret_by_reference_goes_to_kamal_secrets_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TAVILY_KEY", "tvly-live-123")
    allow_secrets(
        monkeypatch,
        tmp_path,
        env=["TAVILY_KEY"],
        send_to={"TAVILY_KEY": ["openwebui-env:TAVILY_API_KEY"]},
    )
    desired = with_webui(seed(), env={"TAVILY_API_KEY": {"env": "TAVILY_KEY"}, "ENABLE_WEB_SEARCH": True})
    project = render(desired, "v1")
    config = yaml.safe_load(project.deploy_yml)
    assert "TAVILY_API_KEY" in config["env"]["secret"] and "TAVILY_API_KEY" not in config["env"]["clear"]
    values = write_project(project, desired, tmp_path / "p")
    assert values["TAVILY_API_KEY"] == "tvly-live-123"
    assert "TAVILY_API_KEY='tvly-live-123'" in (tmp_path / "p" / ".kamal" / "secrets").read_text()
    assert "tvly-live-123" not in (tmp_path / "p" / "config" / "deploy.yml").read_text()


def test_env_secret_needs_the_owner_to_allow_that_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A commit cannot hand an allowed secret to a setting of its choosing (which OpenWebUI
    would send to that setting's service): the server names the setting in send_to."""
    monkeypatch.setenv("OPENAI_KEY", "sk-live-abc")
    allow_secrets(
        monkeypatch,
        tmp_path,
        env=["OPENAI_KEY"],
        send_to={"OPENAI_KEY": ["api.openai.com"]},
    )
    desired = with_webui(seed(), env={"RAG_OPENAI_API_KEY": {"env": "OPENAI_KEY"}})
    with pytest.raises(SecretUnavailable, match="openwebui-env:RAG_OPENAI_API_KEY") as info:
        write_project(render(desired, "v1"), desired, tmp_path / "p")
    assert "sk-live-abc" not in str(info.value)


def test_the_reconciler_reaches_openwebui_through_kamal_proxy_on_loopback() -> None:
    assert default_url(seed()) == "https://127.0.0.1"  # 127.0.0.1 is a host and in the certificate
    assert default_url(with_webui(seed(), exposure__https_port=8443)) == "https://127.0.0.1:8443"
    assert default_url(with_webui(seed(), exposure__tls__enabled=False)) == "http://127.0.0.1"
    assert default_url(published(exposure__port=3001)) == "http://127.0.0.1:3001"
