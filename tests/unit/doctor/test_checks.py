"""Pure parts of `reconciler doctor`: which published ports the managed containers hold, LAN
candidates, and a check that itself breaks becomes a failed check (never a traceback)."""

from __future__ import annotations

from pathlib import Path

from reconciler.desired.load import load_desired
from reconciler.desired.source import DirSource
from reconciler.doctor import _guarded
from reconciler.doctor.checks import managed_ports, published
from reconciler.doctor.host import lan_candidates
from reconciler.labels import MANAGED


def test_only_the_managed_containers_ports_count() -> None:
    rows = [
        {
            "Names": ["/ollama"],
            "Labels": {MANAGED: "1"},
            "Ports": [{"PrivatePort": 11434, "PublicPort": 11434}],
        },
        {"Names": ["/ollama-imposter"], "Labels": {}, "Ports": [{"PublicPort": 3000}]},
        {
            "Names": ["/openwebui-web-abc"],
            "Labels": {"service": "openwebui"},
            "Ports": [{"PublicPort": 3001}],
        },
        {"Names": ["/unpublished"], "Labels": {"service": "openwebui"}, "Ports": [{"PrivatePort": 8080}]},
    ]
    assert managed_ports(rows, "ollama", "openwebui") == {11434: "ollama", 3001: "openwebui-web-abc"}
    assert managed_ports(rows, "ollama", None) == {11434: "ollama"}


def test_lan_candidates_leave_out_loopback_bridges_tunnels_and_public_addresses() -> None:
    found = [("127.0.0.1", "lo"), ("192.168.1.20", "eth0"), ("172.17.0.1", "docker0"),
             ("172.18.0.1", "br-6db6914c9bb4"), ("10.8.0.2", "wg0"), ("8.8.8.8", "eth1"),
             ("fd00::2", "eth0"), ("169.254.3.3", "eth0"), ("10.0.0.5", "enp3s0")]  # fmt: skip
    assert lan_candidates(found) == ["10.0.0.5", "192.168.1.20"]


def test_a_check_that_raises_is_a_failed_check_with_the_reason() -> None:
    def broken() -> object:
        raise RuntimeError("No such container: 8f2c")

    check = _guarded("ports", "published ports free", broken)  # type: ignore[arg-type]
    assert check.status == "fail" and "RuntimeError: No such container: 8f2c" in check.detail
    assert check.fix


def test_published_ports_follow_the_rendered_bindings(tmp_path: Path) -> None:
    (tmp_path / "server.yaml").write_text("budgets: {disk: {models: 1GiB}}\nlan_addresses: [10.0.0.5]\n")
    (tmp_path / "ollama.yaml").write_text("container: {publish: {port: 11434}}\nmodels: []\n")
    (tmp_path / "openwebui.yaml").write_text(
        "exposure: {mode: published, port: 3000, addresses: [127.0.0.1]}\n"
    )
    assert published(load_desired(DirSource(tmp_path))) == [
        ("127.0.0.1", 11434, "Ollama"),
        ("10.0.0.5", 11434, "Ollama"),
        ("127.0.0.1", 3000, "OpenWebUI"),
    ]
