"""Issue 14 through a real `git push` into a repo made by `reconciler init` (real hooks, no
Docker): secrets the server does not allow, links and submodules in the tree, every pushed
commit validated, a time budget, hook scripts that cannot be injected into."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reconciler.gitops import init_repo
from tests.harness.server_config import allow_secrets

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "desired_state"
IDENT = ["-c", "user.name=pusher", "-c", "user.email=pusher@example.lan"]
CLI = [sys.executable, "-m", "reconciler.cli"]


def git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *IDENT, *args], cwd=cwd, capture_output=True, text=True, check=check, timeout=120
    )


class Pusher:
    def __init__(self, root: Path, **init: str) -> None:
        self.bare, self.work, self.state = root / "repo.git", root / "work", root / "state"
        init_repo(self.bare, seed=SEED, state_dir=self.state, **init)  # type: ignore[arg-type]
        git("clone", "-q", str(self.bare), str(self.work), cwd=root)

    def head(self) -> str:
        return git("rev-parse", "main", cwd=self.bare).stdout.strip()

    def edit(self, file: str, change: dict[str, object]) -> None:
        path = self.work / file
        doc = yaml.safe_load(path.read_text())
        doc.update(change)
        path.write_text(yaml.safe_dump(doc))

    def commit(self, message: str) -> None:
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", message, cwd=self.work)

    def push(self) -> subprocess.CompletedProcess[str]:
        return git("push", "origin", "HEAD:main", cwd=self.work, check=False)


@pytest.fixture
def pusher(tmp_path: Path) -> Pusher:
    return Pusher(tmp_path)


def _cloud(api_key: dict[str, str], base_url: str = "https://api.openai.com/v1") -> dict[str, object]:
    return {"cloud": [{"name": "openai", "base_url": base_url, "api_key": api_key}]}


# -- 1. a push cannot pick a secret of the server, nor send one where it likes -----------------
def test_a_push_naming_an_env_secret_the_server_does_not_allow_is_rejected(pusher: Pusher) -> None:
    before = pusher.head()
    pusher.edit("openwebui.yaml", _cloud({"env": "AWS_SECRET_ACCESS_KEY"}))
    pusher.commit("exfiltrate")
    out = pusher.push()
    assert out.returncode != 0 and pusher.head() == before
    assert "openwebui.yaml:" in out.stderr and "allows no secrets" in out.stderr
    assert "reconciler.toml" in out.stderr  # says how to allow one
    assert "Traceback" not in out.stderr


def test_an_allowed_secret_sent_to_another_host_is_rejected(
    pusher: Pusher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allow_secrets(
        monkeypatch, tmp_path, env=["OPENAI_API_KEY"], send_to={"OPENAI_API_KEY": ["api.openai.com"]}
    )
    pusher.edit("openwebui.yaml", _cloud({"env": "OPENAI_API_KEY"}))
    pusher.commit("the allowed key, to its host")
    assert pusher.push().returncode == 0
    pusher.edit(
        "openwebui.yaml", _cloud({"env": "OPENAI_API_KEY"}, base_url="https://collect.evil.example/v1")
    )
    pusher.commit("the allowed key, elsewhere")
    out = pusher.push()
    assert out.returncode != 0 and "collect.evil.example" in out.stderr and "does not allow" in out.stderr


@pytest.mark.parametrize(
    "kamal",
    [{"registry": {"server": "evil.example:5000", "password": {"env": "REG_PW"}}},
     {"servers": ["evil.example"], "registry": {"server": "127.0.0.1:5000", "password": {"env": "REG_PW"}}}],
)  # fmt: skip
def test_the_registry_and_the_kamal_servers_are_destinations_too(
    pusher: Pusher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kamal: dict[str, object]
) -> None:
    allow_secrets(monkeypatch, tmp_path, env=["REG_PW"])
    pusher.edit("openwebui.yaml", {"kamal": kamal})
    pusher.commit("registry password to another host")
    out = pusher.push()
    assert out.returncode != 0 and "evil.example" in out.stderr


# -- 2. links, submodules and type changes through git -----------------------------------------
def test_a_symlinked_knowledge_folder_in_a_commit_is_a_clear_rejection(pusher: Pusher) -> None:
    shutil.rmtree(pusher.work / "knowledge" / "work")
    (pusher.work / "knowledge" / "work").symlink_to("/etc/ssh", target_is_directory=True)
    pusher.commit("link")
    out = pusher.push()
    assert out.returncode != 0 and "knowledge/work is a symbolic link" in out.stderr
    assert "Traceback" not in out.stderr and "site-packages" not in out.stderr


def test_a_submodule_or_a_file_where_a_folder_is_expected_is_a_clear_rejection(pusher: Pusher) -> None:
    shutil.rmtree(pusher.work / "knowledge" / "work")
    git("rm", "-rq", "--cached", "knowledge/work", cwd=pusher.work)
    sha = pusher.head()
    git("update-index", "--add", "--cacheinfo", f"160000,{sha},knowledge/work", cwd=pusher.work)
    git("commit", "-q", "-m", "submodule", cwd=pusher.work)
    out = pusher.push()
    assert out.returncode != 0 and "knowledge/work is a submodule" in out.stderr
    git("reset", "-q", "--hard", "origin/main", cwd=pusher.work)
    shutil.rmtree(pusher.work / "knowledge" / "work")
    (pusher.work / "knowledge" / "work").write_text("a file now")
    pusher.commit("type change")
    out = pusher.push()
    assert out.returncode != 0 and "is a file, not a folder" in out.stderr and "Traceback" not in out.stderr


# -- 3. bounded cost: one pass over the tree, a time budget -----------------------------------
def test_reading_many_knowledge_files_never_walks_the_tree_from_the_root_again(
    pusher: Pusher, monkeypatch: pytest.MonkeyPatch
) -> None:
    import git as gitpython

    from reconciler.desired.load import load_desired
    from reconciler.desired.source import GitCommitSource

    folder = pusher.work / "knowledge" / "work"
    for i in range(300):
        (folder / f"doc{i}.md").write_text(f"doc {i}\n")
    pusher.commit("300 documents")
    assert pusher.push().returncode == 0
    lookups = 0
    original = gitpython.objects.tree.Tree.join

    def counting(self: object, file: str) -> object:
        nonlocal lookups
        lookups += 1
        return original(self, file)  # type: ignore[arg-type]

    monkeypatch.setattr(gitpython.objects.tree.Tree, "join", counting)
    monkeypatch.setattr(gitpython.objects.tree.Tree, "__truediv__", counting)
    with GitCommitSource(pusher.bare, "main") as source:
        state = load_desired(source)
    assert len(state.knowledge_files["work"]) >= 300 and lookups < 10


def test_a_push_over_the_hook_time_budget_is_rejected_with_a_clear_message(
    pusher: Pusher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_HOOK_BUDGET", "0")
    pusher.edit("server.yaml", {"lan_addresses": []})
    pusher.commit("anything")
    out = pusher.push()
    assert out.returncode != 0 and "took longer than 0 s" in out.stderr and "fewer commits" in out.stderr


# -- 4. no traceback through git either ---------------------------------------------------------
def test_a_huge_integer_through_git_is_a_line_not_a_traceback(pusher: Pusher) -> None:
    text = (pusher.work / "server.yaml").read_text().replace("models: 60GiB", "models: " + "9" * 5000)
    (pusher.work / "server.yaml").write_text(text)
    pusher.commit("5000 digits")
    out = pusher.push()
    assert out.returncode != 0 and "server.yaml:5:" in out.stderr and "Traceback" not in out.stderr


# -- 8. every commit of a push is validated ----------------------------------------------------
def test_an_invalid_commit_followed_by_a_valid_one_is_rejected(pusher: Pusher) -> None:
    before = pusher.head()
    (pusher.work / "ollama.yaml").write_text("models: [{name: 'a;rm -rf /'}]\n")
    pusher.commit("broken")
    git("checkout", "-q", "HEAD~1", "--", "ollama.yaml", cwd=pusher.work)
    pusher.commit("fixed again")
    out = pusher.push()
    assert out.returncode != 0 and pusher.head() == before
    assert "commit 1 of 2" in out.stderr and "ollama.yaml:1:" in out.stderr


def test_a_merge_brings_its_side_commits_under_validation(pusher: Pusher) -> None:
    git("push", "-q", "origin", "HEAD:refs/heads/scratch", cwd=pusher.work)  # other branches: not read
    (pusher.work / "ollama.yaml").write_text("models: [{name: 'x y'}]\n")
    pusher.commit("invalid on a side branch")
    assert git("push", "origin", "HEAD:refs/heads/scratch", cwd=pusher.work, check=False).returncode == 0
    git("checkout", "-q", "HEAD~1", "--", "ollama.yaml", cwd=pusher.work)
    pusher.commit("valid tip")
    out = pusher.push()  # main fast-forwards over the invalid commit that scratch already holds
    assert out.returncode != 0 and "x y" not in out.stderr


# -- 9. init writes hook scripts nothing can be injected into ----------------------------------
def test_init_quotes_the_state_dir_in_the_hook_scripts(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    hostile = tmp_path / f"state$(touch {marker})"
    run = subprocess.run(
        [*CLI, "init", str(tmp_path / "repo.git"), "--state-dir", str(hostile)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    git("clone", "-q", str(tmp_path / "repo.git"), str(tmp_path / "work"), cwd=tmp_path)
    (tmp_path / "work" / "note.md").write_text("x\n")
    git("add", "-A", cwd=tmp_path / "work")
    git("commit", "-q", "-m", "x", cwd=tmp_path / "work")
    out = git("push", "origin", "HEAD:main", cwd=tmp_path / "work", check=False)
    assert out.returncode == 0, out.stderr
    assert not marker.exists()


def test_init_refuses_a_branch_name_git_would_not_take(tmp_path: Path) -> None:
    run = subprocess.run(
        [*CLI, "init", str(tmp_path / "repo.git"), "--state-dir", str(tmp_path / "s"),
         "--branch", "x$(id)\nrm"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert run.returncode != 0 and "branch" in run.stderr and "Traceback" not in run.stderr
    assert (
        not (tmp_path / "repo.git" / "hooks" / "pre-receive").exists()
        or "$(id)" not in (tmp_path / "repo.git" / "hooks" / "pre-receive").read_text()
    )


def test_the_hook_scripts_are_still_plain_sh(tmp_path: Path) -> None:
    init_repo(tmp_path / "r.git", seed=SEED, state_dir=tmp_path / "my state")
    script = (tmp_path / "r.git" / "hooks" / "pre-receive").read_text()
    assert f"'{tmp_path}/my state'" in script
    assert (
        subprocess.run(
            ["sh", "-n", str(tmp_path / "r.git" / "hooks" / "pre-receive")], check=False
        ).returncode
        == 0
    )
    assert os.access(tmp_path / "r.git" / "hooks" / "pre-receive", os.X_OK)
