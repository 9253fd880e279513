"""The family example's people through the real OpenWebUI 0.12.4 with login on (`auth: true`).

OpenWebUI runs as a process with the environment the reconciler renders for the family
example (`clear_env`, plus WEBUI_ADMIN_PASSWORD as Kamal's secrets file would carry it), so
the owner's account is made by OpenWebUI itself at first start. The reconciler then signs in
with the owner's password (resolved from its reference under the server's secrets policy) and
converges accounts, groups and grants through the admin API; each person then signs in with
their own password and sees only what git grants them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import docker
import httpx
import pytest

from reconciler.apply.context import ExecContext
from reconciler.apply.runner import Runner
from reconciler.desired.load import load_desired
from reconciler.desired.schema import DesiredState
from reconciler.desired.source import DirSource
from reconciler.kamal.render import ADMIN_PASSWORD_SECRET, clear_env
from reconciler.observe.openwebui import observe_openwebui
from reconciler.observed import DeployedObs, Observed
from reconciler.openwebui.client import OpenWebUIClient, OpenWebUIRefused, connect_desired
from reconciler.plan.actions import Action, Plan, UpdateGroup
from reconciler.plan.openwebui import plan_openwebui, settings_hash
from reconciler.report.events import EventBus
from reconciler.state.store import StateStore
from tests.harness.browser import ARTIFACTS, open_page, selected_model
from tests.harness.openwebui import HostOllama, OpenWebUIServer, openwebui_process
from tests.harness.server_config import write_config

pytestmark = pytest.mark.e2e

FAMILY = Path(__file__).resolve().parents[2] / "examples" / "family"
PASSWORDS = {  # secret files of the test's own secrets directory, never in git
    "openwebui-admin.password": "Owner-Pass-1!",
    "alex.password": "Alex-Pass-2!",
    "mia.password": "Mia-Pass-3!",
    "leo.password": "Leo-Pass-4!",
}
LOGINS = {
    "sam@home.lan": ("openwebui-admin.password", "admin"),
    "alex@home.lan": ("alex.password", "user"),
    "mia@home.lan": ("mia.password", "user"),
    "leo@home.lan": ("leo.password", "user"),
}


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rcl-owui-people-") as tmp:
        root = Path(tmp)
        shutil.copytree(FAMILY, root / "repo")
        (root / "state").mkdir()
        yield root


@pytest.fixture(autouse=True)
def policy(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's reconciler.toml: the four password files in its secrets directory (after
    the suite's own autouse fixture, which points every test at a missing one)."""
    path = write_config(work / "etc" / "reconciler.toml", files=PASSWORDS)
    monkeypatch.setenv("RECONCILER_CONFIG", str(path))


def _desired(work: Path) -> DesiredState:
    return load_desired(DirSource(work / "repo"))


@pytest.fixture(scope="module")
def server(openwebui_venv: Path, host_ollama: HostOllama, work: Path) -> Iterator[OpenWebUIServer]:
    desired = _desired(work)
    host_ollama.seed(*(m.name for m in desired.ollama.all_models()))
    env = clear_env(desired, ollama_url=host_ollama.url)
    env[ADMIN_PASSWORD_SECRET] = PASSWORDS["openwebui-admin.password"]  # Kamal's secrets file carries it
    with openwebui_process(openwebui_venv, work / "webui", env) as srv:
        yield srv


def _reader(root: Path):  # type: ignore[no-untyped-def]
    def read(name: str, path: str) -> bytes | None:
        target = root / "knowledge" / name / path
        return target.read_bytes() if target.is_file() else None

    return read


def _plan(desired: DesiredState, client: OpenWebUIClient, store: StateStore) -> list[Action]:
    """OpenWebUI's part of the plan, once its settings were converged (a difference is a hand edit)."""
    ledger = store.load_ledger()
    deployed = DeployedObs(openwebui_settings_hash=settings_hash(desired))
    seen = Observed(openwebui=observe_openwebui(client, ledger.own_ids()), ledger=ledger, deployed=deployed)
    actions, _ = plan_openwebui(desired, seen, "desired", waiting=None)
    return actions


def _converge(server: OpenWebUIServer, work: Path) -> tuple[list[Action], OpenWebUIClient]:
    """One pass, signed in as the executors sign in: `connect_desired` with the owner's password."""
    desired, store = _desired(work), StateStore(work / "state")
    ctx = ExecContext(
        desired=desired,
        docker=docker.DockerClient(base_url="unix:///run/docker.sock"),  # not used by these executors
        state=store,
        events=EventBus(),
        now=lambda: datetime.now(UTC),
        read_knowledge=_reader(work / "repo"),
        openwebui_url=server.url,
        api_timeout=30,
    )
    client = ctx.openwebui()
    actions = _plan(desired, client, store)
    outcome = Runner(ctx).run(Plan(actions=tuple(actions)))
    assert outcome.ok, [str(f.error) for f in outcome.failed]
    return actions, client


