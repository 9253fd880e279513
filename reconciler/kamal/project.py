"""Write the rendered Kamal project to disk and resolve secret references (I/O).

Layout of the project directory (0700, on the machine that runs kamal):

    config/deploy.yml           rendered, no secret values
    .kamal/secrets              0600, NAME='value' lines (single quotes: Kamal's dotenv parser
                                takes them literally, no $VAR or $(command) expansion)
    .kamal/hooks/<hook>         copied from the package's data/hooks/kamal/, executable
    .kamal/reconciler.env       which Python runs the hooks (this reconciler's)
    .kamal/reconciler-desired.json   the desired state the project was rendered from, for the
                                hooks when kamal is run by hand (no secret values in it)
    Dockerfile                  the wrapper image (FROM <openwebui.image> + service label)
    webui_secret_key            0600, generated once when no reference is given
"""

from __future__ import annotations

import os
import re
import secrets as _random
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from reconciler.desired.schema import DesiredState
from reconciler.desired.secrets import SecretPolicy, destinations_of
from reconciler.errors import PermanentError
from reconciler.kamal.render import HOOKS, RenderedProject, SecretNeed
from reconciler.resources import kamal_hooks
from reconciler.secrets import SecretUnavailable, resolve_secret

DESIRED_SNAPSHOT = ".kamal/reconciler-desired.json"
GENERATED_KEY = "webui_secret_key"
PLACEHOLDER = "unused"


# resolve_secret now lives in reconciler.secrets (it needs the destinations); re-exported here
__all__ = ["SecretUnavailable", "resolve_secret", "secret_values", "write_project"]


def _check_value(need: SecretNeed, value: str) -> str:
    if "'" in value or "\n" in value or "\r" in value or "\0" in value:
        where = ", ".join(r.describe() for r in need.refs) or need.name
        raise SecretUnavailable(
            f"secret {need.name} ({where}) contains a quote, a newline or a NUL, which Kamal's "
            "secrets file cannot carry literally"
        )
    return value


def _generated_key(workdir: Path) -> str:
    path = workdir / GENERATED_KEY
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    key = _random.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    return key


def _pem_line(name: str, value: str) -> str:
    """A PEM in Kamal's dotenv secrets file: a double-quoted value over several lines. Not `\\n`
    escapes: Kamal 2.11's dotenv (3.x) no longer expands them, so kamal-proxy was handed a
    one-line file it cannot load. PEM text has no quote, `$` or backslash: nothing to escape."""
    if not re.fullmatch(r"[A-Za-z0-9+/=\- \n]+", value):
        raise SecretUnavailable(f"secret {name} is not plain PEM text")
    return f'{name}="{value.rstrip(chr(10))}\n"\n'


def _tls_values(desired: DesiredState, workdir: Path) -> dict[str, str]:
    """The LAN certificate (made or renewed now) and its key, from the state directory."""
    from reconciler.kamal.tls import ensure_tls, tls_hosts

    names, addresses = tls_hosts(desired)
    chain, key = ensure_tls(workdir.parent / "tls", names, addresses).server_pem()
    return {"tls_certificate": chain, "tls_private_key": key}


def secret_values(
    needs: tuple[SecretNeed, ...],
    desired: DesiredState,
    workdir: Path,
    *,
    environ: Mapping[str, str] | None = None,
    tls: Mapping[str, str] | None = None,
    policy: SecretPolicy | None = None,
) -> dict[str, str]:
    """Each secret Kamal needs, resolved for the destinations the desired state sends it to."""
    values: dict[str, str] = {}
    for need in needs:
        if need.fallback in ("tls_certificate", "tls_private_key"):
            if tls is None:
                raise SecretUnavailable(f"secret {need.name}: the LAN TLS certificate was not made")
            values[need.name] = tls[need.fallback]
            continue
        if need.refs:
            value = ";".join(
                resolve_secret(ref, destinations_of(desired, ref), policy=policy, environ=environ)
                for ref in need.refs
            )
        elif need.fallback == "generate":
            value = _generated_key(workdir)
        elif need.fallback == "placeholder":
            value = PLACEHOLDER
        else:
            raise SecretUnavailable(f"secret {need.name} has no reference")
        values[need.name] = _check_value(need, value)
    return values


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_project(
    project: RenderedProject,
    desired: DesiredState,
    workdir: Path,
    *,
    environ: Mapping[str, str] | None = None,
    policy: SecretPolicy | None = None,
    hooks_source: Path | None = None,
) -> dict[str, str]:
    """Write the project into `workdir`; return the secret values (for the registry push).

    Secrets are resolved first, so a missing one fails before anything is written."""
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(workdir, 0o700)
    wants_tls = any(n.fallback in ("tls_certificate", "tls_private_key") for n in project.secrets)
    tls = _tls_values(desired, workdir) if wants_tls else None
    values = secret_values(project.secrets, desired, workdir, environ=environ, tls=tls, policy=policy)
    multiline = {n.name for n in project.secrets if n.fallback in ("tls_certificate", "tls_private_key")}
    _write(workdir / "config" / "deploy.yml", project.deploy_yml, 0o644)
    _write(workdir / "Dockerfile", project.dockerfile, 0o644)
    _write(
        workdir / ".kamal" / "secrets",
        "".join(_pem_line(k, v) if k in multiline else f"{k}='{v}'\n" for k, v in values.items()),
        0o600,
    )
    _write(workdir / DESIRED_SNAPSHOT, desired.model_dump_json(by_alias=True, indent=1), 0o600)
    _write(
        workdir / ".kamal" / "reconciler.env",
        f'if [ -z "${{RECONCILER_PYTHON:-}}" ]; then RECONCILER_PYTHON={shlex.quote(sys.executable)}; fi\n',
        0o600,
    )
    hooks_source = hooks_source or kamal_hooks()
    hooks_dir = workdir / ".kamal" / "hooks"
    hooks_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in HOOKS:
        source = hooks_source / name
        if not source.is_file():
            raise PermanentError(f"Kamal hook {source} is missing from this installation")
        target = hooks_dir / name
        shutil.copyfile(source, target)
        os.chmod(target, 0o755)  # noqa: S103 (Kamal runs hooks as executables)
    return values
