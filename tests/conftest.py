"""Shared fixtures; every test gets a server config path of its own (missing: no secrets)."""

import pytest

ENGINE_GROUP = "engine"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`scripts/test.sh -n 2 --dist loadgroup`) every test that touches the
    Docker engine runs on one worker, one after another as without xdist: the fault tests
    restart the engine and kill processes, the full stack binds fixed ports and shares a
    registry's storage. The unit tests run beside them on the other worker."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        if marks & {"e2e", "faults", "fullstack"} or "docker_client" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group(ENGINE_GROUP))


pytest_plugins = ["tests.harness.plugin", "tests.harness.kamal_fixtures", "tests.harness.openwebui"]


@pytest.fixture(autouse=True)
def _own_server_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read this machine's /etc/reconciler/reconciler.toml: a missing file of the test's
    own (no secret allowed) unless the test writes one (tests.harness.server_config)."""
    monkeypatch.setenv("RECONCILER_CONFIG", str(tmp_path_factory.mktemp("etc") / "reconciler.toml"))
