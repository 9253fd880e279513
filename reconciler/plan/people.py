"""Who has an account in OpenWebUI, in which groups, and who may use what (pure).

    users          matched by e-mail: created with their initial password (by reference) when
                   git gives one, else invited (they sign up themselves); name and role follow
                   git. An account git does not name is left alone (`prune: true` removes it,
                   never an admin).
    groups         matched by name: created, their description and members put back to git's.
                   A group the reconciler made and git no longer names is removed; one a person
                   made only with `prune: true`.
    access         the read grants of a preset, a base model (`model_access`) or a knowledge
                   base, replaced by git's when they differ; unset `access` leaves them alone.

Passwords are only ever references here: the executor resolves them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from reconciler.desired.schema import Access, DesiredState, OpenWebUISpec
from reconciler.observed import BUILTIN_ADMIN_EMAIL, Grant, Ledger, Observed, OpenWebUIObs, Person
from reconciler.plan.actions import (
    Action,
    AdoptAdmin,
    CreateGroup,
    CreateUser,
    DeleteGroup,
    DeleteUser,
    FieldChange,
    Principal,
    SetAccess,
    UpdateGroup,
    UpdateUser,
    Violation,
)

EVERYONE = "*"  # OpenWebUI's wildcard principal: user `*` with read = every signed-in user


def principals(access: Access) -> tuple[Principal, ...]:
    found = [Principal(type="everyone")] if access.everyone else []
    found += [Principal(type="group", name=g) for g in sorted(set(access.groups))]
    found += [Principal(type="user", name=u) for u in sorted({u.lower() for u in access.users})]
    return tuple(found)


def grant_label(grant: Grant, view: OpenWebUIObs) -> str:
    """A grant as a person reads it: by group name and e-mail (an id OpenWebUI no longer
    knows is shown as the id)."""
    suffix = "" if grant.permission == "read" else f" ({grant.permission})"
    if grant.principal_type == "user" and grant.principal_id == EVERYONE:
        return "everyone" + suffix
    if grant.principal_type == "group":
        names = {g.id: g.name for g in view.groups}
        return f"group {names.get(grant.principal_id, grant.principal_id)}{suffix}"
    if grant.principal_type == "user":
        emails = {u.id: u.email for u in view.users}
        return f"user {emails.get(grant.principal_id, grant.principal_id)}{suffix}"
    return f"{grant.principal_type} {grant.principal_id}{suffix}"


def access_action(
    target: Literal["model", "knowledge"],
    subject: str,
    access: Access,
    grants: tuple[Grant, ...],
    view: OpenWebUIObs,
    why: str,
) -> list[Action]:
    wanted = principals(access)
    before = sorted(grant_label(g, view) for g in grants)
    after = sorted(p.label() for p in wanted)
    if before == after:
        return []
    diff = (FieldChange(field="access", before=before or ["admins only"], after=after or ["admins only"]),)
    return [SetAccess(target=target, id=subject, principals=wanted, diff=diff, reason=why)]


def login_violations(desired: DesiredState, observed: Observed) -> list[Violation]:
    """`auth: false` over an OpenWebUI with login on and accounts: once deployed it would let
    nobody in (it turns login off only on a fresh install), so the plan is refused."""
    view = observed.openwebui
    if desired.openwebui is None or desired.openwebui.auth or view is None or not view.login_locked:
        return []
    message = (
        "openwebui.yaml auth: false, but OpenWebUI has login on and accounts: OpenWebUI turns login "
        "off only on a fresh install and would refuse every sign-in (its chats and accounts stay in "
        "its data volume): keep `auth: true`"
    )
    return [Violation(budget="login", message=message)]


def adoption(webui: OpenWebUISpec, view: OpenWebUIObs, since: str) -> AdoptAdmin | None:
    """Login turned on over a one-person OpenWebUI: the reconciler could sign in only as the
    built-in admin, with OpenWebUI's default password, and git's admin has no account yet. That
    account becomes git's admin (a new one would leave the owner's chats, and a login everyone
    knows, on an account nobody uses). Never while login is still off there (a deploy held back):
    OpenWebUI without login signs everyone in as that account, by its e-mail."""
    admin = webui.admin()
    present = view.user_by_email()
    builtin = present.get(BUILTIN_ADMIN_EMAIL)
    if admin is None or admin.password is None or builtin is None or admin.email in present:
        return None
    if view.login is not True or view.signed_in_as != BUILTIN_ADMIN_EMAIL:
        return None
    reason = (
        f"{since}: login is on, {admin.email} (admin) has no account, the built-in {BUILTIN_ADMIN_EMAIL} has"
    )
    return AdoptAdmin(
        id=builtin.id,
        was=builtin.email,
        email=admin.email,
        name=admin.name,
        password=admin.password,
        reason=reason,
    )


def user_actions(
    webui: OpenWebUISpec, view: OpenWebUIObs, since: str, why: Callable[[str], str], signed_in: str | None
) -> list[Action]:
    present = view.user_by_email()
    adopt = adoption(webui, view, since)
    actions: list[Action] = [adopt] if adopt else []
    for user in webui.users:
        seen = present.get(user.email)
        if seen is None and adopt is not None and adopt.email == user.email:
            continue
        if seen is None:
            if user.password is not None:
                reason = f"{since}, no such account in OpenWebUI"
                actions.append(
                    CreateUser(
                        email=user.email,
                        name=user.name,
                        role=user.role,
                        password=user.password,
                        reason=reason,
                    )
                )
            continue  # invited: the account appears once the person signs up
        diff = tuple(
            c
            for c in (
                FieldChange(field="name", before=seen.name, after=user.name),
                FieldChange(field="role", before=seen.role, after=user.role),
            )
            if c.before != c.after
        )
        if diff:
            changed = ", ".join(c.field for c in diff)
            actions.append(
                UpdateUser(
                    id=seen.id,
                    email=user.email,
                    name=user.name,
                    role=user.role,
                    diff=diff,
                    reason=why(changed),
                )
            )
    if webui.prune:
        named = {u.email for u in webui.users}
        for person in view.users:
            if person.email not in named and person.role != "admin" and person.email != signed_in:
                reason = f"{since}: not in users, and prune: true removes accounts git does not name"
                actions.append(DeleteUser(id=person.id, email=person.email, reason=reason))
    return actions


def _members(view: OpenWebUIObs, group_id: str) -> list[Person]:
    return [u for u in view.users if group_id in u.group_ids]


def group_actions(
    webui: OpenWebUISpec, view: OpenWebUIObs, ledger: Ledger, since: str, why: Callable[[str], str]
) -> list[Action]:
    present = view.group_by_name()
    actions: list[Action] = []
    for group in webui.groups:
        seen = present.get(group.name)
        wanted = sorted(set(group.members))
        if seen is None:
            reason = f"{since}, no such group in OpenWebUI"
            actions.append(
                CreateGroup(
                    name=group.name, description=group.description, members=tuple(wanted), reason=reason
                )
            )
            continue
        current = _members(view, seen.id)
        have = sorted(u.email for u in current)
        add = tuple(m for m in wanted if m not in have)
        remove = tuple(u.id for u in current if u.email not in wanted)
        diff = tuple(
            c
            for c in (
                FieldChange(field="description", before=seen.description, after=group.description),
                FieldChange(field="members", before=have, after=wanted),
            )
            if c.before != c.after
        )
        if diff:
            actions.append(
                UpdateGroup(
                    id=seen.id,
                    name=group.name,
                    description=group.description,
                    add=add,
                    remove=remove,
                    diff=diff,
                    reason=why(", ".join(c.field for c in diff)),
                )
            )
    named = {g.name for g in webui.groups}
    for seen in view.groups:
        if seen.name in named:
            continue
        if ledger.groups.get(seen.name) == seen.id:
            actions.append(
                DeleteGroup(
                    id=seen.id, name=seen.name, reason=f"group {seen.name} is no longer in the desired state"
                )
            )
        elif webui.prune:
            reason = f"{since}: not in groups, and prune: true removes groups git does not name"
            actions.append(DeleteGroup(id=seen.id, name=seen.name, reason=reason))
    return actions


def grant_actions(
    webui: OpenWebUISpec, view: OpenWebUIObs, ledger: Ledger, why: Callable[[str], str]
) -> list[Action]:
    rows = view.rows_by_id()
    bases = view.knowledge_by_id()
    actions: list[Action] = []
    for preset in webui.presets:
        if preset.access is not None:
            row = rows.get(preset.id)
            actions += access_action(
                "model", preset.id, preset.access, row.access if row else (), view, why("access")
            )
    for model_id, access in sorted(webui.model_access.items()):
        row = rows.get(model_id)
        actions += access_action("model", model_id, access, row.access if row else (), view, why("access"))
    for kb in webui.knowledge:
        if kb.access is not None:
            entry = ledger.knowledge.get(kb.name)
            seen = bases.get(entry.id) if entry else None
            actions += access_action(
                "knowledge", kb.name, kb.access, seen.access if seen else (), view, why("access")
            )
    return actions
