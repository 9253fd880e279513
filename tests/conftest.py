"""Shared fixtures; every test gets a server config path of its own (missing: no secrets)."""

import pytest

pytest_plugins = [
    "tests.harness.plugin",
    "tests.harness.kamal_fixtures",
    "tests.harness.openwebui",
    "tests.harness.xdist_groups",
]


@pytest.fixture(autouse=True)
def _own_server_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read this machine's /etc/reconciler/reconciler.toml: a missing file of the test's
    own (no secret allowed) unless the test writes one (tests.harness.server_config)."""
    monkeypatch.setenv("RECONCILER_CONFIG", str(tmp_path_factory.mktemp("etc") / "reconciler.toml"))
