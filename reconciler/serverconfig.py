"""The server's own configuration, kept outside git: `/etc/reconciler/reconciler.toml`
(or `$RECONCILER_CONFIG`). Bootstrap writes it; only the `[secrets]` table is read here.

A missing file means no secret may be used (and `exists` says so, for commands that run on a
laptop and check only the form of references)."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from reconciler.desired.secrets import DEFAULT_CONFIG, IMAGE_PREFIX, SecretPolicy, host_of
from reconciler.errors import EXIT_INVALID, PermanentError

CONFIG_ENV = "RECONCILER_CONFIG"
MAX_CONFIG_BYTES = 1 * 2**20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HOST = re.compile(r"^[a-z0-9_][a-z0-9_.:-]{0,252}$")
_SECRETS_KEYS = {"dir", "env", "send_to"}


class ServerConfigInvalid(PermanentError):
    """The server's reconciler.toml cannot be read or says something it cannot mean."""

    exit_code = EXIT_INVALID


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def exists(path: Path | None = None) -> bool:
    return (path or config_path()).is_file()


def load_policy(path: Path | None = None) -> SecretPolicy:
    """The secrets policy of this server; nothing allowed when the file does not exist."""
    path = path or config_path()
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return SecretPolicy(source=str(path), present=False)
    except OSError as exc:
        raise ServerConfigInvalid(f"{path}: cannot be read ({exc.strerror})") from None
    if size > MAX_CONFIG_BYTES:
        raise ServerConfigInvalid(f"{path}: larger than 1 MiB")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ServerConfigInvalid(f"{path}: not valid TOML ({str(exc)[:200]})") from None
    except OSError as exc:
        raise ServerConfigInvalid(f"{path}: cannot be read ({exc.strerror})") from None
    return _policy(path, data.get("secrets", {}))


def _fail(path: Path, message: str) -> ServerConfigInvalid:
    return ServerConfigInvalid(f"{path}: [secrets] {message}")


def _policy(path: Path, table: Any) -> SecretPolicy:
    if not isinstance(table, dict):
        raise _fail(path, "must be a table")
    unknown = sorted(set(table) - _SECRETS_KEYS)
    if unknown:
        raise _fail(path, f"unknown key {unknown[0]!r} (known: dir, env, send_to)")
    folder = table.get("dir")
    if folder is not None and (not isinstance(folder, str) or not folder.startswith("/")):
        raise _fail(path, "dir must be an absolute path")
    env = table.get("env", [])
    if not isinstance(env, list) or not all(isinstance(n, str) and _NAME.match(n) for n in env):
        raise _fail(path, "env must be a list of environment variable names")
    send_to: dict[str, tuple[str, ...]] = {}
    raw = table.get("send_to", {})
    if not isinstance(raw, dict):
        raise _fail(path, "send_to must be a table of NAME = [destinations]")
    for name, targets in raw.items():
        if not _NAME.match(name) or not isinstance(targets, list):
            raise _fail(path, f"send_to.{name} must be a list of hosts")
        send_to[name] = tuple(_destination(path, name, t) for t in targets)
    return SecretPolicy(source=str(path), present=True, dir=folder, env=frozenset(env), send_to=send_to)


def _destination(path: Path, name: str, target: Any) -> str:
    if not isinstance(target, str):
        raise _fail(path, f"send_to.{name}: destinations are strings")
    if target.startswith(IMAGE_PREFIX):
        return target
    host = host_of(target)
    if not _HOST.match(host):
        raise _fail(path, f"send_to.{name}: {target!r} is not a host, URL or image:REPOSITORY")
    return host
