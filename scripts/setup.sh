#!/usr/bin/env bash
# Idempotent: creates .venv and installs the package with its dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install --quiet --upgrade pip "setuptools>=77"
  # The distribution was called `reconciler` before it took a name free on PyPI.
  if .venv/bin/pip show --quiet reconciler >/dev/null 2>&1; then
    .venv/bin/pip uninstall --quiet --yes reconciler
  fi
  .venv/bin/pip install --quiet -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
