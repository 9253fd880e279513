#!/usr/bin/env bash
# The main job: validate the example desired state and plan it against a recorded
# observation of the seed's server (RTX 3070 8 GB, an old Ollama container, phi3 present).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "\$ reconciler validate desired_state"
reconciler validate desired_state
echo
echo "\$ reconciler plan --repo desired_state --observed tests/fixtures/seed_server.observed.json"
set +e
reconciler plan --repo desired_state --observed tests/fixtures/seed_server.observed.json
rc=$?
set -e
echo "(exit $rc: 0 = nothing to do, 1 = changes planned, 3 = refused)"
[ "$rc" -le 1 ]
