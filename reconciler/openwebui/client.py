"""A small typed client for OpenWebUI's REST API (paths and payloads of open-webui 0.12).

Every call has a timeout; every failure is an `OpenWebUIError` carrying OpenWebUI's own
message (`detail`). Mutating calls go through `_write`, which counts them: the e2e tests
assert that a second converge makes none. The token is kept in memory only and never
appears in an error, a repr or a log.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from reconciler.desired.schema import DesiredState
from reconciler.desired.secrets import host_of
from reconciler.errors import Conflict, PermanentError, ReconcilerError, TemporaryError
from reconciler.http import http_client
from reconciler.observed import BUILTIN_ADMIN_EMAIL
from reconciler.secrets import resolve_secret


class OpenWebUIError(ReconcilerError):
    """OpenWebUI answered with an error, or did not answer. Raised as one of the three kinds
    below, by the status it answered (`openwebui_error`)."""

    def __init__(self, what: str, message: str, status: int | None = None) -> None:
        self.what = what
        self.status = status
        self.message = message
        code = f" ({status})" if status is not None else ""
        super().__init__(f"OpenWebUI {what} failed{code}: {message}")


class OpenWebUIUnavailable(OpenWebUIError, TemporaryError):
    """No answer, or a server error (5xx): the next run retries."""


class OpenWebUIRefused(OpenWebUIError, PermanentError):
    """OpenWebUI refused the request as made (4xx: no or a wrong admin key, a bad form)."""


class LoginLocked(OpenWebUIRefused):
    """OpenWebUI has login on and accounts, and the desired state turns login off: OpenWebUI
    would then refuse every sign-in (EXISTING_USERS, routers/auths.py:748), so it is refused."""


class OpenWebUIGone(OpenWebUIError, Conflict):
    """What the request named is no longer there (404/409): observe again."""


def openwebui_error(what: str, message: str, status: int | None = None) -> OpenWebUIError:
    if status in (404, 409):
        return OpenWebUIGone(what, message, status)
    if status is not None and 400 <= status < 500:
        return OpenWebUIRefused(what, message, status)
    return OpenWebUIUnavailable(what, message, status)


# The built-in admin's password (routers/auths.py:738): with login turned on later, that account
# keeps it until someone changes it.
BUILTIN_ADMIN_PASSWORD = "admin"  # noqa: S105 - OpenWebUI's own, public default


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("message") or body.get("error")
        if detail:
            return str(detail)[:500]
    return str(body)[:300]


class OpenWebUIClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 15.0,
        upload_timeout: float = 120.0,
        http: httpx.Client | None = None,
        on_write: Callable[[str, str], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self._http = http or http_client(timeout)
        self.writes: list[tuple[str, str]] = []  # (method, path) of every mutating call
        self._on_write = on_write
        self.signed_in_as: str | None = None  # the signed-in account's e-mail
        self.login_on: bool | None = None  # as OpenWebUI said at the last `login()`

    def __repr__(self) -> str:
        return f"OpenWebUIClient({self.base_url!r}, token={'set' if self._token else 'unset'})"

    # ── plumbing ──────────────────────────────────────────────────────────────

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        timeout: float | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Any:
        try:
            response = self._http.request(
                method,
                self.base_url + path,
                json=json,
                params=params,
                files=files,
                data=data,
                headers=self._headers(),
                timeout=timeout or self.timeout,
            )
        except httpx.HTTPError as exc:
            raise openwebui_error(what, f"{type(exc).__name__}: {exc} ({self.base_url})") from None
        if response.status_code not in ok:
            raise openwebui_error(what, _detail(response), response.status_code)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise OpenWebUIUnavailable(
                what, f"not JSON: {response.text[:200]!r}", response.status_code
            ) from None

    def _write(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        self.writes.append((method, path))
        if self._on_write is not None:
            self._on_write(method, path)
        return self._request(method, path, what, **kwargs)

    # ── health, version, auth ─────────────────────────────────────────────────

    def health(self) -> bool:
        try:
            body = self._request("GET", "/health", "health check")
        except OpenWebUIError:
            return False
        return isinstance(body, dict) and body.get("status") is True

    def config(self) -> dict[str, Any]:
        body = self._request("GET", "/api/config", "config")
        return body if isinstance(body, dict) else {}

    def login(self) -> tuple[bool, bool]:
        """(login is on, accounts exist), from the config OpenWebUI shows before sign-in
        (`features.auth`; `onboarding` only while it has no account: main.py get_app_config)."""
        config = self.config()
        features = config.get("features")
        auth = features.get("auth") if isinstance(features, dict) else None
        self.login_on = auth is not False
        return self.login_on, not config.get("onboarding")

    def signin_without_auth(self) -> None:
        """With WEBUI_AUTH=False, an empty sign-in gives the built-in admin's token."""
        body = self._request(
            "POST", "/api/v1/auths/signin", "sign-in (no-login mode)", json={"email": "", "password": ""}
        )
        token = body.get("token") if isinstance(body, dict) else None
        if not token:
            raise OpenWebUIRefused("sign-in (no-login mode)", "no token in the answer")
        self._token = str(token)
        self.signed_in_as = str(body.get("email") or BUILTIN_ADMIN_EMAIL)

    def use_token(self, token: str) -> None:
        self._token = token

    def signin(self, email: str, password: str) -> dict[str, Any]:
        """Sign in with an account's password; the client then acts as that account. The
        answer (id, email, role) has no password; an error never carries one."""
        body = self._request(
            "POST", "/api/v1/auths/signin", f"sign-in as {email}", json={"email": email, "password": password}
        )
        token = body.get("token") if isinstance(body, dict) else None
        if not token:
            raise OpenWebUIRefused(f"sign-in as {email}", "no token in the answer")
        self._token = str(token)
        self.signed_in_as = str(body.get("email") or email).lower()
        return {k: v for k, v in body.items() if k != "token"}

    def permissions(self) -> dict[str, Any]:
        """What the signed-in account may do (its role's defaults and its groups' permissions)."""
        body = self._request("GET", "/api/v1/users/permissions", "permissions")
        return body if isinstance(body, dict) else {}

    # ── users and groups ──────────────────────────────────────────────────────

    def users(self) -> list[dict[str, Any]]:
        """Every account, with its group ids (`GET /api/v1/users/`, paged as `{users, total}`)."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self._request("GET", "/api/v1/users/", "user list", params={"page": page})
            items = [u for u in (body or {}).get("users", []) if isinstance(u, dict)]
            found.extend(items)
            if not items or len(found) >= int((body or {}).get("total", len(found))):
                return found
            page += 1

    def add_user(self, name: str, email: str, password: str, role: str) -> str:
        body = self._write(
            "POST",
            "/api/v1/auths/add",
            f"create user {email}",
            json={"name": name, "email": email, "password": password, "role": role},
        )
        user_id = body.get("id") if isinstance(body, dict) else None
        if not user_id:
            raise OpenWebUIUnavailable(f"create user {email}", "no id in the answer")
        return str(user_id)

    def update_user(
        self, user_id: str, email: str, name: str, role: str, password: str | None = None
    ) -> None:
        """Name, e-mail and role as given; a password only when given (routers/users.py
        update_user_by_id: an empty one keeps the old)."""
        form = {"name": name, "email": email, "role": role, **({"password": password} if password else {})}
        self._write("POST", f"/api/v1/users/{user_id}/update", f"update user {email}", json=form)

    def delete_user(self, user_id: str, email: str) -> None:
        self._write("DELETE", f"/api/v1/users/{user_id}", f"delete user {email}")

    def groups(self) -> list[dict[str, Any]]:
        body = self._request("GET", "/api/v1/groups/", "group list")
        return [g for g in body or [] if isinstance(g, dict)] if isinstance(body, list) else []

    def create_group(self, name: str, description: str) -> str:
        body = self._write(
            "POST",
            "/api/v1/groups/create",
            f"create group {name}",
            json={"name": name, "description": description},
        )
        group_id = body.get("id") if isinstance(body, dict) else None
        if not group_id:
            raise OpenWebUIUnavailable(f"create group {name}", "no id in the answer")
        return str(group_id)

    def update_group(self, group_id: str, name: str, description: str) -> None:
        self._write(
            "POST",
            f"/api/v1/groups/id/{group_id}/update",
            f"update group {name}",
            json={"name": name, "description": description},
        )

    def group_members(self, group_id: str, user_ids: list[str], *, add: bool) -> None:
        verb = "add" if add else "remove"
        self._write(
            "POST",
            f"/api/v1/groups/id/{group_id}/users/{verb}",
            f"{verb} group members",
            json={"user_ids": user_ids},
        )

    def delete_group(self, group_id: str, name: str) -> None:
        self._write("DELETE", f"/api/v1/groups/id/{group_id}/delete", f"delete group {name}")

    def set_model_access(self, model_id: str, grants: list[dict[str, str]]) -> None:
        """The grants of a model: a preset, or a base model (OpenWebUI makes its row if needed)."""
        self._write(
            "POST",
            "/api/v1/models/model/access/update",
            f"set access to model {model_id}",
            json={"id": model_id, "access_grants": grants},
        )

    def set_knowledge_access(self, knowledge_id: str, name: str, grants: list[dict[str, str]]) -> None:
        self._write(
            "POST",
            f"/api/v1/knowledge/{knowledge_id}/access/update",
            f"set access to knowledge base {name}",
            json={"access_grants": grants},
        )

    # ── models ────────────────────────────────────────────────────────────────

    def models(self) -> list[dict[str, Any]]:
        """What the chat model picker offers (base models from Ollama/OpenAI and presets)."""
        body = self._request("GET", "/api/models", "model list")
        data = body.get("data", []) if isinstance(body, dict) else body
        return [m for m in data or [] if isinstance(m, dict)]

    def _paged(self, path: str, what: str) -> list[dict[str, Any]]:
        """Every item of a paged list (`{"items": [...], "total": N}`; a plain list in older
        versions), page by page."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self._request("GET", path, what, params={"page": page})
            if isinstance(body, list):
                return [item for item in body if isinstance(item, dict)]
            items = [item for item in (body or {}).get("items", []) if isinstance(item, dict)]
            found.extend(items)
            total = int((body or {}).get("total", len(found)))
            if not items or len(found) >= total:
                return found
            page += 1

    def workspace_models(self) -> list[dict[str, Any]]:
        """The rows of OpenWebUI's `model` table: presets and per-base-model overrides."""
        return self._paged("/api/v1/models/list", "workspace model list")

    def base_model_rows(self) -> list[dict[str, Any]]:
        """Rows that override a base model (same id, no base_model_id): hidden/renamed models."""
        body = self._request("GET", "/api/v1/models/base", "base model rows")
        return [m for m in body or [] if isinstance(m, dict)] if isinstance(body, list) else []

    def create_model(self, form: dict[str, Any]) -> dict[str, Any]:
        body = self._write("POST", "/api/v1/models/create", f"create model {form['id']}", json=form)
        return body if isinstance(body, dict) else {}

    def update_model(self, form: dict[str, Any]) -> dict[str, Any]:
        body = self._write("POST", "/api/v1/models/model/update", f"update model {form['id']}", json=form)
        return body if isinstance(body, dict) else {}

    def delete_model(self, model_id: str) -> None:
        self._write("POST", "/api/v1/models/model/delete", f"delete model {model_id}", json={"id": model_id})

    # ── knowledge ─────────────────────────────────────────────────────────────

    def knowledge_bases(self) -> list[dict[str, Any]]:
        return self._paged("/api/v1/knowledge/", "knowledge list")

    def knowledge_files(self, knowledge_id: str) -> list[dict[str, Any]]:
        return self._paged(f"/api/v1/knowledge/{knowledge_id}/files", "knowledge files")

    def create_knowledge(self, name: str, description: str) -> dict[str, Any]:
        body = self._write(
            "POST",
            "/api/v1/knowledge/create",
            f"create knowledge base {name}",
            json={"name": name, "description": description, "access_grants": []},
        )
        if not isinstance(body, dict) or "id" not in body:
            raise OpenWebUIUnavailable(f"create knowledge base {name}", "no id in the answer")
        return body

    def update_knowledge(self, knowledge_id: str, name: str, description: str) -> None:
        self._write(
            "POST",
            f"/api/v1/knowledge/{knowledge_id}/update",
            f"update knowledge base {name}",
            json={"name": name, "description": description},
        )

    def delete_knowledge(self, knowledge_id: str) -> None:
        self._write("DELETE", f"/api/v1/knowledge/{knowledge_id}/delete", "delete knowledge base")

    def upload_file(
        self,
        filename: str,
        data: bytes,
        content_type: str = "text/plain",
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Upload and process (extract, chunk, embed) a file; return its id once processed.
        `metadata` lands in the file's `meta.data`."""
        body = self._write(
            "POST",
            "/api/v1/files/",
            f"upload {filename}",
            params={"process": "true", "process_in_background": "false"},
            files={"file": (filename, data, content_type)},
            data={"metadata": json.dumps(metadata)} if metadata else None,
            timeout=self.upload_timeout,
        )
        file_id = body.get("id") if isinstance(body, dict) else None
        if not file_id:
            raise OpenWebUIUnavailable(f"upload {filename}", "no file id in the answer")
        self._wait_processed(str(file_id), filename)
        return str(file_id)

    def _wait_processed(self, file_id: str, filename: str) -> None:
        deadline = time.monotonic() + self.upload_timeout
        while True:
            body = self._request(
                "GET", f"/api/v1/files/{file_id}/process/status", f"processing status of {filename}"
            )
            state = body.get("status") if isinstance(body, dict) else None
            if state == "completed":
                return
            if state == "failed":
                error = body.get("error") if isinstance(body, dict) else None
                raise OpenWebUIUnavailable(f"process {filename}", str(error or "processing failed"))
            if time.monotonic() > deadline:
                raise OpenWebUIUnavailable(
                    f"process {filename}", f"still {state} after {self.upload_timeout:g} s"
                )
            time.sleep(0.2)

    def add_file(self, knowledge_id: str, file_id: str) -> None:
        self._write(
            "POST",
            f"/api/v1/knowledge/{knowledge_id}/file/add",
            "add file to knowledge base",
            json={"file_id": file_id},
            timeout=self.upload_timeout,
        )

    def remove_file(self, knowledge_id: str, file_id: str) -> None:
        self._write(
            "POST",
            f"/api/v1/knowledge/{knowledge_id}/file/remove",
            "remove file from knowledge base",
            json={"file_id": file_id},
        )


def connect(
    base_url: str,
    *,
    auth: bool,
    token: str | None = None,
    timeout: float = 15.0,
    http: httpx.Client | None = None,
) -> OpenWebUIClient:
    """A signed-in client: without login (WEBUI_AUTH=False) as the built-in admin, otherwise with
    the admin API key `token` (resolved from the desired state's `admin_token` reference)."""
    client = OpenWebUIClient(base_url, timeout=timeout, http=http)
    if auth:
        if not token:
            raise OpenWebUIRefused("sign-in", "login is on and no admin_token is configured")
        client.use_token(token)
    else:
        client.signin_without_auth()
    return client


def default_url(desired: DesiredState) -> str:
    """Where the reconciler (on the server) reaches OpenWebUI: the published port on loopback, or
    kamal-proxy on loopback (HTTPS with the LAN CA when TLS is on)."""
    assert desired.openwebui is not None
    exposure = desired.openwebui.exposure
    if exposure.mode == "published":
        return f"http://127.0.0.1:{exposure.port}"
    if exposure.tls.enabled:
        return "https://127.0.0.1" + ("" if exposure.https_port == 443 else f":{exposure.https_port}")
    return "http://127.0.0.1" + ("" if exposure.http_port == 80 else f":{exposure.http_port}")


def connect_desired(
    desired: DesiredState, url: str | None = None, timeout: float = 15.0, tls_dir: Path | None = None
) -> OpenWebUIClient:
    """A client signed in as the running OpenWebUI allows and the desired state says. Login off
    there (not yet deployed with `auth: true`, or never): the built-in admin. Login on: the
    owner's account by its password reference, else the admin API key. Over HTTPS with the LAN CA
    under `tls_dir` (kamal-proxy's certificate), that CA is the only one trusted."""
    webui = desired.openwebui
    assert webui is not None
    base = url or default_url(desired)
    client = OpenWebUIClient(base, timeout=timeout, http=_lan_http(desired, base, tls_dir, timeout))
    login, accounts = client.login()
    if not login:
        client.signin_without_auth()
        return client
    if not webui.auth and accounts:
        raise LoginLocked(
            "sign-in",
            "OpenWebUI has login on and accounts; with `auth: false` it would let nobody in "
            "(it turns login off only on a fresh install): keep `auth: true`",
        )
    admin = webui.admin() if webui.auth else None
    if admin is not None and admin.password is not None:
        # The admin's own password (the secret that made the account) signs the reconciler in:
        # no second secret to keep, no API key to enable, and the session token stays in memory.
        _signin_as_owner(client, admin.email, resolve_secret(admin.password, (host_of(base),)))
        return client
    token = resolve_secret(webui.admin_token, (host_of(base),)) if webui.auth and webui.admin_token else None
    if not token:
        raise OpenWebUIRefused("sign-in", "login is on and no admin_token is configured")
    client.use_token(token)
    return client


def _lan_http(desired: DesiredState, base: str, tls_dir: Path | None, timeout: float) -> httpx.Client | None:
    assert desired.openwebui is not None
    ca = tls_dir / "ca.crt" if tls_dir is not None else None
    lan_tls = base.startswith("https://") and desired.openwebui.exposure.tls.enabled
    if ca is not None and lan_tls and ca.is_file():
        return httpx.Client(timeout=timeout, verify=ssl.create_default_context(cafile=str(ca)))
    return None


def _signin_as_owner(client: OpenWebUIClient, email: str, password: str) -> None:
    """The owner's account; if it does not exist yet because login was off until now, the
    built-in admin with OpenWebUI's default password, which the plan then makes the owner's
    (`plan/people.py`): its chats are the owner's, and that password stops working."""
    try:
        client.signin(email, password)
    except OpenWebUIRefused as refused:
        try:
            client.signin(BUILTIN_ADMIN_EMAIL, BUILTIN_ADMIN_PASSWORD)
        except OpenWebUIRefused:
            raise refused from None
