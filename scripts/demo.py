"""The main job, on this machine: the reconciler converging the whole example desired state.

    ./scripts/demo.sh           converge, push a change, roll it back, then remove everything
    ./scripts/demo.sh --keep    the same, then leave the stack running for a browser (Ctrl-C,
                                or `./scripts/demo.sh --down` from another terminal, removes it)
    ./scripts/demo.sh --down    remove what a kept (or killed) demo left

It brings up the harness (`tests/harness/fullstack.py`): the real Docker engine, small copies of
the example's models in a local registry, the Ollama-compatible server image, the real
OpenWebUI image (built from the `open-webui` package the first time, ~6 min, then reused),
an SSH server on loopback so the real Kamal deploys to this machine as to a server, and the
bare desired-state repo made by `reconciler init` from `desired_state/`. Then:
`reconciler apply` converges everything (the Ollama container, models, the derived model,
OpenWebUI through `kamal setup`, the knowledge base and presets through OpenWebUI's API),
`reconciler serve` starts, a `git push` streams its reconcile back, OpenWebUI answers a chat
through a preset on the printed URL, and `git revert` (`reconciler rollback`) goes back.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.gitops import git  # noqa: E402
from tests.harness.fullstack import FullStack, full_stack, teardown_manifest  # noqa: E402
from tests.harness.openwebui import CACHE  # noqa: E402

# what a running (or killed) demo started, for `--down`
MANIFEST = Path(os.environ.get("RECONCILER_DEMO_MANIFEST", str(CACHE / "demo" / "manifest.json")))
STARTED = time.monotonic()
TTY = sys.stdout.isatty()


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if TTY else f"\n== {text}", flush=True)


def progress(line: str) -> None:
    print(f"  [{time.monotonic() - STARTED:5.0f} s] {line}", flush=True)


def run(fs: FullStack, *args: str) -> None:
    print("$ reconciler " + " ".join(args), flush=True)
    subprocess.run(fs.cli(*args), env={**os.environ, **fs.env}, check=False)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def down() -> int:
    if not MANIFEST.exists():
        print("nothing to remove: no demo left anything running")
        return 0
    owner = int(json.loads(MANIFEST.read_text()).get("owner_pid") or 0)
    if owner and owner != os.getpid() and _alive(owner):
        print(f"stopping the demo (pid {owner}); it removes what it started")
        os.kill(owner, signal.SIGTERM)
        deadline = time.monotonic() + 120
        while _alive(owner) and time.monotonic() < deadline:
            time.sleep(0.5)
    if MANIFEST.exists():
        for line in teardown_manifest(MANIFEST):
            print(f"  removed {line}")
    print("done: everything the demo started is gone")
    return 0


def _push_a_change(fs: FullStack) -> None:
    # (pinning a third model would be refused: the example allows 2 loaded, both pinned)
    say("git push: give the Phi3 preset a new prompt (through OpenWebUI's API, no redeploy)")
    webui = yaml.safe_load((fs.ops.work / "openwebui.yaml").read_text())
    for preset in webui["presets"]:
        if preset["id"] == "phi3-fast":
            preset["system"] = "Answer briefly, in one sentence."
    fs.ops.commit("A shorter Phi3 preset", {"openwebui.yaml": yaml.safe_dump(webui, sort_keys=False)})
    print("$ git push origin main", flush=True)
    subprocess.run(["git", "push", "origin", "HEAD:main"], cwd=fs.ops.work, check=False)


def _show_openwebui(fs: FullStack) -> None:
    say(f"OpenWebUI on {fs.webui_url} (HTTPS through kamal-proxy, the reconciler's LAN CA: {fs.ca_path})")
    print(f"$ curl --cacert {fs.ca_path} {fs.webui_url}/health")
    with fs.http() as http:
        print(http.get("/health").text)
    client = fs.webui()
    models = [m["id"] for m in client.models() if not (m.get("info") or {}).get("meta", {}).get("hidden")]
    print(f"OpenWebUI {client.config().get('version')} offers: {', '.join(models)}")
    answer = fs.chat("phi3-fast", [{"role": "user", "content": "What is this server for?"}])
    print(f"a chat through the preset phi3-fast -> {answer!r} (the Ollama-compatible server's answer)")


def demo(keep: bool) -> int:
    if MANIFEST.exists():
        owner = int(json.loads(MANIFEST.read_text()).get("owner_pid") or 0)
        if owner and _alive(owner):
            print(f"a demo runs (pid {owner}): ./scripts/demo.sh --down stops it first", file=sys.stderr)
            return 1
        say("removing what an earlier demo left")
        for line in teardown_manifest(MANIFEST):
            print(f"  removed {line}")
    signal.signal(signal.SIGTERM, _stop)
    # Ctrl-C removes the stack even where SIGINT came in ignored (started in the background by
    # a shell, under nohup): Python keeps an inherited SIG_IGN, and the demo would never end.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    say("the harness: Docker, the model registry, the OpenWebUI image, an SSH server for Kamal")
    port = 3000 if _free(3000) else None  # kamal-proxy's HTTPS port (the example: 443) when free
    try:
        with full_stack(progress, manifest_path=MANIFEST, webui_port=port) as fs:
            say(f"reconciler init {fs.ops.bare}  (seeded from desired_state/, hooks installed)")
            print(git("log", "--oneline", "-1", "main", cwd=fs.ops.bare).stdout.strip())
            say("reconciler apply: Ollama, models, derived model, OpenWebUI by Kamal, knowledge, presets")
            applied = fs.apply(capture=False)
            if applied.returncode != 0:
                print(f"reconciler apply exited {applied.returncode}", file=sys.stderr)
                return applied.returncode
            say("reconciler serve  (in the background; its events also go to reconciler logs -f)")
            fs.start_serve()
            fs.ops.wait_event(lambda e: e["event"] == "reconcile.done", timeout=120)
            run(fs, "status", "--state-dir", str(fs.state_dir))
            _push_a_change(fs)
            run(fs, "status", "--state-dir", str(fs.state_dir))
            _show_openwebui(fs)
            say("git revert + push (reconciler rollback): the prompt goes back")
            subprocess.run(fs.cli("rollback", "--repo", str(fs.ops.bare)), check=False)
            print(git("log", "--oneline", "-3", "main", cwd=fs.ops.bare).stdout)
            run(fs, "status", "--state-dir", str(fs.state_dir))
            elapsed = time.monotonic() - STARTED
            say(f"OpenWebUI is answering at {fs.webui_url}  (demo took {elapsed:.0f} s)")
            say(f"  and on the LAN at {fs.lan_url}; trust {fs.ca_path} (desired_state/OPENWEBUI.md)")
            if keep:
                print(
                    "The stack is running: open the URL in a browser. Ctrl-C here, or "
                    "./scripts/demo.sh --down from another terminal, removes everything.",
                    flush=True,
                )
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
            say("removing everything the demo started")
    except KeyboardInterrupt:
        say("interrupted: everything the demo started was removed")
        return 130
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", action="store_true", help="leave the stack running (Ctrl-C removes it)")
    parser.add_argument("--down", action="store_true", help="remove what a kept or killed demo left")
    args = parser.parse_args()
    if args.down:
        return down()
    return demo(args.keep)


if __name__ == "__main__":
    sys.exit(main())
