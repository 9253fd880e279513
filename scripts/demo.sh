#!/usr/bin/env bash
# The main job: `reconciler serve` converging the example desired state on this machine,
# a `git push` streaming its reconcile back, `reconciler status`, and a rollback.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/system-deps.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "\$ reconciler validate desired_state"
reconciler validate desired_state
exec python scripts/demo.py
