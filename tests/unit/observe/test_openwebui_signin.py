"""How the reconciler signs in to OpenWebUI, by what the running OpenWebUI says of its login
(`/api/config`) and what git says: a seam test against OpenWebUI's answers as 0.12.4 gives them
(routers/auths.py signin; the real OpenWebUI is signed in to in tests/e2e)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from reconciler.desired.load import load_desired
from reconciler.desired.schema import DesiredState
from reconciler.desired.source import DirSource
from reconciler.openwebui import client as client_mod
from reconciler.openwebui.client import LoginLocked, OpenWebUIRefused, connect_desired
from tests.harness.server_config import allow_secrets

FAMILY = Path(__file__).resolve().parents[3] / "examples" / "family"
OWNER_PASSWORD = "Owner-Pass-1!"
URL = "http://127.0.0.1:3000"  # where the reconciler reaches it on the server: the password may go there


@pytest.fixture
def family(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DesiredState:
    allow_secrets(monkeypatch, tmp_path, files={"openwebui-admin.password": OWNER_PASSWORD})
    return load_desired(DirSource(FAMILY))


def _openwebui(
    monkeypatch: pytest.MonkeyPatch, *, login: bool, accounts: dict[str, str], onboarding: bool = False
) -> list[tuple[str, str]]:
    """OpenWebUI's answers: `accounts` e-mail → password; the sign-ins tried are returned."""
    tried: list[tuple[str, str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/config":
            return httpx.Response(
                200, json={"features": {"auth": login}, **({"onboarding": True} if onboarding else {})}
            )
        body = json.loads(request.content)
        tried.append((body["email"], body["password"]))
        if not login and accounts.get("admin@localhost") == "admin":
            return httpx.Response(200, json={"token": "t", "email": "admin@localhost", "role": "admin"})
        if login and accounts.get(body["email"]) == body["password"]:
            return httpx.Response(200, json={"token": "t", "email": body["email"], "role": "admin"})
        return httpx.Response(400, json={"detail": "The email or password provided is incorrect."})

    def make(timeout: float) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(handle), timeout=timeout)

    monkeypatch.setattr(client_mod, "http_client", make)
    return tried


def test_with_login_on_the_owner_signs_in_by_their_reference(
    family: DesiredState, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried = _openwebui(monkeypatch, login=True, accounts={"sam@home.lan": OWNER_PASSWORD})
    client = connect_desired(family, URL)
    assert client.signed_in_as == "sam@home.lan" and tried == [("sam@home.lan", OWNER_PASSWORD)]


def test_before_the_deploy_that_turns_login_on_it_signs_in_as_the_built_in_admin(
    family: DesiredState, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried = _openwebui(monkeypatch, login=False, accounts={"admin@localhost": "admin"})
    client = connect_desired(family, URL)
    assert client.signed_in_as == "admin@localhost" and tried == [("", "")]  # no password sent


def test_login_just_turned_on_falls_back_to_the_built_in_admin_to_adopt_it(
    family: DesiredState, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried = _openwebui(monkeypatch, login=True, accounts={"admin@localhost": "admin"})
    client = connect_desired(family, URL)
    assert client.signed_in_as == "admin@localhost"
    assert tried == [("sam@home.lan", OWNER_PASSWORD), ("admin@localhost", "admin")]


def test_a_wrong_owner_password_is_the_owners_error_not_the_fallbacks(
    family: DesiredState, monkeypatch: pytest.MonkeyPatch
) -> None:
    _openwebui(monkeypatch, login=True, accounts={"sam@home.lan": "changed-in-the-ui"})
    with pytest.raises(OpenWebUIRefused) as refused:
        connect_desired(family, URL)
    assert "sign-in as sam@home.lan" in str(refused.value) and OWNER_PASSWORD not in str(refused.value)


def test_turning_login_off_over_accounts_is_seen_as_locked(
    family: DesiredState, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert family.openwebui is not None
    off = family.model_copy(update={"openwebui": family.openwebui.model_copy(update={"auth": False})})
    tried = _openwebui(monkeypatch, login=True, accounts={"sam@home.lan": OWNER_PASSWORD})
    with pytest.raises(LoginLocked):
        connect_desired(off, URL)
    assert tried == []
    _openwebui(monkeypatch, login=True, accounts={}, onboarding=True)  # no account yet: not locked
    with pytest.raises(OpenWebUIRefused) as refused:
        connect_desired(off, URL)
    assert not isinstance(refused.value, LoginLocked)
