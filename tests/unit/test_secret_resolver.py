"""The one secret resolver and the server's reconciler.toml: names only, inside the secrets
directory, for the destinations allowed; clear errors that never show a value."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.desired.schema import SecretRef
from reconciler.secrets import SecretRefused, SecretUnavailable, resolve_secret
from reconciler.serverconfig import ServerConfigInvalid, load_policy
from tests.harness.server_config import write_config

VALUE = "s3cr3t-value-9f2c"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "etc" / "reconciler.toml",
        env=["TOKEN"],
        files={"api.key": VALUE},
        send_to={"api.key": ["https://api.example.com/v1"], "TOKEN": ["image:ghcr.io/x/y"]},
    )


def test_a_file_secret_resolves_inside_the_directory_for_an_allowed_host(config: Path) -> None:
    policy = load_policy(config)
    assert resolve_secret(SecretRef(file="api.key"), ["api.example.com", "127.0.0.1"], policy=policy) == VALUE
    with pytest.raises(SecretRefused, match=r"evil\.example") as info:
        resolve_secret(SecretRef(file="api.key"), ["evil.example"], policy=policy)
    assert VALUE not in str(info.value) and "send_to" in str(info.value)


def test_an_env_secret_must_be_listed(config: Path) -> None:
    policy = load_policy(config)
    environ = {"TOKEN": VALUE, "AWS_SECRET_ACCESS_KEY": "aws"}
    assert (
        resolve_secret(SecretRef(env="TOKEN"), ["image:ghcr.io/x/y"], policy=policy, environ=environ) == VALUE
    )
    with pytest.raises(SecretRefused, match="not in the env allow-list"):
        resolve_secret(SecretRef(env="AWS_SECRET_ACCESS_KEY"), ["127.0.0.1"], policy=policy, environ=environ)


def test_a_missing_config_allows_no_secret_and_says_how(tmp_path: Path) -> None:
    policy = load_policy(tmp_path / "none.toml")
    with pytest.raises(SecretRefused, match=r"allows no secrets.*create .*none\.toml"):
        resolve_secret(SecretRef(env="TOKEN"), ["127.0.0.1"], policy=policy, environ={"TOKEN": VALUE})


def test_a_secrets_directory_others_can_open_is_refused(config: Path) -> None:
    folder = config.parent / "secrets"
    folder.chmod(0o755)
    with pytest.raises(SecretUnavailable, match="chmod 700") as info:
        resolve_secret(SecretRef(file="api.key"), ["api.example.com"], policy=load_policy(config))
    assert VALUE not in str(info.value)


def test_a_link_in_the_secrets_directory_is_not_followed(config: Path, tmp_path: Path) -> None:
    (tmp_path / "outside").write_text("outside-value\n")
    os.symlink(tmp_path / "outside", config.parent / "secrets" / "linked.key")
    with pytest.raises(SecretUnavailable, match="cannot be read"):
        resolve_secret(SecretRef(file="linked.key"), ["127.0.0.1"], policy=load_policy(config))


def test_an_unknown_destination_is_refused(config: Path) -> None:
    with pytest.raises(SecretRefused, match="does not say where"):
        resolve_secret(SecretRef(file="api.key"), [], policy=load_policy(config))


@pytest.mark.parametrize(
    "text",
    ["[secrets\n", "[secrets]\ndirr = '/x'\n", "[secrets]\ndir = 'relative'\n", "[secrets]\nenv = 'X'\n",
     "[secrets]\nsend_to = {X = 'h'}\n", "[secrets.send_to]\nX = ['a b']\n"],
)  # fmt: skip
def test_a_bad_config_is_a_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "reconciler.toml"
    path.write_text(text)
    with pytest.raises(ServerConfigInvalid, match=str(path)):
        load_policy(path)


def test_config_outside_the_secrets_table_is_left_to_other_readers(tmp_path: Path) -> None:
    path = tmp_path / "reconciler.toml"
    path.write_text("[server]\nstate_dir = '/var/lib/reconciler'\n")
    policy = load_policy(path)
    assert policy.present and policy.dir is None and not policy.env


def test_an_openwebui_setting_is_a_destination_the_owner_names(tmp_path: Path) -> None:
    """`openwebui-env:SETTING`: a secret given to that OpenWebUI `env` setting (and no other)."""
    path = write_config(tmp_path / "r.toml", send_to={"tavily.key": ["openwebui-env:TAVILY_API_KEY"]})
    assert load_policy(path).send_to["tavily.key"] == ("openwebui-env:TAVILY_API_KEY",)
    bad = write_config(tmp_path / "bad.toml", send_to={"tavily.key": ["openwebui-env:tavily"]})
    with pytest.raises(ServerConfigInvalid, match="does not name an OpenWebUI setting"):
        load_policy(bad)
