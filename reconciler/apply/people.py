"""The executors for OpenWebUI's accounts, groups and access grants, each a call or two of its
admin API, with the effect it promises beside it. Names (e-mails, group names, knowledge base
names) become OpenWebUI's ids here, at the moment of the call: an account or group made
earlier in the same run is found. A password is resolved here and sent only to OpenWebUI."""

from __future__ import annotations

from reconciler.apply.context import ExecContext
from reconciler.apply.world import World
from reconciler.desired.secrets import host_of
from reconciler.errors import Conflict
from reconciler.observed import Grant, GroupObs, Ledger, ModelRow, OpenWebUIObs, Person
from reconciler.openwebui.client import OpenWebUIClient
from reconciler.plan.actions import (
    AdoptAdmin,
    CreateGroup,
    CreateUser,
    DeleteGroup,
    DeleteUser,
    Principal,
    SetAccess,
    UpdateGroup,
    UpdateUser,
)
from reconciler.plan.people import EVERYONE
from reconciler.secrets import resolve_secret


class NoSuchAccount(Conflict):
    """A group member or grant names an e-mail OpenWebUI has no account for (yet): an invited
    person who has not signed up. The next run, after they do, finishes it."""


def _user_ids(client: OpenWebUIClient) -> dict[str, str]:
    return {str(u.get("email", "")).lower(): str(u.get("id", "")) for u in client.users()}


def _ids_of(client: OpenWebUIClient, emails: tuple[str, ...]) -> list[str]:
    known = _user_ids(client) if emails else {}
    missing = [e for e in emails if e not in known]
    if missing:
        raise NoSuchAccount(f"no OpenWebUI account for {', '.join(missing)} yet (invited, not signed up)")
    return [known[e] for e in emails]


def _groups(led: Ledger, name: str, group_id: str | None) -> Ledger:
    kept = {k: v for k, v in led.groups.items() if k != name}
    return led.model_copy(update={"groups": kept if group_id is None else {**kept, name: group_id}})


def run_create_user(action: CreateUser, ctx: ExecContext) -> None:
    client = ctx.openwebui()
    password = resolve_secret(action.password, (host_of(client.base_url),))
    client.add_user(action.name, action.email, password, action.role)


def run_adopt_admin(action: AdoptAdmin, ctx: ExecContext) -> None:
    client = ctx.openwebui()
    password = resolve_secret(action.password, (host_of(client.base_url),))
    client.update_user(action.id, action.email, action.name, "admin", password=password)


def run_update_user(action: UpdateUser, ctx: ExecContext) -> None:
    ctx.openwebui().update_user(action.id, action.email, action.name, action.role)


def run_delete_user(action: DeleteUser, ctx: ExecContext) -> None:
    ctx.openwebui().delete_user(action.id, action.email)


def run_create_group(action: CreateGroup, ctx: ExecContext) -> None:
    client = ctx.openwebui()
    group_id = client.create_group(action.name, action.description)
    ctx.state.update_ledger(lambda led: _groups(led, action.name, group_id))
    if action.members:
        client.group_members(group_id, _ids_of(client, action.members), add=True)


def run_update_group(action: UpdateGroup, ctx: ExecContext) -> None:
    client = ctx.openwebui()
    if any(c.field == "description" for c in action.diff):
        client.update_group(action.id, action.name, action.description)
    if action.add:
        client.group_members(action.id, _ids_of(client, action.add), add=True)
    if action.remove:
        client.group_members(action.id, list(action.remove), add=False)


def run_delete_group(action: DeleteGroup, ctx: ExecContext) -> None:
    ctx.openwebui().delete_group(action.id, action.name)
    ctx.state.update_ledger(lambda led: _groups(led, action.name, None))


def _grant_json(client: OpenWebUIClient, principals: tuple[Principal, ...]) -> list[dict[str, str]]:
    groups = {str(g.get("name")): str(g.get("id")) for g in client.groups()}
    emails = tuple(p.name for p in principals if p.type == "user")
    users = dict(zip(emails, _ids_of(client, emails), strict=True))
    grants: list[dict[str, str]] = []
    for p in principals:
        if p.type == "everyone":
            grants.append({"principal_type": "user", "principal_id": EVERYONE, "permission": "read"})
        elif p.type == "group":
            if p.name not in groups:
                raise Conflict(f"group {p.name} is not in OpenWebUI (yet); the next run retries")
            grants.append({"principal_type": "group", "principal_id": groups[p.name], "permission": "read"})
        else:
            grants.append({"principal_type": "user", "principal_id": users[p.name], "permission": "read"})
    return grants


