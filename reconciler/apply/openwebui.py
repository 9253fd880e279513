"""OpenWebUI's settings through its REST API: the executor of ApplyWebUISettings and its effect."""

from __future__ import annotations

from reconciler.apply.context import ExecContext, ExecutorUnavailable
from reconciler.apply.world import World
from reconciler.openwebui import converge as settings
from reconciler.plan.actions import ApplyWebUISettings


def run_settings(action: ApplyWebUISettings, ctx: ExecContext) -> None:
    """Converge knowledge bases, presets and model visibility through OpenWebUI's API."""
    if ctx.read_knowledge is None:
        raise ExecutorUnavailable(
            f"{action.title()}: needs the desired state and its knowledge files; left as they are"
        )
    settings.apply_settings(
        ctx.desired,
        ctx.read_knowledge,
        ctx.state.root,
        url=ctx.openwebui_url,
        timeout=ctx.api_timeout,
        emit=lambda name, data: ctx.events.emit(name, **data),
    )
    deployed = {"openwebui_settings_hash": action.settings_hash}
    ctx.remember(lambda m: m.model_copy(update={"deployed": m.deployed.model_copy(update=deployed)}))


def settings_applied(action: ApplyWebUISettings, world: World) -> None:
    world.deployed = world.deployed.model_copy(update={"openwebui_settings_hash": action.settings_hash})
    if world.webui is not None:
        world.webui = world.webui.model_copy(update={"drift": ()})
