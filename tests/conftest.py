import os

import pytest

pytest_plugins = ["tests.harness.plugin", "tests.harness.kamal_fixtures", "tests.harness.openwebui"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`fullstack` tests (the real OpenWebUI image's lifecycle through git, the demo from a fresh
    clone: ~9 min) run only when asked for: `-m fullstack` or RECONCILER_FULLSTACK=1."""
    if "fullstack" in (config.option.markexpr or "") or os.environ.get("RECONCILER_FULLSTACK") == "1":
        return
    skip = pytest.mark.skip(reason="real-OpenWebUI lifecycle: run ./scripts/test.sh -m fullstack")
    for item in items:
        if "fullstack" in item.keywords:
            item.add_marker(skip)
