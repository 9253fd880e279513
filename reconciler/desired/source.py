"""Where the desired-state files come from: a directory or one git commit (readers only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

MAX_KNOWLEDGE_FILE = 64 * 2**20


class Source(Protocol):
    revision: str | None

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""

    def files_under(self, prefix: str) -> list[str]:
        """Paths of regular files under `prefix/`, relative to the repo root, sorted."""


class DirSource:
    def __init__(self, root: Path, revision: str | None = None) -> None:
        self.root = root
        self.revision = revision

    def read(self, path: str) -> bytes | None:
        target = self.root / path
        return target.read_bytes() if target.is_file() else None

    def files_under(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file() and not p.is_symlink()
        )


class GitCommitSource:
    """The tree of one commit, read with GitPython (bare repos included)."""

    def __init__(self, repo_path: Path, commit: str) -> None:
        import git  # local import: only `serve` and the hooks read commits

        self._repo = git.Repo(repo_path)
        self._commit = self._repo.commit(commit)
        self.revision: str | None = self._commit.hexsha

    def close(self) -> None:
        """Stop git's persistent cat-file processes (a long-running `serve` reads many commits)."""
        self._repo.close()

    def __enter__(self) -> GitCommitSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, path: str) -> bytes | None:
        try:
            blob = self._commit.tree / path
        except KeyError:
            return None
        if blob.type != "blob":
            return None
        data: bytes = blob.data_stream.read()
        return data

    def files_under(self, prefix: str) -> list[str]:
        try:
            tree = self._commit.tree / prefix
        except KeyError:
            return []
        paths: list[str] = []
        for item in tree.traverse():
            if getattr(item, "type", None) == "blob" and getattr(item, "mode", 0) != 0o120000:
                paths.append(str(getattr(item, "path", "")))
        return sorted(paths)


def knowledge_reader(open_source: Callable[[], Source]) -> Callable[[str, str], bytes | None]:
    """Bytes of `knowledge/<name>/<path>` of the desired commit, for OpenWebUI's executor (the
    desired state holds only their hashes). Each read opens and closes the source."""

    def read(name: str, path: str) -> bytes | None:
        source = open_source()
        try:
            return source.read(f"knowledge/{name}/{path}")
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    return read
