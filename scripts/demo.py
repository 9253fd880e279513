"""The main job, on this machine: the reconciler converging the example desired state.

It brings up the test harness (the real Docker engine, a real registry on loopback holding
small generated copies of the example's models, the Ollama-compatible server image), makes
the bare desired-state repo with `reconciler init` from `desired_state/` (model names point
at the local registry, the GPU is simulated), starts `reconciler serve`, pushes a change
with `git push` so you see the reconcile stream back, and prints `reconciler status`.
Everything it started is removed at the end. OpenWebUI's Kamal deploy needs an SSH server
and an image registry: it is exercised by the Kamal tests, so this demo leaves
openwebui.yaml out.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.gitops import GitOps, git  # noqa: E402
from tests.harness.standalone import harness_stack  # noqa: E402

KiB, MiB, GiB = 1024, 2**20, 2**30
# name, tag, architecture (as in the real models' GGUF headers), file size of the small copy
MODELS = {
    "llama3:8b-instruct-q4_K_M": ("llama3", "8b-instruct-q4_K_M", "llama", 32, 32, 8, 4096, 6 * MiB),
    "phi3:mini": ("phi3", "mini", "phi3", 32, 32, 32, 3072, 3 * MiB),
    "deepseek-r1:7b": ("deepseek-r1", "7b", "qwen2", 28, 28, 4, 3584, 5 * MiB),
    "nomic-embed-text": ("nomic-embed-text", "latest", "nomic-bert", 12, 12, 12, 768, 1 * MiB),
}


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def run(*args: str) -> None:
    print("$ reconciler " + " ".join(args[3:] if args[0] == sys.executable else args), flush=True)
    subprocess.run(list(args), check=False)


def main() -> int:
    with harness_stack() as stack, tempfile.TemporaryDirectory(prefix="rcl-demo-") as tmp:
        say("pushing small copies of the example's models to the local registry")
        local = {}
        for name, (model, tag, arch, blocks, heads, kv, emb, size) in MODELS.items():
            pushed = stack.registry.push_model(
                model,
                tag,
                arch=arch,
                block_count=blocks,
                head_count=heads,
                head_count_kv=kv,
                embedding_length=emb,
                size_bytes=size,
                seed=model,
            )
            local[name] = pushed.name
            print(f"  {name} -> {pushed.name} ({pushed.total_size / MiB:.1f} MiB)")
        seed = Path(tmp) / "seed"
        seed.mkdir()
        ollama = yaml.safe_load((ROOT / "desired_state" / "ollama.yaml").read_text())
        for entry in ollama["models"]:
            entry["name"] = local[entry["name"]]
        for entry in ollama["derived"]:
            entry["from"] = local[entry["from"]]
        container = stack.ollama["container"]
        container["env"] = {
            **ollama["container"]["env"],
            "OLLAMA_CONTEXT_LENGTH": 4096,
            "extra": {"FAKE_OLLAMA_GPU_VRAM": str(8 * GiB)},
        }  # an RTX 3070
        ollama["container"] = container
        ollama["registries"] = stack.ollama["registries"]
        stack.ollama = ollama
        stack.server = yaml.safe_load((ROOT / "desired_state" / "server.yaml").read_text())
        stack.server["lan_addresses"] = []
        stack.write()
        ops = GitOps(stack, Path(tmp) / "gitops")
        say(f"reconciler init {ops.bare}  (seeded from desired_state/, hooks installed)")
        say("reconciler serve  (in the background; events also go to reconciler logs -f)")
        ops.start_serve()
        ops.wait_event(lambda e: e["event"] == "reconcile.done", timeout=300)
        cli = [sys.executable, "-m", "reconciler.cli"]
        run(*cli, "status", "--state-dir", str(ops.state_dir))

        say("git push: pin phi3:mini as well, so it stays in VRAM beside Llama3")
        text = (ops.work / "ollama.yaml").read_text()
        doc = yaml.safe_load(text)
        for entry in doc["models"]:
            if entry["name"] == local["phi3:mini"]:
                entry["keep_loaded"] = True
        ops.commit("Pin phi3:mini", {"ollama.yaml": yaml.safe_dump(doc, sort_keys=False)})
        print("$ git push origin main", flush=True)
        subprocess.run(["git", "push", "origin", "HEAD:main"], cwd=ops.work, check=False)
        run(*cli, "status", "--state-dir", str(ops.state_dir))

        say("git revert + push: roll the pin back (the model stays on disk, nothing is downloaded)")
        subprocess.run([*cli, "rollback", "--repo", str(ops.bare)], check=False)
        log = git("log", "--oneline", "-3", "main", cwd=ops.bare).stdout
        print(log)
        run(*cli, "status", "--state-dir", str(ops.state_dir))
        ops.stop_serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
