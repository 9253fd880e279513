"""People, groups and access grants planned from (desired, observed): pure, typed actions with
reasons and field diffs; passwords only ever as references."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reconciler.apply.table import simulate
from reconciler.desired.load import load_desired
from reconciler.desired.schema import DesiredState
from reconciler.desired.secrets import uses_of
from reconciler.desired.source import DirSource
from reconciler.kamal.render import ADMIN_PASSWORD_SECRET, clear_env, secret_needs
from reconciler.observed import (
    DeployedObs,
    Grant,
    GroupObs,
    Ledger,
    LedgerKnowledge,
    ModelRow,
    Observed,
    OpenWebUIObs,
    Person,
)
from reconciler.plan.actions import (
    Action,
    AdoptAdmin,
    CreateGroup,
    CreateUser,
    DeleteGroup,
    DeleteUser,
    Plan,
    SetAccess,
    UpdateGroup,
    UpdateUser,
)
from reconciler.plan.kamal import deploy_hash
from reconciler.plan.openwebui import plan_openwebui, settings_hash
from reconciler.plan.people import login_violations
from reconciler.plan.planner import plan
from tests.unit.desired.example_repo import line_of, problems

FAMILY = Path(__file__).resolve().parents[3] / "examples" / "family"
OWNER = Person(id="u-sam", email="sam@home.lan", name="Sam (owner)", role="admin")


@pytest.fixture(scope="module")
def family() -> DesiredState:
    return load_desired(DirSource(FAMILY))


def _plan(desired: DesiredState, view: OpenWebUIObs, ledger: Ledger | None = None) -> list[Action]:
    seen = Observed(openwebui=view, ledger=ledger or Ledger(), deployed=DeployedObs())
    actions, _ = plan_openwebui(desired, seen, "desired since abc1234", waiting=None)
    return actions


def _converged(desired: DesiredState, view: OpenWebUIObs) -> Observed:
    """OpenWebUI once the plan for it ran (the executors' promised effects), remembered as converged."""
    seen = Observed(openwebui=view, ledger=Ledger(), deployed=DeployedObs())
    actions, _ = plan_openwebui(desired, seen, "desired", waiting=None)
    after = simulate(Plan(actions=tuple(actions)), seen)
    return after.model_copy(update={"deployed": DeployedObs(openwebui_settings_hash=settings_hash(desired))})


def _first_boot() -> OpenWebUIObs:
    """A fresh OpenWebUI: only the admin OpenWebUI made from WEBUI_ADMIN_* at start-up."""
    return OpenWebUIObs(reachable=True, users=(OWNER,))


def test_the_family_example_validates_with_its_people() -> None:
    desired = load_desired(DirSource(FAMILY))
    webui = desired.openwebui
    assert webui is not None and webui.auth and webui.exposure.tls.enabled
    assert webui.admin() is not None and webui.admin().email == "sam@home.lan"  # type: ignore[union-attr]
    assert [g.name for g in webui.groups] == ["grown-ups", "kids"]
    assert webui.model_access["phi3:mini"].groups == ["grown-ups", "kids"]


def test_a_fresh_openwebui_gets_every_account_group_and_grant(family: DesiredState) -> None:
    actions = _plan(family, _first_boot())
    users = [a for a in actions if isinstance(a, CreateUser)]
    assert [u.email for u in users] == ["alex@home.lan", "mia@home.lan", "leo@home.lan"]  # not the admin
    groups = {a.name: a.members for a in actions if isinstance(a, CreateGroup)}
    assert groups == {"grown-ups": ("alex@home.lan",), "kids": ("leo@home.lan", "mia@home.lan")}
    access = {
        (a.target, a.id): [p.label() for p in a.principals] for a in actions if isinstance(a, SetAccess)
    }
    assert access == {
        ("model", "homework-helper"): ["group grown-ups", "group kids"],
        ("model", "llama3-family"): ["group grown-ups"],
        ("model", "llama3:8b-instruct-q4_K_M"): ["group grown-ups"],
        ("model", "phi3:mini"): ["group grown-ups", "group kids"],
        ("knowledge", "homework"): ["group grown-ups", "group kids"],
    }
    kids = next(a for a in actions if isinstance(a, SetAccess) and a.id == "phi3:mini")
    assert "group:kids" in kids.needs() and "group:grown-ups" in kids.needs()  # a failed group blocks it
    assert all(a.reason for a in actions)


def test_passwords_stay_references_in_the_plan(family: DesiredState, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIA_PASSWORD", "never-shown-anywhere")
    actions = _plan(family, _first_boot())
    text = json.dumps([a.model_dump(mode="json") for a in actions]) + "".join(a.title() for a in actions)
    assert "never-shown-anywhere" not in text
    mia = next(a for a in actions if isinstance(a, CreateUser) and a.email == "mia@home.lan")
    assert mia.password.describe() == "file:mia.password"
    assert "file:mia.password" in mia.title()


def test_planning_again_after_the_effects_plans_nothing(family: DesiredState) -> None:
    after = _converged(family, _first_boot())
    assert after.openwebui is not None
    actions, _ = plan_openwebui(family, after, "desired", waiting=None)
    people = [
        a for a in actions if isinstance(a, (CreateUser, CreateGroup, UpdateGroup, SetAccess, UpdateUser))
    ]
    assert people == []


def test_a_hand_edit_of_a_managed_group_is_put_back_with_its_diff(family: DesiredState) -> None:
    after = _converged(family, _first_boot())
    view = after.openwebui
    assert view is not None
    kids = view.group_by_name()["kids"]
    # An admin, by hand: Leo out of kids, Alex into it, a new description.
    users = tuple(
        u.model_copy(update={"group_ids": ()}) if u.email == "leo@home.lan"
        else u.model_copy(update={"group_ids": (*u.group_ids, kids.id)}) if u.email == "alex@home.lan"
        else u
        for u in view.users
    )  # fmt: skip
    groups = tuple(
        g.model_copy(update={"description": "anything"}) if g.id == kids.id else g for g in view.groups
    )
    edited = after.model_copy(
        update={"openwebui": view.model_copy(update={"users": users, "groups": groups})}
    )
    actions, _ = plan_openwebui(family, edited, "desired", waiting=None)
    (update,) = [a for a in actions if isinstance(a, UpdateGroup)]
    assert update.reason == "changed in OpenWebUI by hand: description, members"
    assert update.add == ("leo@home.lan",)
    assert update.remove == ("user-alex@home.lan",)
    assert update.details() == (
        'description: "anything" → "Phi3 and the homework knowledge base only"',
        'members: ["alex@home.lan", "mia@home.lan"] → ["leo@home.lan", "mia@home.lan"]',
    )


def test_a_hand_made_account_and_group_are_left_alone_unless_prune(family: DesiredState) -> None:
    stranger = Person(id="u-x", email="guest@home.lan", name="Guest", role="user")
    other_admin = Person(id="u-y", email="gran@home.lan", name="Gran", role="admin")
    club = GroupObs(id="g-club", name="book-club")
    view = _first_boot().model_copy(update={"users": (OWNER, stranger, other_admin), "groups": (club,)})
    kinds = {type(a) for a in _plan(family, view)}
    assert DeleteUser not in kinds and DeleteGroup not in kinds
    webui = family.openwebui
    assert webui is not None
    pruning = family.model_copy(update={"openwebui": webui.model_copy(update={"prune": True})})
    removed = [(type(a).__name__, getattr(a, "email", getattr(a, "name", ""))) for a in _plan(pruning, view)]
    assert ("DeleteUser", "guest@home.lan") in removed
    assert ("DeleteGroup", "book-club") in removed
    assert ("DeleteUser", "gran@home.lan") not in removed  # never an admin


def test_a_group_the_reconciler_made_goes_when_git_drops_it(family: DesiredState) -> None:
    old = GroupObs(id="g-old", name="cousins")
    view = _first_boot().model_copy(update={"groups": (old,)})
    actions = _plan(family, view, Ledger(groups={"cousins": "g-old"}))
    assert [a.id for a in actions if isinstance(a, DeleteGroup)] == ["g-old"]


def test_name_and_role_follow_git_and_grants_by_hand_are_replaced(family: DesiredState) -> None:
    alex = Person(id="u-alex", email="alex@home.lan", name="Al", role="pending")
    row = ModelRow(id="phi3:mini", name="phi3:mini", access=(Grant(principal_type="user", principal_id="*"),))
    kb = LedgerKnowledge(id="kb-1")
    view = _first_boot().model_copy(update={"users": (OWNER, alex), "rows": (row,)})
    actions = _plan(family, view, Ledger(knowledge={"homework": kb}))
    (update,) = [a for a in actions if isinstance(a, UpdateUser)]
    assert update.details() == ('name: "Al" → "Alex"', 'role: "pending" → "user"')
    phi = next(a for a in actions if isinstance(a, SetAccess) and a.id == "phi3:mini")
    assert phi.details() == ('access: ["everyone"] → ["group grown-ups", "group kids"]',)


def test_an_invited_user_waits_for_their_signup(family: DesiredState) -> None:
    webui = family.openwebui
    assert webui is not None
    data = webui.model_dump(mode="json")
    data["signup"] = {"enabled": True, "default_role": "pending"}
    data["users"].append({"name": "Gran", "email": "gran@home.lan"})
    invited = family.model_copy(update={"openwebui": type(webui).model_validate(data)})
    assert "gran@home.lan" not in [
        a.email for a in _plan(invited, _first_boot()) if isinstance(a, CreateUser)
    ]
    signed_up = _first_boot().model_copy(
        update={"users": (OWNER, Person(id="u-g", email="gran@home.lan", name="Gran", role="pending"))}
    )
    (role,) = [a for a in _plan(invited, signed_up) if isinstance(a, UpdateUser)]
    assert role.details() == ('role: "pending" → "user"',)


def test_the_first_admin_reaches_the_container_by_reference_and_people_do_not_redeploy(
    family: DesiredState,
) -> None:
    env = clear_env(family)
    assert env["WEBUI_ADMIN_EMAIL"] == "sam@home.lan" and env["ENABLE_SIGNUP"] == "False"
    assert ADMIN_PASSWORD_SECRET not in env
    need = next(s for s in secret_needs(family) if s.name == ADMIN_PASSWORD_SECRET)
    assert [r.describe() for r in need.refs] == ["file:openwebui-admin.password"]
    admin_use = next(u for u in uses_of(family) if u.path == ("users", 0, "password"))
    assert "127.0.0.1" in admin_use.destinations  # the reconciler signs in with it
    kid_use = next(u for u in uses_of(family) if u.path == ("users", 2, "password"))
    assert kid_use.destinations == ("127.0.0.1",)  # only the admin API on loopback
    webui = family.openwebui
    assert webui is not None
    fewer = webui.model_copy(update={"groups": webui.groups[:1], "model_access": {}})
    assert deploy_hash(family.model_copy(update={"openwebui": fewer})) == deploy_hash(family)


@pytest.mark.parametrize(
    ("old", "new", "needle", "field", "message"),
    [
        ("[mia@home.lan, leo@home.lan]", "[mia@home.lan, zoe@home.lan]", "members: [mia",
         "groups[1].members[1]", "zoe@home.lan is not the e-mail of one of users"),
        ("phi3:mini: {groups: [grown-ups, kids]}", "phi3:mini: {groups: [kidz]}", "phi3:mini: {groups",
         "model_access.phi3:mini.groups[0]", "kidz is not one of groups"),
        ("    password: {file: leo.password}\n", "\n", "email: leo@home.lan", "users[3].password",
         "no password means invited: set signup: {enabled: true}"),
    ],
)  # fmt: skip
def test_people_mistakes_name_file_line_and_field(
    tmp_path: Path, old: str, new: str, needle: str, field: str, message: str
) -> None:
    repo = tmp_path / "family"
    shutil.copytree(FAMILY, repo)
    text = (repo / "openwebui.yaml").read_text()
    assert old in text
    (repo / "openwebui.yaml").write_text(text.replace(old, new, 1))
    (problem,) = problems(repo)
    assert (problem.file, problem.field, problem.message) == ("openwebui.yaml", field, message)
    assert abs(problem.line - line_of(repo, "openwebui.yaml", needle)) <= 1


# ── login turned on over a one-person OpenWebUI, and off again ───────────────────────────────

BUILTIN = Person(id="u-builtin", email="admin@localhost", name="User", role="admin")


def _one_person_era() -> OpenWebUIObs:
    """An OpenWebUI that ran with login off: its one account is the built-in admin, and the
    reconciler could sign in only as that account (login on, git's admin has no account)."""
    return OpenWebUIObs(reachable=True, users=(BUILTIN,), signed_in_as="admin@localhost", login=True)


def test_the_built_in_admin_becomes_the_owner_when_login_is_turned_on(family: DesiredState) -> None:
    actions = _plan(family, _one_person_era())
    (adopt,) = [a for a in actions if isinstance(a, AdoptAdmin)]
    assert (adopt.id, adopt.was, adopt.email, adopt.name) == (
        "u-builtin",
        "admin@localhost",
        "sam@home.lan",
        "Sam (owner)",
    )
    assert adopt.password.describe() == "file:openwebui-admin.password"
    assert "its chats kept" in adopt.title() and "admin@localhost" in adopt.reason
    assert actions[0] == adopt  # before the groups and grants that may name the owner
    created = [a.email for a in actions if isinstance(a, CreateUser)]
    assert created == ["alex@home.lan", "mia@home.lan", "leo@home.lan"]  # the owner is not made twice
    # the effect it promises: the next plan, signed in as the owner, adopts nothing again
    after = simulate(
        Plan(actions=tuple(actions)), Observed(openwebui=_one_person_era(), deployed=DeployedObs())
    )
    assert after.openwebui is not None
    assert {u.email for u in after.openwebui.users} >= {"sam@home.lan"} and "admin@localhost" not in {
        u.email for u in after.openwebui.users
    }
    assert not [a for a in _plan(family, after.openwebui) if isinstance(a, (AdoptAdmin, CreateUser))]


def test_the_built_in_admin_is_left_alone_once_the_owner_has_an_account(family: DesiredState) -> None:
    both = OpenWebUIObs(reachable=True, users=(BUILTIN, OWNER), signed_in_as="sam@home.lan")
    assert not [a for a in _plan(family, both) if isinstance(a, AdoptAdmin)]
    # signed in as the owner on a fresh install: nothing to adopt either
    assert not [a for a in _plan(family, _first_boot()) if isinstance(a, AdoptAdmin)]
    # login still off there (its deploy held back): OpenWebUI signs everyone in by that e-mail
    still_off = _one_person_era().model_copy(update={"login": False})
    assert not [a for a in _plan(family, still_off) if isinstance(a, AdoptAdmin)]


def test_turning_login_off_over_accounts_is_refused_with_the_fix(family: DesiredState) -> None:
    assert family.openwebui is not None
    off = family.model_copy(update={"openwebui": family.openwebui.model_copy(update={"auth": False})})
    locked = Observed(openwebui=OpenWebUIObs(reachable=False, login_locked=True))
    (violation,) = login_violations(off, locked)
    assert violation.budget == "login" and "keep `auth: true`" in violation.message
    refused = plan(off, locked)
    assert refused.refused and refused.actions == ()  # nothing deployed, OpenWebUI as it was
    assert login_violations(family, locked) == []  # login stays on: nothing to refuse
    assert login_violations(off, Observed(openwebui=OpenWebUIObs(reachable=True))) == []
