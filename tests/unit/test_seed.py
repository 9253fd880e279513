"""The edits bootstrap makes to the example before seeding: they keep it valid and say what
this server has (its LAN addresses, no GPU, the key Kamal logs in with)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.desired.load import load_desired
from reconciler.desired.source import DirSource
from reconciler.resources import example_desired_state
from reconciler.seed import SeedEditFailed, SeedSettings, customize, set_lan_addresses


def seeded(tmp_path: Path, settings: SeedSettings) -> Path:
    work = tmp_path / "seed"
    shutil.copytree(example_desired_state(), work)
    customize(work, settings)
    return work


def test_the_edited_example_validates_and_carries_this_servers_facts(tmp_path: Path) -> None:
    key = "/etc/reconciler/ssh/id_ed25519"
    settings = SeedSettings(
        lan_addresses=("10.0.0.5", "192.168.1.7"), gpus_none=True, kamal_ssh_keys=(key,), kamal_ssh_port=2222
    )
    state = load_desired(DirSource(seeded(tmp_path, settings)))
    assert state.server.lan_addresses == ["10.0.0.5", "192.168.1.7"]
    assert state.ollama.container.gpus == "none"
    assert state.openwebui is not None
    assert state.openwebui.kamal.ssh_keys == ["/etc/reconciler/ssh/id_ed25519"]
    assert state.openwebui.kamal.ssh_port == 2222


def test_no_lan_address_means_loopback_only(tmp_path: Path) -> None:
    state = load_desired(DirSource(seeded(tmp_path, SeedSettings(lan_addresses=()))))
    assert state.server.lan_addresses == []


def test_nothing_asked_nothing_changed(tmp_path: Path) -> None:
    work = seeded(tmp_path, SeedSettings())
    for name in ("server.yaml", "ollama.yaml", "openwebui.yaml"):
        assert (work / name).read_text() == (example_desired_state() / name).read_text()


def test_a_seed_with_its_own_kamal_section_gets_the_key_added(tmp_path: Path) -> None:
    work = seeded(tmp_path, SeedSettings())
    (work / "openwebui.yaml").write_text("kamal:\n  service: webui\nauth: false\n")
    customize(work, SeedSettings(kamal_ssh_keys=("/etc/k",), kamal_ssh_port=2200))
    state = load_desired(DirSource(work))
    assert state.openwebui is not None and state.openwebui.kamal.service == "webui"
    assert state.openwebui.kamal.ssh_keys == ["/etc/k"] and state.openwebui.kamal.ssh_port == 2200
    (work / "openwebui.yaml").write_text("kamal:\n  ssh_keys: [/mine]\n")
    with pytest.raises(SeedEditFailed, match="set already"):
        customize(work, SeedSettings(kamal_ssh_keys=("/k",)))


def test_lan_addresses_appended_when_the_seed_has_none() -> None:
    assert set_lan_addresses("budgets: {}\n", ("10.1.2.3",)).endswith(
        "lan_addresses:\n  - 10.1.2.3   # detected on this server by bootstrap\n"
    )
