"""ContainerSpec → docker SDK keyword arguments (pure)."""

from __future__ import annotations

import pytest

from reconciler.apply.container import create_kwargs
from reconciler.labels import GPU_PASSTHROUGH, MANAGED, SPEC_HASH
from reconciler.plan.actions import ContainerSpec
from reconciler.plan.container import ready_url


def spec(**changes: object) -> ContainerSpec:
    base = ContainerSpec(
        name="ollama",
        image="ollama/ollama:0.6.8",
        env={"OLLAMA_HOST": "0.0.0.0:11434", "OLLAMA_NOPRUNE": "1"},
        gpus="all",
        volume="ollama",
        network="llm",
        port=11434,
        bind_addresses=("127.0.0.1", "192.168.1.20"),
        restart="unless-stopped",
    )
    return base.model_copy(update=changes)


def test_everything() -> None:
    kw = create_kwargs(spec(), "0123456789abcdef")
    requests = kw.pop("device_requests")
    assert kw == {
        "image": "ollama/ollama:0.6.8",
        "name": "ollama",
        "environment": {"OLLAMA_HOST": "0.0.0.0:11434", "OLLAMA_NOPRUNE": "1"},
        "labels": {SPEC_HASH: "0123456789abcdef", MANAGED: "1", GPU_PASSTHROUGH: "device-request"},
        "volumes": {"ollama": {"bind": "/root/.ollama", "mode": "rw"}},
        "ports": {"11434/tcp": [("127.0.0.1", 11434), ("192.168.1.20", 11434)]},
        "network": "llm",
        "networking_config": {"llm": {"Aliases": ["ollama"]}},
        "restart_policy": {"Name": "unless-stopped"},
        "detach": True,
    }
    # `--gpus all` ⇔ Driver "", Count -1, Capabilities [["gpu"]] (reference §7)
    assert [dict(r) for r in requests] == [
        {"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    ]


def test_gpu_ids() -> None:
    (request,) = create_kwargs(spec(gpus=("0", "GPU-3f1c2a9e-0000")), "h")["device_requests"]
    assert request["DeviceIDs"] == ["0", "GPU-3f1c2a9e-0000"]
    assert request["Capabilities"] == [["gpu"]]
    assert request["Count"] == 0  # like `docker run --gpus device=0,…`


def test_no_gpu() -> None:
    assert "device_requests" not in create_kwargs(spec(gpus="none"), "h")


def test_never_binds_everywhere_unless_listed() -> None:
    kw = create_kwargs(spec(bind_addresses=("127.0.0.1",), port=18080), "h")
    assert kw["ports"] == {"11434/tcp": [("127.0.0.1", 18080)]}
    listed = create_kwargs(spec(bind_addresses=("0.0.0.0",)), "h")
    assert listed["ports"] == {"11434/tcp": [("0.0.0.0", 11434)]}


def test_restart_no_is_omitted() -> None:
    assert "restart_policy" not in create_kwargs(spec(restart="no"), "h")
    assert create_kwargs(spec(restart="always"), "h")["restart_policy"] == {"Name": "always"}


def test_env_is_a_copy() -> None:
    s = spec()
    kw = create_kwargs(s, "h")
    kw["environment"]["X"] = "1"
    assert "X" not in s.env


def test_alias_and_volume_follow_the_spec() -> None:
    kw = create_kwargs(spec(network="ai", network_alias="llm-backend", volume="models"), "h")
    assert kw["networking_config"] == {"ai": {"Aliases": ["llm-backend"]}}
    assert kw["volumes"] == {"models": {"bind": "/root/.ollama", "mode": "rw"}}


@pytest.mark.parametrize(
    ("addresses", "url"),
    [
        (("127.0.0.1", "10.0.0.2"), "http://127.0.0.1:11434/api/version"),
        (("10.0.0.2",), "http://10.0.0.2:11434/api/version"),
        (("0.0.0.0",), "http://127.0.0.1:11434/api/version"),
        (("::",), "http://[::1]:11434/api/version"),
        (("fd00::5",), "http://[fd00::5]:11434/api/version"),
    ],
)
def test_ready_url(addresses: tuple[str, ...], url: str) -> None:
    assert ready_url(spec(bind_addresses=addresses)) == url
