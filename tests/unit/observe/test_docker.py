"""`docker inspect` attributes → ContainerObs, without Docker."""

from __future__ import annotations

from typing import Any

from reconciler.labels import MANAGED, SPEC_HASH
from reconciler.observe.docker import parse_container
from reconciler.observed import ContainerObs


def inspect(**state: Any) -> dict[str, Any]:
    """The parts of a Docker 20.10 `docker inspect` answer that matter here."""
    return {
        "Id": "4f1c" + "0" * 60,
        "Name": "/ollama",
        "State": {"Status": "running", "Running": True, "Paused": False, "ExitCode": 0, **state},
        "Config": {
            "Image": "ollama/ollama:0.6.8",
            "Labels": {SPEC_HASH: "0123456789abcdef", MANAGED: "1"},
            "Env": ["OLLAMA_HOST=0.0.0.0:11434"],
        },
        "Image": "sha256:" + "a" * 64,
    }


def test_running_container() -> None:
    assert parse_container(inspect()) == ContainerObs(
        name="ollama",
        id="4f1c" + "0" * 60,
        running=True,
        status="running",
        health=None,
        image="ollama/ollama:0.6.8",
        spec_hash="0123456789abcdef",
    )


def test_stopped_and_unhealthy() -> None:
    obs = parse_container(inspect(Status="exited", Running=False, ExitCode=1, Health={"Status": "unhealthy"}))
    assert (obs.running, obs.status, obs.health) == (False, "exited", "unhealthy")


def test_not_ours_has_no_spec_hash() -> None:
    attrs = inspect()
    attrs["Config"]["Labels"] = None  # docker inspect writes null for no labels
    assert parse_container(attrs).spec_hash is None
    attrs["Config"]["Labels"] = {SPEC_HASH: ""}
    assert parse_container(attrs).spec_hash is None


def test_missing_fields_read_as_empty() -> None:
    obs = parse_container({})
    assert obs == ContainerObs(name="", running=False)
    odd = parse_container({"State": {"Running": "yes", "Health": "bad"}, "Config": []})
    assert odd.running is False
    assert odd.health is None
