"""OpenWebUI's deploy through Kamal: the executor of a KamalDeploy and its effect."""

from __future__ import annotations

from typing import Any

from reconciler.apply.context import ExecContext
from reconciler.apply.world import World
from reconciler.kamal import executor as kamal
from reconciler.plan.actions import KamalDeploy


def run_deploy(action: KamalDeploy, ctx: ExecContext) -> None:
    """Deploy OpenWebUI's new version, or roll back to it when its container is still on
    the server (a `git revert` of an OpenWebUI change takes seconds, not a deploy)."""

    def emit(name: str, data: dict[str, Any]) -> None:
        ctx.events.emit(name, **data)

    desired = ctx.desired
    service = desired.openwebui.kamal.service if desired.openwebui else "openwebui"
    common: dict[str, Any] = {
        "workdir": ctx.kamal_workdir,
        "events_emit": emit,
        "docker_client": ctx.docker,
        "timing": ctx.kamal_timing,
    }
    rolled_back = False
    rollback_possible = not action.first and not action.renew_tls
    if rollback_possible and action.spec_hash in kamal.available_versions(ctx.docker, service):
        rolled_back = kamal.rollback(desired, action.spec_hash, **common)
    if not rolled_back:
        kamal.deploy(desired, action.spec_hash, first=action.first, **common)
    deployed = {"openwebui_spec_hash": action.spec_hash}
    ctx.remember(lambda m: m.model_copy(update={"deployed": m.deployed.model_copy(update=deployed)}))


def deployed(action: KamalDeploy, world: World) -> None:
    world.deployed = world.deployed.model_copy(update={"openwebui_spec_hash": action.spec_hash})
    world.tls_due = None
