"""The whole example for real: the real OpenWebUI image deployed by the real Kamal over SSH to this
machine, talking to the fake Ollama in the container the reconciler creates, converged from
`desired_state/` through the bare repo (tests/harness/fullstack.py).

All run in CI, marked `e2e` and `fullstack` (`./scripts/test.sh -m 'not fullstack'` leaves them
out of a quick local run): the first reconcile from an empty server followed by the life of
that deployment through git (one bring-up), and the README's demo from a fresh clone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reconciler.desired.load import load_desired
from reconciler.desired.refs import canonical
from reconciler.desired.schema import DesiredState
from reconciler.desired.source import GitCommitSource
from reconciler.observe.kamal import running_versions
from reconciler.observe.openwebui import observe_openwebui
from reconciler.plan.kamal import deploy_hash
from tests.e2e.gitops import git
from tests.harness.browser import ARTIFACTS, open_page, selected_model
from tests.harness.fullstack import FullStack, full_stack
from tests.harness.openwebui_image import BROKEN_TAG, OFFICIAL_TAG, VERSION, ensure_broken_openwebui_image

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHUNK = "NVIDIA RTX 3070, 8 GB VRAM"  # a line of knowledge/work/gpu-server.md
QUERY_TASK = "### Task:\nAnalyze the chat history"  # OpenWebUI's query-generation prompt


@pytest.fixture
def fs() -> Iterator[FullStack]:
    with full_stack(lambda line: print(line, flush=True), cloud=True) as stack:
        yield stack


def _desired(fs: FullStack) -> DesiredState:
    return load_desired(GitCommitSource(fs.ops.bare, "main"))


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content") or "") for m in messages)


def _answering(events: list[dict[str, Any]], question: str) -> dict[str, Any]:
    """The chat that answered `question` (OpenWebUI also asks the task model for queries)."""
    found = [e for e in events if question in _text(e["messages"]) and QUERY_TASK not in _text(e["messages"])]
    assert len(found) == 1, [e["messages"] for e in events]
    return found[0]


def _model_shown(dom: str) -> bool:
    return selected_model(dom) is not None


def dismiss_whats_new(fs: FullStack) -> None:
    """The admin has seen this version's release notes (the user setting the button writes)."""
    httpx.post(
        f"{fs.webui_url}/api/v1/users/user/settings/update",
        headers={"Authorization": f"Bearer {fs.token()}"},
        json={"ui": {"version": VERSION}},
        timeout=30,
    ).raise_for_status()


def _version(container: Any) -> str:
    return str(container.labels.get("reconciler.kamal-version"))


# ── from an empty server ─────────────────────────────────────────────────────────────────────


OPENWEBUI_API_ACTIONS = ("create knowledge base ", "add ", "create preset ", "hide ")


