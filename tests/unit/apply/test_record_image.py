"""`record: commit` for an image: a commit by the reconciler of the new tag, only that scalar."""

from __future__ import annotations

import subprocess
from pathlib import Path

from reconciler.apply.record import record_image
from reconciler.plan.actions import UpdateImage

OLLAMA_YAML = (
    'container:\n  image: "ollama/ollama:0.32.15"   # the server\'s Ollama\n  name: ollama\nmodels: []\n'
)


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_the_new_tag_is_committed_by_the_reconciler_and_a_revert_restores_the_old(tmp_path: Path) -> None:
    bare, work = tmp_path / "desired.git", tmp_path / "work"
    _git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    _git("clone", "-q", str(bare), str(work), cwd=tmp_path)
    (work / "ollama.yaml").write_text(OLLAMA_YAML)
    _git("add", "ollama.yaml", cwd=work)
    _git("-c", "user.name=owner", "-c", "user.email=o@x", "commit", "-q", "-m", "first", cwd=work)
    _git("push", "-q", "origin", "HEAD:main", cwd=work)
    action = UpdateImage(component="ollama", image="ollama/ollama:0.32.15", old_tag="0.32.15",
                         new_tag="0.33.0", reason="release 0.33.0 published")  # fmt: skip
    sha = record_image(bare, "main", action)
    assert _git("rev-parse", "main", cwd=bare) == sha
    assert _git("log", "-1", "--format=%an <%ae>|%s", sha, cwd=bare) == (
        "reconciler <reconciler@localhost>|Update the ollama image to 0.33.0"
    )
    assert _git("show", f"{sha}:ollama.yaml", cwd=bare) == OLLAMA_YAML.replace("0.32.15", "0.33.0").strip()
    _git("pull", "-q", "origin", "main", cwd=work)
    _git("-c", "user.name=owner", "-c", "user.email=o@x", "revert", "--no-edit", sha, cwd=work)
    assert (work / "ollama.yaml").read_text() == OLLAMA_YAML
