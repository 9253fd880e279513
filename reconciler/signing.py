"""Optional: only commits signed by an allowed key converge.

Set with `reconciler init --allowed-signers FILE` (git's SSH `allowed_signers` format). The
pre-receive hook then rejects a push that brings any commit `git verify-commit` cannot
verify against that file, and `serve` refuses to apply a branch head that fails it (a ref
moved by other means than a push). Without the setting every valid commit converges.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

CONFIG_KEY = "reconciler.allowedSigners"
ZERO = "0" * 40


def allowed_signers(repo: Path) -> Path | None:
    result = subprocess.run(
        ["git", "config", "--get", CONFIG_KEY], cwd=repo, capture_output=True, text=True, check=False
    )
    value = result.stdout.strip()
    return Path(value) if result.returncode == 0 and value else None


def _verifies(repo: Path, signers: Path, sha: str) -> bool:
    result = subprocess.run(
        ["git", "-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-commit", sha],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0


def unverified(repo: Path, old: str, new: str) -> list[str]:
    """The commits a push brings (old..new; only `new` for a new branch) that are not signed
    by an allowed key. Empty when signing is not required."""
    signers = allowed_signers(repo)
    if signers is None:
        return []
    if old == ZERO:
        commits = [new]
    else:
        listed = subprocess.run(
            ["git", "rev-list", f"{old}..{new}"], cwd=repo, capture_output=True, text=True, check=False
        )
        commits = listed.stdout.split() or [new]
    return [sha for sha in commits if not _verifies(repo, signers, sha)]


def head_problem(repo: Path, sha: str) -> str | None:
    """Why `serve` must not apply `sha` (None: it may)."""
    signers = allowed_signers(repo)
    if signers is None or _verifies(repo, signers, sha):
        return None
    return f"commit {sha[:12]} is not signed by a key in {signers} ({CONFIG_KEY}); push a signed commit"
