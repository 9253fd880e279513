"""server.yaml's lan_addresses against the addresses the host has (pure). Checked when
planning, not when validating: `validate` may run on a laptop."""

from __future__ import annotations

import ipaddress

from reconciler.desired.schema import DesiredState
from reconciler.observed import Observed
from reconciler.plan.actions import Violation


def lan_violations(desired: DesiredState, observed: Observed) -> list[Violation]:
    if observed.host_addresses is None:
        return []
    own = {ipaddress.ip_address(a) for a in observed.host_addresses}
    foreign = [
        a
        for a in desired.server.lan_addresses
        if not ipaddress.ip_address(a).is_unspecified and ipaddress.ip_address(a) not in own
    ]
    if not foreign:
        return []
    mine = ", ".join(a for a in observed.host_addresses if not ipaddress.ip_address(a).is_loopback) or "none"
    return [
        Violation(
            budget="lan_addresses",
            message=f"server.yaml lan_addresses {', '.join(foreign)} "
            f"{'is' if len(foreign) == 1 else 'are'} not an address of this host (its addresses: {mine}); "
            "services cannot be published there: fix lan_addresses",
        )
    ]
