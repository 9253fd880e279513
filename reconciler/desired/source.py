"""Where the desired-state files come from: a directory or one git commit (readers only).

Both readers stay inside the repo: a symbolic link (to a file or a folder), a submodule, a
folder where a file is expected or a file where a folder is, a device or a pipe is refused
with `Unreadable`, never followed. Sizes are checked before a byte is read, and a commit's
tree is read in one pass: each folder is listed once, whatever the number of files.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

MAX_KNOWLEDGE_FILE = 64 * 2**20
_CHUNK = 2**20
_LINK_HINT = (
    "the reconciler reads only what is inside the repo: replace the link by the file or folder itself"
)


@dataclass(frozen=True)
class Unreadable(Exception):
    """A path of the repo that is not what the desired state can use."""

    path: str
    message: str
    hint: str = ""


class Source(Protocol):
    revision: str | None

    def read(self, path: str, limit: int) -> bytes | None:
        """The file's bytes, or None when nothing is at `path`. Raises Unreadable for a link,
        a folder, a submodule or a file larger than `limit` bytes (before reading it)."""

    def documents(self, prefix: str, limit: int, max_files: int) -> dict[str, str]:
        """sha256 of every file under `prefix/`, by path relative to it; {} when there is no
        such folder. Raises Unreadable as `read` does, for `prefix` and everything in it, and
        when it holds more than `max_files` files."""


def _too_many(path: str, max_files: int, found: dict[str, str]) -> None:
    if len(found) >= max_files:
        raise Unreadable(
            path, "holds too many files (at most 10,000 documents in all)", "split the knowledge"
        )


def _too_large(path: str, limit: int) -> Unreadable:
    return Unreadable(path, f"is larger than {limit // 2**20} MiB", "make it smaller or leave it out")


class DirSource:
    """A work tree (or any folder). Links are refused even when they point inside it."""

    def __init__(self, root: Path, revision: str | None = None) -> None:
        self.root = root
        self.revision = revision

    def _lstat(self, path: str) -> os.stat_result | None:
        """lstat of `path` after checking that no folder on the way is a link."""
        parts = [p for p in path.split("/") if p]
        current = self.root
        for index, part in enumerate(parts):
            if part in (".", ".."):
                raise Unreadable(path, "is not a plain path inside the repo")
            current = current / part
            try:
                info = current.lstat()
            except FileNotFoundError:
                return None
            shown = "/".join(parts[: index + 1])
            last = index == len(parts) - 1
            if stat.S_ISLNK(info.st_mode):
                raise Unreadable(shown, "is a symbolic link", _LINK_HINT)
            if not last and not stat.S_ISDIR(info.st_mode):
                raise Unreadable(shown, "is a file, not a folder", f"make {shown} a folder")
            if last:
                return info
        return self.root.lstat()

    def read(self, path: str, limit: int) -> bytes | None:
        info = self._lstat(path)
        if info is None:
            return None
        _check_file(path, info.st_mode)
        if info.st_size > limit:
            raise _too_large(path, limit)
        return _read_file(self.root / path, path, limit)

    def documents(self, prefix: str, limit: int, max_files: int) -> dict[str, str]:
        info = self._lstat(prefix)
        if info is None:
            return {}
        if not stat.S_ISDIR(info.st_mode):
            raise Unreadable(prefix, "is a file, not a folder", f"make {prefix} a folder of documents")
        found: dict[str, str] = {}
        self._walk(self.root / prefix, "", prefix, (limit, max_files), found)
        return dict(sorted(found.items()))

    def _walk(
        self, folder: Path, rel: str, prefix: str, limits: tuple[int, int], found: dict[str, str]
    ) -> None:
        limit, max_files = limits
        with os.scandir(folder) as entries:
            for entry in entries:
                name = f"{rel}{entry.name}"
                shown = f"{prefix}/{name}"
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    self._walk(Path(entry.path), f"{name}/", prefix, limits, found)
                    continue
                _too_many(prefix, max_files, found)
                if stat.S_ISLNK(info.st_mode):
                    raise Unreadable(shown, "is a symbolic link", _LINK_HINT)
                _check_file(shown, info.st_mode)
                if info.st_size > limit:
                    raise _too_large(shown, limit)
                found[name] = _hash_file(Path(entry.path), shown, limit)


def _check_file(path: str, mode: int) -> None:
    if stat.S_ISLNK(mode):
        raise Unreadable(path, "is a symbolic link", _LINK_HINT)
    if stat.S_ISDIR(mode):
        raise Unreadable(path, "is a folder, not a file", f"make {path} a file")
    if not stat.S_ISREG(mode):
        raise Unreadable(path, "is not a regular file (a device, pipe or socket)", "replace it by a file")


def _open(target: Path, shown: str) -> int:
    try:
        return os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise Unreadable(shown, f"cannot be read ({exc.strerror})") from None


def _read_file(target: Path, shown: str, limit: int) -> bytes:
    fd = _open(target, shown)
    with os.fdopen(fd, "rb") as fh:
        _check_file(shown, os.fstat(fh.fileno()).st_mode)  # what was opened, not what was listed
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise _too_large(shown, limit)
    return data


def _hash_file(target: Path, shown: str, limit: int) -> str:
    fd = _open(target, shown)
    digest = hashlib.sha256()
    total = 0
    with os.fdopen(fd, "rb") as fh:
        _check_file(shown, os.fstat(fh.fileno()).st_mode)
        while chunk := fh.read(_CHUNK):
            total += len(chunk)
            if total > limit:
                raise _too_large(shown, limit)
            digest.update(chunk)
    return digest.hexdigest()


_TREE, _LINK, _SUBMODULE = 0o040000, 0o120000, 0o160000


class GitCommitSource:
    """The tree of one commit, read with GitPython (bare repos included)."""

    def __init__(self, repo_path: Path, commit: str, *, _repo: Any = None, _listed: Any = None) -> None:
        import git  # local import: only `serve` and the hooks read commits

        self._repo = _repo if _repo is not None else git.Repo(repo_path)
        self._path = repo_path
        self._commit = self._repo.commit(commit)
        self.revision: str | None = self._commit.hexsha
        # trees listed so far, shared by the sources `at` makes (a push of many commits)
        self._listed: dict[bytes, dict[str, tuple[int, bytes]]] = _listed if _listed is not None else {}

    def at(self, commit: str) -> GitCommitSource:
        """Another commit of the same repo, sharing its git processes and listed trees."""
        return GitCommitSource(self._path, commit, _repo=self._repo, _listed=self._listed)

    def close(self) -> None:
        """Stop git's persistent cat-file processes (a long-running `serve` reads many commits)."""
        self._repo.close()

    def __enter__(self) -> GitCommitSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _list(self, binsha: bytes) -> dict[str, tuple[int, bytes]]:
        """name → (mode, sha) of one tree, read once."""
        if binsha not in self._listed:
            from git.objects.fun import tree_entries_from_data

            data = self._repo.odb.stream(binsha).read()
            self._listed[binsha] = {name: (mode, sha) for sha, mode, name in tree_entries_from_data(data)}
        return self._listed[binsha]

    def _lookup(self, path: str) -> tuple[int, bytes] | None:
        parts = [p for p in path.split("/") if p]
        entry: tuple[int, bytes] = (_TREE, self._commit.tree.binsha)
        for index, part in enumerate(parts):
            shown = "/".join(parts[:index])
            if entry[0] != _TREE:
                raise _not_a_folder(shown, entry[0])
            found = self._list(entry[1]).get(part)
            if found is None:
                return None
            entry = found
        return entry

    def read(self, path: str, limit: int) -> bytes | None:
        entry = self._lookup(path)
        if entry is None:
            return None
        _check_blob(path, entry[0])
        if self._size(entry[1]) > limit:
            raise _too_large(path, limit)
        data: bytes = self._repo.odb.stream(entry[1]).read()
        return data

    def _size(self, binsha: bytes) -> int:
        return int(self._repo.odb.info(binsha).size)

    def documents(self, prefix: str, limit: int, max_files: int) -> dict[str, str]:
        entry = self._lookup(prefix)
        if entry is None:
            return {}
        if entry[0] != _TREE:
            raise _not_a_folder(prefix, entry[0])
        found: dict[str, str] = {}
        self._walk(entry[1], "", prefix, (limit, max_files), found)
        return dict(sorted(found.items()))

    def _walk(
        self, tree: bytes, rel: str, prefix: str, limits: tuple[int, int], found: dict[str, str]
    ) -> None:
        limit, max_files = limits
        for name, (mode, sha) in self._list(tree).items():
            path = f"{rel}{name}"
            if mode == _TREE:
                self._walk(sha, f"{path}/", prefix, limits, found)
                continue
            _too_many(prefix, max_files, found)
            shown = f"{prefix}/{path}"
            _check_blob(shown, mode)
            if self._size(sha) > limit:  # asked apart (cat-file --batch-check): nothing read
                raise _too_large(shown, limit)
            stream: Any = self._repo.odb.stream(sha)
            digest = hashlib.sha256()
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
            found[path] = digest.hexdigest()


def _check_blob(path: str, mode: int) -> None:
    if mode == _LINK:
        raise Unreadable(path, "is a symbolic link", _LINK_HINT)
    if mode == _SUBMODULE:
        raise Unreadable(path, "is a submodule", "the reconciler reads only files committed in this repo")
    if mode == _TREE:
        raise Unreadable(path, "is a folder, not a file", f"make {path} a file")


def _not_a_folder(path: str, mode: int) -> Unreadable:
    if mode == _LINK:
        return Unreadable(path, "is a symbolic link", _LINK_HINT)
    if mode == _SUBMODULE:
        return Unreadable(path, "is a submodule", "commit the documents themselves in this repo")
    return Unreadable(path, "is a file, not a folder", f"make {path} a folder")


def knowledge_reader(open_source: Callable[[], Source]) -> Callable[[str, str], bytes | None]:
    """Bytes of `knowledge/<name>/<path>` of the desired commit, for OpenWebUI's executor (the
    desired state holds only their hashes). Each read opens and closes the source."""

    def read(name: str, path: str) -> bytes | None:
        source = open_source()
        try:
            return source.read(f"knowledge/{name}/{path}", MAX_KNOWLEDGE_FILE)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    return read
