"""The server's own config (reconciler.toml) for tests: which secrets the desired state may
use and where they may be sent. Every test runs with `$RECONCILER_CONFIG` pointing at a
file of its own (missing unless the test writes one), never at the machine's /etc."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest


def write_config(
    path: Path,
    *,
    env: Iterable[str] = (),
    files: Mapping[str, str] | None = None,
    send_to: Mapping[str, Iterable[str]] | None = None,
) -> Path:
    """Write reconciler.toml at `path` allowing `env` names and the secret `files` (name →
    value, written 0600 into a 0700 secrets directory beside it); returns the path."""
    folder = path.parent / "secrets"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    for name, value in (files or {}).items():
        target = folder / name
        target.write_text(value + "\n")
        target.chmod(0o600)
    lines = ["[secrets]", f"dir = {json.dumps(str(folder))}", f"env = {json.dumps(list(env))}"]
    if send_to:
        lines.append("[secrets.send_to]")
        lines += [f"{json.dumps(name)} = {json.dumps(list(hosts))}" for name, hosts in send_to.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def allow_secrets(
    monkeypatch: pytest.MonkeyPatch,
    root: Path,
    *,
    env: Iterable[str] = (),
    files: Mapping[str, str] | None = None,
    send_to: Mapping[str, Iterable[str]] | None = None,
) -> Path:
    """Write the config under `root` and point `$RECONCILER_CONFIG` (and so subprocesses such
    as `serve`) at it."""
    path = write_config(root / "etc" / "reconciler.toml", env=env, files=files, send_to=send_to)
    monkeypatch.setenv("RECONCILER_CONFIG", str(path))
    return path