def _signin(server: OpenWebUIServer, email: str) -> tuple[OpenWebUIClient, dict[str, object]]:
    client = OpenWebUIClient(server.url, timeout=30)
    return client, client.signin(email, PASSWORDS[LOGINS[email][0]])


def test_family_people_converge_and_each_signs_in_with_their_password(
    server: OpenWebUIServer, work: Path
) -> None:
    config = httpx.get(f"{server.url}/api/config", timeout=10).json()
    assert config["features"]["auth"] is True and config["features"]["enable_signup"] is False
    _, admin = _converge(server, work)  # the module's tests run in any order: maybe not the first pass
    emails = {str(u["email"]) for u in admin.users()}
    assert emails >= set(LOGINS)  # the owner from WEBUI_ADMIN_*, the others through the API
    homework = next(k for k in admin.knowledge_bases() if k["name"] == "homework")
    assert {g["principal_type"] for g in homework["access_grants"]} == {"group"}
    second, again = _converge(server, work)
    assert second == [], [a.title() for a in second]
    assert again.writes == []  # a second pass makes no API writes
    for email, (_, role) in LOGINS.items():
        _, me = _signin(server, email)
        assert (me["email"], me["role"]) == (email, role)
    with pytest.raises(OpenWebUIRefused):
        OpenWebUIClient(server.url).signin("mia@home.lan", "not-her-password")
    log = server.log.read_text(errors="replace")
    assert not [p for p in PASSWORDS.values() if p in log]  # OpenWebUI's log holds none either


def test_a_kid_sees_only_phi3_the_homework_preset_and_the_homework_base(
    server: OpenWebUIServer, work: Path
) -> None:
    _converge(server, work)
    kid, _ = _signin(server, "mia@home.lan")
    assert sorted(m["id"] for m in kid.models()) == ["homework-helper", "phi3:mini"]
    assert [k["name"] for k in kid.knowledge_bases()] == ["homework"]
    rights = kid.permissions()  # the family's USER_PERMISSIONS_* env settings, as OpenWebUI reads them
    assert rights["chat"]["delete"] is False and rights["workspace"]["models"] is False
    assert kid.config()["features"]["enable_memories"] is True
    grown_up, _ = _signin(server, "alex@home.lan")
    assert sorted(m["id"] for m in grown_up.models()) == [
        "homework-helper",
        "llama3-family",
        "llama3:8b-instruct-q4_K_M",
        "phi3:mini",
    ]


def test_a_hand_edit_of_a_managed_group_is_put_back_and_a_hand_made_user_stays(
    server: OpenWebUIServer, work: Path
) -> None:
    _, admin = _converge(server, work)
    desired, store = _desired(work), StateStore(work / "state")
    kids = next(g for g in admin.groups() if g["name"] == "kids")
    users = {str(u["email"]): str(u["id"]) for u in admin.users()}
    admin.group_members(kids["id"], [users["leo@home.lan"]], add=False)  # an admin, by hand
    admin.group_members(kids["id"], [users["alex@home.lan"]], add=True)
    guest = admin.add_user("Guest", "guest@home.lan", "Guest-Pass-5!", "user")  # made by hand
    (fix,) = _plan(desired, admin, store)
    assert isinstance(fix, UpdateGroup) and fix.reason == "changed in OpenWebUI by hand: members"
    assert fix.details() == ('members: ["alex@home.lan", "mia@home.lan"] → ["leo@home.lan", "mia@home.lan"]',)
    _converge(server, work)
    members = sorted(str(u["email"]) for u in admin.users() if kids["id"] in u.get("group_ids", []))
    assert members == ["leo@home.lan", "mia@home.lan"]
    assert guest in {str(u["id"]) for u in admin.users()}  # left alone
    assert _plan(desired, admin, store) == []
    leo, _ = _signin(server, "leo@home.lan")
    assert sorted(m["id"] for m in leo.models()) == ["homework-helper", "phi3:mini"]


def test_the_reconciler_signs_in_with_the_admins_reference_not_a_stored_token(
    server: OpenWebUIServer, work: Path
) -> None:
    client = connect_desired(_desired(work), server.url, timeout=30)
    assert "Owner-Pass-1!" not in repr(client)
    assert client.users()  # an admin endpoint


def test_with_login_on_the_browser_gets_the_sign_in_screen(server: OpenWebUIServer, tmp_path: Path) -> None:
    """Headless Chromium on the family's OpenWebUI (login on): the sign-in form, not a chat.
    (This instance is a process on loopback; the same form on the HTTPS LAN origin with the local
    CA, once the family example is pushed over the whole stack: tests/e2e/test_fullstack.py.)"""
    shot = ARTIFACTS / "openwebui-signin.png"
    page = open_page(server.url + "/", shot, tmp_path / "profile", ready=lambda dom: 'type="password"' in dom)
    assert 'type="password"' in page and 'type="email"' in page, page[-3000:]
    assert selected_model(page) is None  # no chat page behind it
