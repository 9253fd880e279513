#!/usr/bin/env bash
# Every check CI runs: lint, types, layer contracts, docs freshness, unit and e2e tests.
# Installs what it needs (idempotently), including Docker for the e2e tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/system-deps.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy (strict)"; mypy
echo "== import contracts"; lint-imports
echo "== generated schema and docs are current"; python -m reconciler.desired.docs --check
echo "== pytest"
# -m "": the e2e and fault tests too. -n 2: the tests that hold the machine alone run one after another
# on one worker (tests/harness/xdist_groups.py), the others beside them on the other.
# The engine-restart test stops every container on the engine, the other worker's too: it runs
# alone afterwards (only in a full run; with arguments, only what they name runs).
if [ "$#" -gt 0 ]; then
  exec pytest -q -p randomly -n 2 --durations=25 -m "" "$@"
fi
pytest -q -p randomly -n 2 --durations=25 -m "not engine_restart"
echo "== pytest: the Docker engine restarted, alone"
pytest -q -m engine_restart