def _one_reconcile_brings_up_the_whole_example(fs: FullStack, tmp_path: Path) -> None:
    applied = fs.apply("--json")
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]
    events = _events(applied.stdout)
    assert [e["result"] for e in events if e["event"] == "reconcile.done"] == ["converged"]
    assert not [e for e in events if e["event"] in ("action.failed", "action.blocked")]
    started = [e["action"] for e in events if e["event"] == "action.start"]
    assert started[0].startswith("create container "), started[:3]
    # OpenWebUI is deployed next (after linking the networks it reaches Ollama over, if any)
    head = [a for a in started[1:3] if not a.startswith("link networks: ")]
    assert head[0].startswith("kamal setup OpenWebUI"), started[:4]
    assert sum(a.startswith("pull ") for a in started) == 4
    # OpenWebUI's knowledge and presets wait for Ollama's models: files are embedded through Ollama
    settings = [i for i, a in enumerate(started) if a.startswith(OPENWEBUI_API_ACTIONS)]
    assert settings and min(settings) > max(i for i, a in enumerate(started) if a.startswith("pull "))
    desired = _desired(fs)
    assert desired.openwebui is not None

    # Ollama and OpenWebUI run; OpenWebUI is the wrapper FROM the image the example names
    assert fs.client.containers.get(fs.stack.name).status == "running"
    (webui,) = fs.running_webui()
    assert _version(webui) == deploy_hash(desired)
    image = fs.client.images.get(webui.image.id)
    assert image.attrs["Config"]["Cmd"] == ["bash", "start.sh"]
    assert "8080/tcp" in image.attrs["Config"]["ExposedPorts"]
    assert image.labels["org.opencontainers.image.version"] == VERSION  # inherited from OFFICIAL_TAG
    assert OFFICIAL_TAG in (fs.state_dir / "kamal" / "Dockerfile").read_text()
    mounts = {m["Destination"]: m.get("Name") for m in webui.attrs["Mounts"]}
    assert mounts["/app/backend/data"] == fs.data_volume
    assert httpx.get(f"{fs.webui_url}/health", timeout=10).json() == {"status": True}
    client = fs.webui()
    assert client.config().get("version") == VERSION

    # the model list: the desired models, less the hidden embedding model; presets; the cloud's
    view = observe_openwebui(client)
    visible = {
        canonical(m.id) for m in view.offered if m.owned_by == "ollama" and not m.preset and not m.hidden
    }
    embed = canonical(desired.openwebui.rag.embedding_model)
    assert visible == {canonical(m.name) for m in desired.ollama.all_models()} - {embed}
    assert any(canonical(m.id) == embed and m.hidden for m in view.offered)
    assert {p.id for p in desired.openwebui.presets} <= {m.id for m in view.offered if m.preset}
    assert fs.cloud is not None
    assert any(m.id == fs.cloud.model and m.owned_by == "openai" for m in view.offered)

    # a chat through each preset reaches its model with the preset's prompt and the `work` chunk
    for preset in desired.openwebui.presets:
        question = f"Which GPU does the server have? (asked through {preset.id})"
        answer = fs.chat(preset.id, [{"role": "user", "content": question}])
        local = not preset.base.startswith("cloud/")
        chat = _answering(fs.ollama_events("chat") if local else fs.cloud_events("chat"), question)
        assert chat["path"] == ("/api/chat" if local else "/v1/chat/completions")
        assert chat["model"] == (preset.base if local else fs.cloud.model)
        assert chat["messages"][0] == {"role": "system", "content": preset.system}
        assert CHUNK in _text(chat["messages"]), "the knowledge base's chunk was not retrieved"
        assert answer == chat["answer"] and answer
    assert fs.cloud_events("openai_unauthorized") == []  # the key reached the cloud by reference

    # one chat switching between a local and a cloud model keeps its history
    first = "Remember the word heliotrope."
    reply = fs.chat("phi3-fast", [{"role": "user", "content": first}])
    follow = "Which word did I ask you to remember?"
    history = [
        {"role": "user", "content": first},
        {"role": "assistant", "content": reply},
        {"role": "user", "content": follow},
    ]
    fs.chat("cloud-mini", history)
    cloud_chat = _answering(fs.cloud_events("chat"), follow)
    assert first in _text(cloud_chat["messages"]) and reply in [m["content"] for m in cloud_chat["messages"]]

    # headless Chromium: no login, the default model selected
    page = open_page(
        fs.webui_url + "/", ARTIFACTS / "openwebui-kamal-first.png", tmp_path / "profile", ready=_model_shown
    )
    assert "Sign in" not in page and 'type="password"' not in page, page[-3000:]
    assert selected_model(page) == desired.openwebui.default_models[0], page[-3000:]
    dismiss_whats_new(fs)  # what "Okay, Let's Go!" on the release notes does, for the screenshot
    shot = ARTIFACTS / "openwebui-kamal.png"
    page = open_page(fs.webui_url + "/", shot, tmp_path / "profile", ready=_model_shown)
    (ARTIFACTS / "openwebui-kamal.html").write_text(page)
    assert shot.is_file() and shot.stat().st_size > 10_000
    assert selected_model(page) == desired.openwebui.default_models[0]

    # the cloud key was passed by reference: never in git, the logs, the events or the page
    key = fs.cloud.key
    history_text = git("log", "-p", "--all", cwd=fs.ops.bare).stdout
    assert key not in history_text and key not in applied.stdout + applied.stderr
    assert key not in page and key not in httpx.get(f"{fs.webui_url}/api/config", timeout=10).text
    secrets_file = fs.state_dir / "kamal" / ".kamal" / "secrets"
    assert key in secrets_file.read_text() and secrets_file.stat().st_mode & 0o077 == 0
    for path in fs.state_dir.rglob("*"):
        if path.is_file() and path != secrets_file:
            assert key.encode() not in path.read_bytes(), path
    for container in (webui, fs.client.containers.get(fs.stack.name)):
        assert key not in container.logs().decode(errors="replace"), container.name


# ── the `fullstack` tests ────────────────────────────────────────────────────────────────────


