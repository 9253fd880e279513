"""Resolve a secret reference to its value, on the server, for the executor that sends it.

Every resolution goes through `resolve_secret`: the reference must be allowed by the
server's own config (`reconciler.serverconfig`) for every destination the value is handed
to, a `{file: NAME}` is read only from the configured secrets directory (which must not be
open to other users, and whose files are opened without following links), and an
`{env: NAME}` only from the allow-listed names. Errors name the reference, never a value.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from reconciler.desired.schema import SecretRef
from reconciler.desired.secrets import SecretPolicy, refusal
from reconciler.errors import PermanentError
from reconciler.serverconfig import load_policy

MAX_SECRET_BYTES = 64 * 2**10


class SecretUnavailable(PermanentError):
    """A secret reference could not be resolved. The message names the reference, never a value."""


class SecretRefused(SecretUnavailable):
    """The server's config does not allow this secret, or not where it would be sent."""


def resolve_secret(
    ref: SecretRef,
    sent_to: Sequence[str],
    *,
    policy: SecretPolicy | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The value behind `ref`, which will be sent to `sent_to` (hosts, `image:REPO`)."""
    policy = policy if policy is not None else load_policy()
    why = refusal(policy, ref, tuple(sent_to) or ("(unknown)",))
    if why is not None:
        message, hint = why
        raise SecretRefused(f"{message}; {hint}")
    if ref.env is not None:
        env = os.environ if environ is None else environ
        value = env.get(ref.env)
        if not value:
            raise SecretUnavailable(
                f"secret {ref.describe()} is not set: export {ref.env} in the reconciler's environment"
            )
        return value
    assert ref.file is not None and policy.dir is not None
    return _read_secret_file(Path(policy.dir), ref)


def _read_secret_file(folder: Path, ref: SecretRef) -> str:
    try:
        info = folder.lstat()
    except OSError as exc:
        raise SecretUnavailable(
            f"secret {ref.describe()}: the secrets directory {folder} cannot be read ({exc.strerror})"
        ) from None
    if not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o077 or info.st_uid not in (0, os.geteuid()):
        raise SecretUnavailable(
            f"secret {ref.describe()}: the secrets directory {folder} must be a folder owned by root "
            f"(or this user) that no one else can open: chown root {folder} && chmod 700 {folder}"
        )
    assert ref.file is not None
    try:
        fd = os.open(folder / ref.file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise SecretUnavailable(f"secret {ref.describe()} cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise SecretUnavailable(f"secret {ref.describe()} is not a regular file")
        data = fh.read(MAX_SECRET_BYTES + 1)
    if len(data) > MAX_SECRET_BYTES:
        raise SecretUnavailable(f"secret {ref.describe()} is larger than 64 KiB")
    try:
        value = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise SecretUnavailable(f"secret {ref.describe()} is not UTF-8 text") from None
    if not value:
        raise SecretUnavailable(f"secret {ref.describe()} is empty")
    return value