def run_set_access(action: SetAccess, ctx: ExecContext) -> None:
    client = ctx.openwebui()
    grants = _grant_json(client, action.principals)
    if action.target == "model":
        client.set_model_access(action.id, grants)
        return
    entry = ctx.state.load_ledger().knowledge.get(action.id)
    if entry is None:
        raise Conflict(f"knowledge base {action.id} is not in the reconciler's ledger any more")
    client.set_knowledge_access(entry.id, action.id, grants)


# ───────────────────────────── the effects (pure) ─────────────────────────────


def _view(world: World) -> OpenWebUIObs:
    return world.openwebui or OpenWebUIObs(reachable=True)


def _set(world: World, **fields: object) -> None:
    world.openwebui = _view(world).model_copy(update=fields)


def user_created(action: CreateUser, world: World) -> None:
    person = Person(id=f"user-{action.email}", email=action.email, name=action.name, role=action.role)
    _set(world, users=(*_view(world).users, person))


def admin_adopted(action: AdoptAdmin, world: World) -> None:
    users = tuple(
        u.model_copy(update={"email": action.email, "name": action.name}) if u.id == action.id else u
        for u in _view(world).users
    )
    _set(world, users=users, signed_in_as=action.email)


def user_updated(action: UpdateUser, world: World) -> None:
    users = tuple(
        u.model_copy(update={"name": action.name, "role": action.role}) if u.id == action.id else u
        for u in _view(world).users
    )
    _set(world, users=users)


def user_deleted(action: DeleteUser, world: World) -> None:
    _set(world, users=tuple(u for u in _view(world).users if u.id != action.id))


def _membership(world: World, group_id: str, add: set[str], remove: set[str]) -> None:
    def member(u: Person) -> Person:
        ids = set(u.group_ids)
        if u.email in add:
            ids.add(group_id)
        if u.id in remove:
            ids.discard(group_id)
        return u.model_copy(update={"group_ids": tuple(sorted(ids))})

    _set(world, users=tuple(member(u) for u in _view(world).users))


def group_created(action: CreateGroup, world: World) -> None:
    group_id = f"group-{action.name}"
    group = GroupObs(id=group_id, name=action.name, description=action.description)
    _set(world, groups=(*_view(world).groups, group))
    _membership(world, group_id, set(action.members), set())
    world.ledger = _groups(world.ledger, action.name, group_id)


def group_updated(action: UpdateGroup, world: World) -> None:
    groups = tuple(
        g.model_copy(update={"description": action.description}) if g.id == action.id else g
        for g in _view(world).groups
    )
    _set(world, groups=groups)
    _membership(world, action.id, set(action.add), set(action.remove))


def group_deleted(action: DeleteGroup, world: World) -> None:
    _set(world, groups=tuple(g for g in _view(world).groups if g.id != action.id))
    _membership(world, action.id, set(), {u.id for u in _view(world).users})
    world.ledger = _groups(world.ledger, action.name, None)


def _grants(world: World, principals: tuple[Principal, ...]) -> tuple[Grant, ...]:
    view = _view(world)
    groups = {g.name: g.id for g in view.groups}
    users = view.user_by_email()
    found: list[Grant] = []
    for p in principals:
        if p.type == "everyone":
            found.append(Grant(principal_type="user", principal_id=EVERYONE))
        elif p.type == "group":
            found.append(Grant(principal_type="group", principal_id=groups.get(p.name, p.name)))
        else:
            person = users.get(p.name)
            found.append(Grant(principal_type="user", principal_id=person.id if person else p.name))
    return tuple(found)


def access_set(action: SetAccess, world: World) -> None:
    view = _view(world)
    grants = _grants(world, action.principals)
    if action.target == "model":
        rows = view.rows_by_id()
        row = rows.get(action.id) or ModelRow(id=action.id, name=action.id)
        rows[action.id] = row.model_copy(update={"access": grants})
        _set(world, rows=tuple(rows.values()))
        return
    entry = world.ledger.knowledge.get(action.id)
    bases = view.knowledge_by_id()
    if entry is not None and entry.id in bases:
        bases[entry.id] = bases[entry.id].model_copy(update={"access": grants})
        _set(world, knowledge=tuple(bases.values()))
