"""server.yaml lan_addresses against the host's own addresses, when planning."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from reconciler.desired.load import load_desired
from reconciler.desired.source import DirSource
from reconciler.observe.host import parse_addresses
from reconciler.observed import Observed
from reconciler.plan.planner import plan

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = ROOT / "tests" / "fixtures" / "seed_server.observed.json"


def _observed(addresses: tuple[str, ...] | None) -> Observed:
    seen = Observed.model_validate_json(FIXTURE.read_text())
    return seen.model_copy(update={"host_addresses": addresses})


def test_a_lan_address_that_is_not_this_hosts_refuses_the_plan() -> None:
    desired = load_desired(DirSource(ROOT / "desired_state"))  # lan_addresses: [192.168.1.50]
    result = plan(desired, _observed(("127.0.0.1", "10.0.0.7", "::1")))
    assert result.refused and not result.actions
    (violation,) = result.violations
    assert violation.budget == "lan_addresses" and "192.168.1.50" in violation.message
    assert "10.0.0.7" in violation.message
    assert not plan(desired, _observed(("127.0.0.1", "192.168.1.50"))).violations
    assert not plan(desired, _observed(None)).violations  # not observed (a recorded observation)


def test_plan_from_the_cli_refuses_with_exit_3(tmp_path: Path) -> None:
    recorded = tmp_path / "observed.json"
    recorded.write_text(_observed(("127.0.0.1",)).model_dump_json())
    out = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "plan", "--repo", str(ROOT / "desired_state"),
         "--observed", str(recorded)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert out.returncode == 3 and "not an address of" in out.stdout and "192.168.1.50" in out.stdout


def test_interface_addresses_are_parsed_without_zone_ids() -> None:
    entry = SimpleNamespace
    interfaces = {
        "lo": [
            entry(family=socket.AF_INET, address="127.0.0.1"),
            entry(family=socket.AF_INET6, address="::1"),
        ],
        "eth0": [entry(family=socket.AF_INET6, address="fe80::1%eth0"), entry(family=17, address="aa:bb")],
    }
    assert parse_addresses(interfaces) == ("127.0.0.1", "::1", "fe80::1")
