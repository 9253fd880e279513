"""The observation as the executors promise to leave it (pure): what `simulate` builds.

Each executor module states its action's effect on a `World` next to the code that has it;
the property tests check that planning again on the simulated result plans nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from reconciler.observed import (
    ContainerObs,
    DeployedObs,
    InventoryEntry,
    KamalObs,
    Ledger,
    LoadedObs,
    ModelObs,
    Observed,
    OpenWebUIObs,
    RemoteManifest,
)

FOREVER = datetime(2318, 1, 1)  # what `/api/ps` shows as the expiry of a model loaded with keep_alive < 0


@dataclass
class World:
    start: Observed
    models: dict[str, ModelObs]
    loaded: dict[str, LoadedObs]
    inventory: dict[str, InventoryEntry]
    remote: dict[str, RemoteManifest]
    container: ContainerObs | None
    reachable: bool
    deployed: DeployedObs
    warmed: set[str] = field(default_factory=set)
    openwebui: OpenWebUIObs | None = None
    ledger: Ledger = field(default_factory=Ledger)
    kamal: KamalObs | None = None

    @classmethod
    def of(cls, observed: Observed) -> World:
        return cls(
            start=observed,
            models={m.name: m for m in observed.models},
            loaded={m.name: m for m in observed.loaded},
            inventory={e.name: e for e in observed.inventory},
            remote={r.name: r for r in observed.remote},
            container=observed.container,
            reachable=observed.ollama_reachable,
            deployed=observed.deployed,
            warmed=set(observed.warmed),
            openwebui=observed.openwebui,
            ledger=observed.ledger,
            kamal=observed.kamal,
        )

    def weights_keys(self) -> dict[str, str]:
        return self.start.model_copy(update={"models": tuple(self.models.values())}).weights_keys()

    def observed(self) -> Observed:
        return self.start.model_copy(
            update={
                "container": self.container,
                "ollama_reachable": self.reachable,
                "models": tuple(self.models.values()),
                "loaded": tuple(self.loaded.values()),
                "inventory": tuple(self.inventory.values()),
                "deployed": DeployedObs.model_validate(self.deployed.model_dump()),
                "openwebui": self.openwebui,
                "ledger": self.ledger,
                "kamal": self.kamal,
                "warmed": tuple(sorted(self.warmed)),
            }
        )
