"""Shared fixtures; every test gets a server config path of its own (missing: no secrets)."""

import os
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.harness.plugin", "tests.harness.kamal_fixtures", "tests.harness.openwebui"]


@pytest.fixture(autouse=True)
def _own_server_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Never read this machine's /etc/reconciler/reconciler.toml: a missing file of the test's
    own (no secret allowed) unless the test writes one (tests.harness.server_config)."""
    monkeypatch.setenv("RECONCILER_CONFIG", str(tmp_path_factory.mktemp("etc") / "reconciler.toml"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`fullstack` tests (the real OpenWebUI image's lifecycle through git, the Kamal lifecycle
    on the real image, the demo from a fresh clone) run only when asked for: `-m fullstack` or
    RECONCILER_FULLSTACK=1."""
    if "fullstack" in (config.option.markexpr or "") or os.environ.get("RECONCILER_FULLSTACK") == "1":
        return
    skip = pytest.mark.skip(reason="real-OpenWebUI lifecycle: run ./scripts/test.sh -m fullstack")
    for item in items:
        if "fullstack" in item.keywords:
            item.add_marker(skip)
