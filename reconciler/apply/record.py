"""`record: commit`: an update is written to the desired-state repo as a commit that pins the
new digest, by the reconciler's own identity, and pushed through the repo's hooks so it is
validated like any push. Only the pinned name's text changes (comments and layout stay)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from reconciler.desired.images import with_tag
from reconciler.desired.refs import InvalidReference, canonical
from reconciler.desired.yamlpos import Position, YamlProblem, load_yaml
from reconciler.errors import PermanentError, TemporaryError
from reconciler.plan.actions import RecordUpdate, UpdateImage

IDENTITY = ("reconciler", "reconciler@localhost")
OLLAMA_FILE = "ollama.yaml"
OPENWEBUI_FILE = "openwebui.yaml"


class RecordFailed(TemporaryError):
    """The update could not be committed to the desired-state repo (git failed): retried."""


class RecordRefused(PermanentError):
    """The repo refused the update commit, or the file has no such model: the same commit is refused again."""


def pin_in_text(text: str, model: str, digest: str) -> str:
    """`text` (ollama.yaml) with the model whose canonical name is `model` pinned to `digest`:
    its `digest:` value replaced when it has one, else `@sha256:…` written after its name."""
    try:
        doc = load_yaml(text)
    except YamlProblem as exc:
        raise RecordRefused(f"{OLLAMA_FILE} cannot be read to record the update: {exc.message}") from None
    entries = doc.data.get("models") if isinstance(doc.data, dict) else None
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or _canonical(name.partition("@")[0]) != model:
            continue
        if "digest" in entry:
            return _replace_scalar(
                text, doc.position_of(("models", index, "digest"), value=True), f"sha256:{digest}"
            )
        where = doc.position_of(("models", index, "name"), value=True)
        return _replace_scalar(text, where, f"{name.partition('@')[0]}@sha256:{digest}")
    raise RecordRefused(f"{model} is not listed under models in {OLLAMA_FILE}")


def _canonical(name: str) -> str:
    try:
        return canonical(name)
    except InvalidReference:
        return name


def _replace_scalar(text: str, where: Position, value: str) -> str:
    lines = text.splitlines(keepends=True)
    line_no, column = where.line - 1, where.column - 1
    line = lines[line_no]
    rest = line[column:]
    if rest[:1] in ("'", '"'):  # quoted: keep the quotes (a digest never needs escaping)
        end = rest.index(rest[0], 1) + 1
        value = rest[0] + value + rest[0]
    else:
        comment = rest.find(" #")
        end = len(rest.rstrip("\r\n")) if comment < 0 else comment
        end = len(rest[:end].rstrip())
    lines[line_no] = line[:column] + value + rest[end:]
    return "".join(lines)


def _git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    name, email = IDENTITY
    return subprocess.run(
        ["git", "-c", f"user.name={name}", "-c", f"user.email={email}", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def image_in_text(text: str, file: str, path: tuple[str, ...], tag: str) -> str:
    """`text` with the image at `path` moved to `tag` (only that scalar changes)."""
    try:
        doc = load_yaml(text)
    except YamlProblem as exc:
        raise RecordRefused(f"{file} cannot be read to record the update: {exc.message}") from None
    node = doc.data
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, str):
        raise RecordRefused(f"{file} has no `{'.'.join(path)}` to record the update in")
    return _replace_scalar(text, doc.position_of(path, value=True), with_tag(node, tag))


def record_update(repo: Path, branch: str, action: RecordUpdate) -> str:
    """Commit and push the new pin; return the commit's hash."""
    message = (
        f"Update {action.model} to sha256:{action.new_digest[:12]}\n\n{action.reason}.\n"
        f"Previous digest: sha256:{action.old_digest} (kept on the server as a rollback entry; "
        "`git revert` of this commit restores it without a download)."
    )
    return _commit(
        repo,
        branch,
        OLLAMA_FILE,
        lambda text: pin_in_text(text, action.canonical, action.new_digest),
        message,
    )


def record_image(repo: Path, branch: str, action: UpdateImage) -> str:
    """Commit and push the image's new tag; return the commit's hash."""
    file, path = (
        (OLLAMA_FILE, ("container", "image"))
        if action.component == "ollama"
        else (OPENWEBUI_FILE, ("image",))
    )
    message = (
        f"Update the {action.component} image to {action.new_tag}\n\n{action.reason}.\n"
        f"Previous release: {action.old_tag} (`git revert` of this commit goes back to it)."
    )
    return _commit(repo, branch, file, lambda text: image_in_text(text, file, path, action.new_tag), message)


def _commit(repo: Path, branch: str, file: str, edit: Callable[[str], str], message: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        cloned = _git("clone", "-q", "--branch", branch, str(repo), str(work), cwd=Path(tmp))
        if cloned.returncode != 0:
            raise RecordFailed(f"cannot clone {repo} to record the update: {cloned.stderr.strip()[:300]}")
        path = work / file
        path.write_text(edit(path.read_text()))
        for step in (("add", file), ("commit", "-q", "-m", message)):
            done = _git(*step, cwd=work)
            if done.returncode != 0:
                raise RecordFailed(f"git {step[0]} failed: {(done.stderr or done.stdout).strip()[:300]}")
        sha = _git("rev-parse", "HEAD", cwd=work).stdout.strip()
        # The post-receive hook would wait for this very serve to reconcile the push: not here.
        pushed = _git(
            "push", "-q", "origin", f"HEAD:{branch}", cwd=work, env={"RECONCILER_PUSH_TIMEOUT": "0"}
        )
        if pushed.returncode != 0:
            refused = pushed.stderr.strip()[-500:]
            raise RecordRefused(f"the repo refused the update commit (validated like any push): {refused}")
        return sha
