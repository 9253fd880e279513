#!/usr/bin/env bash
# The main job: the whole example desired state converged on this machine — the Ollama
# container, its models, OpenWebUI deployed by the real Kamal, its knowledge and presets —
# then a `git push` streamed back, OpenWebUI answering on the printed URL, and a rollback.
#   --keep  leave it running for a browser (Ctrl-C, or --down from another terminal, removes it)
#   --down  remove what a kept or killed demo left
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/system-deps.sh
export PATH="$PWD/.venv/bin:$PATH"
if [ "${1:-}" != "--down" ]; then
  echo "\$ reconciler validate desired_state"
  reconciler validate desired_state
fi
exec python scripts/demo.py "$@"
