"""The whole example for real: the real OpenWebUI image deployed by the real Kamal over SSH to this
machine, talking to the fake Ollama in the container the reconciler creates, converged from
`desired_state/` through the bare repo (tests/harness/fullstack.py).

All run in CI, marked `e2e` and `fullstack` (`./scripts/test.sh -m 'not fullstack'` leaves them
out of a quick local run): the first reconcile from an empty server followed by the life of
that deployment through git (one bring-up), and the README's demo from a fresh clone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from reconciler.desired.load import load_desired
from reconciler.desired.refs import canonical
from reconciler.desired.schema import DesiredState
from reconciler.desired.source import GitCommitSource
from reconciler.kamal.tls import ensure_tls, tls_hosts
from reconciler.observe.kamal import running_versions
from reconciler.observe.openwebui import observe_openwebui
from reconciler.openwebui.client import OpenWebUIClient, OpenWebUIRefused
from reconciler.plan.kamal import deploy_hash
from tests.e2e.gitops import git
from tests.harness.browser import (
    ARTIFACTS,
    MEDIA_FLAGS,
    MICROPHONE,
    evaluate,
    open_page,
    selected_model,
    trusting,
)
from tests.harness.fullstack import FullStack, family_files, full_stack
from tests.harness.openwebui_image import BROKEN_TAG, OFFICIAL_TAG, VERSION, ensure_broken_openwebui_image

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHUNK = "NVIDIA RTX 3070, 8 GB VRAM"  # a line of knowledge/work/gpu-server.md
QUERY_TASK = "### Task:\nAnalyze the chat history"  # OpenWebUI's query-generation prompt


# The family's passwords: files of the server's secrets directory, never in git.
PASSWORDS = {
    "openwebui-admin.password": "Owner-Pass-1!",
    "alex.password": "Alex-Pass-2!",
    "mia.password": "Mia-Pass-3!",
    "leo.password": "Leo-Pass-4!",
}
LOGINS = {
    "sam@home.lan": "openwebui-admin.password",
    "alex@home.lan": "alex.password",
    "mia@home.lan": "mia.password",
    "leo@home.lan": "leo.password",
}


@pytest.fixture
def fs() -> Iterator[FullStack]:
    with full_stack(lambda line: print(line, flush=True), cloud=True, secret_files=PASSWORDS) as stack:
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
    with fs.http() as http:
        http.post(
            "/api/v1/users/user/settings/update",
            headers={"Authorization": f"Bearer {fs.token()}"},
            json={"ui": {"version": VERSION}},
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
    with fs.http() as http:
        assert http.get("/health").json() == {"status": True}
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

    # headless Chromium trusting only the reconciler's CA: no login, the default model selected
    trusted = trusting(fs.ca_path, tmp_path / "home")
    page = open_page(
        fs.webui_url + "/",
        ARTIFACTS / "openwebui-kamal-first.png",
        tmp_path / "profile",
        ready=_model_shown,
        env=trusted,
    )
    assert "Sign in" not in page and 'type="password"' not in page, page[-3000:]
    assert selected_model(page) == desired.openwebui.default_models[0], page[-3000:]
    dismiss_whats_new(fs)  # what "Okay, Let's Go!" on the release notes does, for the screenshot
    shot = ARTIFACTS / "openwebui-kamal.png"
    page = open_page(fs.webui_url + "/", shot, tmp_path / "profile", ready=_model_shown, env=trusted)
    (ARTIFACTS / "openwebui-kamal.html").write_text(page)
    assert shot.is_file() and shot.stat().st_size > 10_000
    assert selected_model(page) == desired.openwebui.default_models[0]
    _secure_context_on_the_lan(fs, trusted, tmp_path)

    # the cloud key was passed by reference: never in git, the logs, the events or the page
    key = fs.cloud.key
    history_text = git("log", "-p", "--all", cwd=fs.ops.bare).stdout
    assert key not in history_text and key not in applied.stdout + applied.stderr
    with fs.http() as http:
        assert key not in page and key not in http.get("/api/config").text
    secrets_file = fs.state_dir / "kamal" / ".kamal" / "secrets"
    assert key in secrets_file.read_text() and secrets_file.stat().st_mode & 0o077 == 0
    for path in fs.state_dir.rglob("*"):
        if path.is_file() and path != secrets_file:
            assert key.encode() not in path.read_bytes(), path
    for container in (webui, fs.client.containers.get(fs.stack.name)):
        assert key not in container.logs().decode(errors="replace"), container.name


def _secure_context_on_the_lan(fs: FullStack, trusted: dict[str, str], tmp_path: Path) -> None:
    """What a phone on the LAN gets: the page over HTTPS on the LAN address, its certificate
    verified by a browser that trusts the reconciler's CA, and the microphone there (Chromium's
    fake device) — but not on a plain-HTTP LAN origin, and no page without the CA."""
    https = evaluate(fs.lan_url + "/", MICROPHONE, tmp_path / "lan", env=trusted, flags=MEDIA_FLAGS)
    assert https["error"] is None and https["href"] == fs.lan_url + "/", https
    assert https["value"] == {
        "origin": fs.lan_url, "secure": True, "mediaDevices": True, "audioTracks": 1
    }, https  # fmt: skip
    untrusted = evaluate(
        fs.lan_url + "/", "location.href", tmp_path / "untrusted", env={"HOME": str(tmp_path)}
    )
    assert untrusted["error"] == "net::ERR_CERT_AUTHORITY_INVALID", untrusted
    # kamal-proxy's plain-HTTP port only redirects to HTTPS (no OpenWebUI over HTTP on the LAN) ...
    plain_port = _desired(fs).openwebui.exposure.http_port  # type: ignore[union-attr]
    redirect = httpx.get(f"http://{fs.lan_address}:{plain_port}/", timeout=10)
    assert redirect.status_code == 301 and redirect.headers["location"] == f"https://{fs.lan_address}/"
    # ... and a page served over plain HTTP on the LAN address gets no microphone at all
    with _plain_http_page(fs.lan_address) as plain:
        http = evaluate(plain, MICROPHONE, tmp_path / "plain", env=trusted, flags=MEDIA_FLAGS)
    assert http["error"] is None and http["value"]["secure"] is False, http
    assert http["value"]["mediaDevices"] is False, http


@contextlib.contextmanager
def _plain_http_page(address: str) -> Iterator[str]:
    server = ThreadingHTTPServer((address, 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>plain</title>plain HTTP"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


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
    with fs.http(headers=headers) as http:
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
    """One bring-up for all three (it is the slowest part of the suite): the first reconcile from
    an empty server, OpenWebUI's life through git on that same deployment, then the family
    example pushed over it."""
    _one_reconcile_brings_up_the_whole_example(fs, tmp_path)
    chat_id, messages = _openwebui_through_git_redeploys_rolls_back_and_keeps_its_data(fs)
    _the_family_moves_in(fs, chat_id, messages, tmp_path)


def _openwebui_through_git_redeploys_rolls_back_and_keeps_its_data(
    fs: FullStack,
) -> tuple[str, list[tuple[str, str | None, str]]]:
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
    with fs.http() as http:
        created = http.post(
            "/api/v1/chats/new", headers={"Authorization": f"Bearer {fs.token()}"}, json={"chat": chat}
        )
    created.raise_for_status()
    chat_id = created.json()["id"]
    before = _data(fs, chat_id)
    assert before["knowledge"] == {"work": 3} and before["users"] == ["admin@localhost"]
    assert [m[1] for m in before["messages"] if m[0] == "assistant"] == ["phi3-fast", "cloud-mini"]

    # the LAN certificate near its expiry (issued 380 days ago): renewed at the next reconcile,
    # and the deploy it plans has kamal-proxy serve the new one
    names, addresses = tls_hosts(_desired(fs))
    old = ensure_tls(
        fs.state_dir / "tls", names, addresses, now=datetime.now(UTC) - timedelta(days=380), renew=True
    )
    served = fs.served_certificate()
    assert served.not_valid_after_utc > old.not_after  # served: the first one, until a deploy

    # an OpenWebUI setting changed in git: a new version through `kamal deploy`, data kept
    out = _push(fs, "Fewer RAG chunks", {"openwebui.yaml": [(("rag", "top_k"), 3)]})
    assert re.search(r"kamal deploy --version=\w+", out) and "✔ converged" in out, out[-3000:]
    renewed = fs.served_certificate()
    on_disk = x509.load_pem_x509_certificate((fs.state_dir / "tls" / "server.crt").read_bytes())
    assert renewed.fingerprint(hashes.SHA256()) == on_disk.fingerprint(hashes.SHA256())
    assert renewed.not_valid_after_utc - datetime.now(UTC) > timedelta(days=300), renewed
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
    with fs.http() as http:
        assert http.get("/health").json() == {"status": True}
    assert _data(fs, chat_id) == before
    out = _rollback(fs)  # back to a good image
    assert "✔ converged" in out, out[-3000:]
    return chat_id, before["messages"]


# ── the family moves in: examples/family/ over the running example ─────────────────────────


def _signin(fs: FullStack, email: str, password: str) -> OpenWebUIClient:
    client = OpenWebUIClient(fs.webui_url, timeout=30, http=httpx.Client(verify=fs.verify(), timeout=30))
    client.signin(email, password)
    return client


def _token(fs: FullStack, email: str) -> str:
    with fs.http() as http:
        form = {"email": email, "password": PASSWORDS[LOGINS[email]]}
        answer = http.post("/api/v1/auths/signin", json=form)
    answer.raise_for_status()
    return str(answer.json()["token"])


def _the_family_moves_in(
    fs: FullStack, chat_id: str, messages: list[tuple[str, str | None, str]], tmp_path: Path
) -> None:
    """One push turns the one-person example into the family's: login on, the built-in admin
    made the owner's account (its chat kept), everyone's account from git, the kids' picker
    down to Phi3 and their homework, and a browser on the HTTPS LAN origin at the sign-in form."""
    shutil.rmtree(fs.ops.work / "knowledge")  # the example's `work` base goes, `homework` comes
    fs.ops.commit("The family moves in", family_files(fs))
    done = fs.ops.push(timeout=600)
    out = done.stdout + done.stderr
    assert "✔ converged" in out, out[-4000:]
    assert re.search(r"kamal deploy --version=\w+", out), out[-4000:]
    assert "make OpenWebUI's one-person admin admin@localhost the account of sam@home.lan" in out, out[-4000:]
    assert not [p for p in PASSWORDS.values() if p in out]
    webui = _desired(fs).openwebui
    assert webui is not None and webui.auth
    (running,) = fs.running_webui()
    assert "WEBUI_AUTH=True" in running.attrs["Config"]["Env"]

    # the one-person era's chat is the owner's now; OpenWebUI's default password lets nobody in
    with fs.http(headers={"Authorization": f"Bearer {_token(fs, 'sam@home.lan')}"}) as http:
        chat = http.get(f"/api/v1/chats/{chat_id}").json()
    assert [(m["role"], m.get("model"), m["content"]) for m in chat["chat"]["messages"]] == messages
    with pytest.raises(OpenWebUIRefused):
        _signin(fs, "admin@localhost", "admin")
    for email, secret in LOGINS.items():
        assert _signin(fs, email, PASSWORDS[secret]).signed_in_as == email

    # a kid sees only Phi3, the homework preset and the homework base
    kid = _signin(fs, "mia@home.lan", PASSWORDS["mia.password"])
    assert sorted(m["id"] for m in kid.models()) == sorted(["homework-helper", fs.local["phi3:mini"]])
    assert [k["name"] for k in kid.knowledge_bases()] == ["homework"]
    assert fs.apply("--dry-run").returncode == 0  # nothing left to do

    # the HTTPS LAN origin, trusting only the reconciler's CA: the sign-in form, not a chat
    trusted = trusting(fs.ca_path, tmp_path / "home-family")
    page = open_page(
        fs.lan_url + "/",
        ARTIFACTS / "openwebui-family-signin.png",
        tmp_path / "profile-family",
        ready=lambda dom: 'type="password"' in dom,
        env=trusted,
    )
    assert 'type="password"' in page and 'type="email"' in page, page[-3000:]
    assert selected_model(page) is None
    history = git("log", "-p", "--all", cwd=fs.ops.bare).stdout
    assert not [p for p in PASSWORDS.values() if p in history]


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
    url = ca = None
    for line in demo.stdout:
        lines.append(line)
        found = re.search(r"OpenWebUI is answering at (https://127\.0\.0\.1:\d+)", line)
        if found:
            url = found.group(1)
        found_ca = re.search(r"trust (/\S+/tls/ca\.crt)", line)
        if found_ca:
            ca = Path(found_ca.group(1))
            break
    try:
        assert url is not None, "".join(lines[-60:])
        seconds = time.monotonic() - started
        assert url is not None and ca is not None, "".join(lines[-60:])
        verify = ssl.create_default_context(cafile=str(ca))
        assert httpx.get(f"{url}/health", timeout=10, verify=verify).json() == {"status": True}
        shot = ARTIFACTS / "demo-openwebui.png"
        trusted = trusting(ca, tmp_path / "home")
        page = open_page(url + "/", shot, tmp_path / "profile", ready=_model_shown, env=trusted)
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
        httpx.get(f"{url}/health", timeout=5, verify=verify)
    print(f"demo from a fresh clone: OpenWebUI answering after {seconds:.0f} s", file=sys.stderr)