def _push(fs: FullStack, message: str, edit: dict[str, Any]) -> str:
    """Commit `edit` ({file: (path in the YAML, value)}), push, return the push output."""
    files = {}
    for name, changes in edit.items():
        doc = yaml.safe_load((fs.ops.work / name).read_text())
        for path, value in changes:
            target = doc
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        files[name] = yaml.safe_dump(doc, sort_keys=False)
    fs.ops.commit(message, files)
    done = fs.ops.push(timeout=600)
    return done.stdout + done.stderr


def _rollback(fs: FullStack) -> str:
    done = subprocess.run(
        fs.cli("rollback", "--repo", str(fs.ops.bare)),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "RECONCILER_PUSH_TIMEOUT": "600"},
        check=False,
    )
    git("pull", "-q", "--ff-only", cwd=fs.ops.work)
    return done.stdout + done.stderr


def _data(fs: FullStack, chat_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {fs.token()}"}
    with httpx.Client(base_url=fs.webui_url, headers=headers, timeout=30) as http:
        chat = http.get(f"/api/v1/chats/{chat_id}").json()
        users = http.get("/api/v1/users/all").json()
        knowledge = fs.webui().knowledge_bases()
    return {
        "messages": [(m["role"], m.get("model"), m["content"]) for m in chat["chat"]["messages"]],
        "users": sorted(u["email"] for u in users["users"]),
        "knowledge": {k["name"]: len(fs.webui().knowledge_files(k["id"])) for k in knowledge},
    }


@pytest.mark.fullstack
def test_the_whole_example_from_empty_then_openwebui_through_git_keeping_its_data(
    fs: FullStack, tmp_path: Path
) -> None:
    """One bring-up for both (it is the slowest part of the suite): the first reconcile from an
    empty server, then OpenWebUI's life through git on that same deployment."""
    _one_reconcile_brings_up_the_whole_example(fs, tmp_path)
    _openwebui_through_git_redeploys_rolls_back_and_keeps_its_data(fs)


def _openwebui_through_git_redeploys_rolls_back_and_keeps_its_data(fs: FullStack) -> None:
    assert fs.apply().returncode == 0  # nothing left to do: the same deployment
    fs.start_serve()
    fs.ops.wait_event(lambda e: e["event"] == "reconcile.done", timeout=180)
    (first,) = fs.running_webui()
    base_version = _version(first)
    # a chat that switched between a local and a cloud model, the admin, the knowledge base
    assert fs.cloud is not None
    chat = {
        "title": "local and cloud",
        "models": ["phi3-fast", "cloud-mini"],
        "messages": [
            {"id": "1", "role": "user", "content": "hello"},
            {"id": "2", "role": "assistant", "model": "phi3-fast", "content": "ok"},
            {"id": "3", "role": "user", "content": "and you?"},
            {"id": "4", "role": "assistant", "model": "cloud-mini", "content": "ok too"},
        ],
    }
    created = httpx.post(
        f"{fs.webui_url}/api/v1/chats/new",
        headers={"Authorization": f"Bearer {fs.token()}"},
        json={"chat": chat},
        timeout=30,
    )
    created.raise_for_status()
    chat_id = created.json()["id"]
    before = _data(fs, chat_id)
    assert before["knowledge"] == {"work": 3} and before["users"] == ["admin@localhost"]
    assert [m[1] for m in before["messages"] if m[0] == "assistant"] == ["phi3-fast", "cloud-mini"]

    # an OpenWebUI setting changed in git: a new version through `kamal deploy`, data kept
    out = _push(fs, "Fewer RAG chunks", {"openwebui.yaml": [(("rag", "top_k"), 3)]})
    assert re.search(r"kamal deploy --version=\w+", out) and "✔ converged" in out, out[-3000:]
    (second,) = fs.running_webui()
    assert _version(second) != base_version and "RAG_TOP_K=3" in second.attrs["Config"]["Env"]
    assert _data(fs, chat_id) == before

    # git revert: `kamal rollback` to the version still on the server
    out = _rollback(fs)
    assert f"kamal rollback --version={base_version}" in out and "✔ converged" in out, out[-3000:]
    (third,) = fs.running_webui()
    assert _version(third) == base_version and _data(fs, chat_id) == before

    # the Ollama container recreated: OpenWebUI still reaches it by name
    ollama_id = fs.client.containers.get(fs.stack.name).id
    parallel = ("container", "env", "OLLAMA_NUM_PARALLEL")
    out = _push(fs, "Two parallel requests", {"ollama.yaml": [(parallel, 2)]})
    assert "recreate container" in out and "kamal|" not in out and "✔ converged" in out, out[-3000:]
    assert fs.client.containers.get(fs.stack.name).id != ollama_id
    assert {canonical(m.name) for m in _desired(fs).ollama.all_models()} <= {
        canonical(m["id"]) for m in fs.webui().models()
    }
    question = "Is Ollama still there?"
    assert (
        fs.chat("phi3-fast", [{"role": "user", "content": question}])
        == _answering(fs.ollama_events("chat"), question)["answer"]
    )

    # a broken image: Kamal's own error lines in the push output, the old version serving
    broken = ensure_broken_openwebui_image(fs.client)
    assert broken == BROKEN_TAG
    out = _push(fs, "A broken OpenWebUI", {"openwebui.yaml": [(("image",), BROKEN_TAG)]})
    assert "kamal| " in out and "ERROR" in out and re.search(r"not ready|unhealthy|exited", out), out[-3000:]
    assert "✘ failed" in out, out[-3000:]
    # serve retries the failed reconcile, but not that version: OpenWebUI is not stopped again
    mark = len(fs.ops.events())
    retried = fs.ops.wait_event(lambda e: e["event"] == "reconcile.done", timeout=120, after=mark)
    assert retried["result"] == "degraded", retried
    assert "openwebui_held_back" in [n["kind"] for n in retried["notes"]], retried
    assert not [e for e in fs.ops.events()[mark:] if e["event"] == "kamal.start"]
    degraded = {c["type"]: c for c in fs.ops.status()["conditions"]}["Degraded"]
    assert degraded["status"] is True and "held back" in degraded["message"]
    assert running_versions(fs.client, fs.service) == (base_version,)  # the old one serves
    assert httpx.get(f"{fs.webui_url}/health", timeout=10).json() == {"status": True}
    assert _data(fs, chat_id) == before
    out = _rollback(fs)  # back to a good image
    assert "✔ converged" in out, out[-3000:]


@pytest.mark.fullstack
def test_a_fresh_clone_runs_the_demo_to_a_working_openwebui(tmp_path: Path) -> None:
    """The README's main job, from `git clone`: `./scripts/demo.sh --keep` ends with OpenWebUI
    answering on the URL it prints; Ctrl-C removes everything it started."""
    clone = tmp_path / "clone"
    git("clone", "-q", str(ROOT), str(clone), cwd=tmp_path)
    env = {
        **os.environ,
        "RECONCILER_DEMO_MANIFEST": str(tmp_path / "demo-manifest.json"),
        "RECONCILER_KEEP_DOCKERD": "1",
        "PATH": os.environ["PATH"].replace(str(ROOT / ".venv" / "bin") + os.pathsep, ""),
    }
    env.pop("VIRTUAL_ENV", None)
    started = time.monotonic()
    demo = subprocess.Popen(
        ["./scripts/demo.sh", "--keep"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert demo.stdout is not None
    lines: list[str] = []
    url = None
    for line in demo.stdout:
        lines.append(line)
        found = re.search(r"OpenWebUI is answering at (http://127\.0\.0\.1:\d+)", line)
        if found:
            url = found.group(1)
            break
    try:
        assert url is not None, "".join(lines[-60:])
        seconds = time.monotonic() - started
        assert httpx.get(f"{url}/health", timeout=10).json() == {"status": True}
        shot = ARTIFACTS / "demo-openwebui.png"
        page = open_page(url + "/", shot, tmp_path / "profile", ready=_model_shown)
        assert shot.is_file() and shot.stat().st_size > 10_000
        assert "Sign in" not in page and "llama3:8b-instruct-q4_K_M" in str(selected_model(page))
        (ARTIFACTS / "demo-timing.txt").write_text(f"fresh clone to OpenWebUI answering: {seconds:.0f} s\n")
        transcript = "".join(lines)
        assert "remote: reconciler: ✔ converged" in transcript  # the push streamed back
        # the fake's reply is its performance model's pieces (never empty), not a fixed word
        assert re.search(r"a chat through the preset phi3-fast -> '[^']+'", transcript), transcript[-3000:]
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        rest, _ = demo.communicate(timeout=300)
    assert "removing everything the demo started" in rest, rest[-3000:]
    assert not (tmp_path / "demo-manifest.json").exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=5)
    print(f"demo from a fresh clone: OpenWebUI answering after {seconds:.0f} s", file=sys.stderr)
