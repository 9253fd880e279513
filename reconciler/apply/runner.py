"""Run a plan's actions in order; report each; remember what was done.

The runner decides nothing: it carries out the actions it is handed. A failed action
blocks only the actions that depend on it (the same model; anything after a failed
container action), never unrelated ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.apply import models as model_ops
from reconciler.apply import updates as update_ops
from reconciler.apply.container import PassthroughMemory, ensure_container
from reconciler.apply.record import record_update
from reconciler.desired.refs import canonical
from reconciler.desired.schema import DesiredState
from reconciler.errors import ReconcilerError
from reconciler.kamal import executor as kamal
from reconciler.kamal.hooks import link_networks
from reconciler.observed import AppliedUpdate, InventoryEntry
from reconciler.openwebui import converge as settings
from reconciler.plan.actions import (
    Action,
    ApplyWebUISettings,
    CreateDerived,
    EnsureContainer,
    KamalDeploy,
    LoadModel,
    Plan,
    PullModel,
    RecordUpdate,
    RemoveModel,
    RestoreModel,
    UnloadModel,
    UpdateModel,
)
from reconciler.report.events import EventBus
from reconciler.runtime import Runtime
from reconciler.state.gpu import load_passthrough, save_passthrough
from reconciler.state.store import Memory


@dataclass
class RunHooks:
    """How `serve` follows a run: journal each action, preempt between actions."""

    before: Callable[[Action], None] = lambda _: None
    after: Callable[[Action], None] = lambda _: None
    should_stop: Callable[[], bool] = lambda: False


class ExecutorUnavailable(ReconcilerError):
    """An action this installation cannot carry out (yet)."""


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (title, error)
    blocked: list[str] = field(default_factory=list)
    unsupported: list[tuple[str, str]] = field(default_factory=list)  # (title, why)
    preempted: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked and not self.preempted


def _subject(action: Action) -> set[str]:
    """Model names an action depends on (canonical): a failure of any of them blocks it."""
    if isinstance(action, CreateDerived):
        return {action.canonical, canonical(action.from_model)}
    return _taints(action)


def _taints(action: Action) -> set[str]:
    """Model names an action's failure leaves broken: a derived model's failed create breaks
    only that model, never its base (whose warm load goes on)."""
    if isinstance(action, PullModel | LoadModel | CreateDerived | UpdateModel | RestoreModel):
        return {action.canonical}
    if isinstance(action, RemoveModel | UnloadModel):
        return {action.model}
    return set()


class Runner:
    def __init__(
        self,
        runtime: Runtime,
        base_url: str,
        events: EventBus,
        now: Callable[[], datetime],
        hooks: RunHooks | None = None,
        container_id: str = "",
        desired: DesiredState | None = None,
    ) -> None:
        self.runtime = runtime
        self.desired = desired
        self.hooks = hooks or RunHooks()
        self.events = events
        self.now = now
        self.base_url = base_url
        self.api = runtime.ollama(base_url)
        self.puller = runtime.ollama(base_url, pulling=True)
        self.container_id = container_id  # where pinned models are warmed (eviction tracking)

    def run(self, plan: Plan) -> Outcome:
        outcome = Outcome()
        broken: set[str] = set()
        for index, action in enumerate(plan.actions, 1):
            title = action.title()
            if self.hooks.should_stop():
                outcome.preempted = True
                self.events.emit("reconcile.preempted", before=title)
                break
            if _subject(action) & broken or "*" in broken:
                outcome.blocked.append(title)
                broken |= _taints(action)
                self.events.emit(
                    "action.blocked", action=title, reason="an earlier action it depends on failed"
                )
                continue
            self.events.emit(
                "action.start", action=title, reason=action.reason, step=index, of=len(plan.actions)
            )
            self.hooks.before(action)
            try:
                self._run(action)
            except ExecutorUnavailable as exc:
                self.hooks.after(action)
                outcome.unsupported.append((title, str(exc)))
                self.events.emit("action.unsupported", action=title, reason=str(exc))
                continue
            except ReconcilerError as exc:
                self.hooks.after(action)
                outcome.failed.append((title, str(exc)))
                self.events.emit("action.failed", action=title, error=str(exc))
                broken |= {"*"} if isinstance(action, EnsureContainer) else _taints(action)
                continue
            self.hooks.after(action)
            outcome.done.append(title)
            self.events.emit("action.done", action=title)
        return outcome

    def _run(self, action: Action) -> None:
        if isinstance(action, EnsureContainer):
            root, name = self.runtime.state.root, action.spec.name
            memory = PassthroughMemory(
                load=lambda: getattr(load_passthrough(root), "mode", None),
                save=lambda mode: save_passthrough(root, mode, name),
            )
            seen = ensure_container(
                self.runtime.docker,
                action,
                ready_timeout=self.runtime.ready_timeout,
                on_event=lambda name, data: self.events.emit(f"container.{name}", **data),
                memory=memory,
            )
            self.container_id = seen.id
            if self.desired is not None and self.desired.openwebui is not None:
                linked = link_networks(self.runtime.docker, self.desired)  # OpenWebUI reaches `ollama`
                if linked:
                    self.events.emit("container.networks_linked", networks=linked)
        elif isinstance(action, PullModel):
            model_ops.pull(self.puller, action, self.events)
            self._remember(
                lambda m: _inventory_add(
                    m, InventoryEntry(name=action.canonical, pulled_at=self.now(), last_used=self.now())
                )
            )
        elif isinstance(action, RemoveModel):
            model_ops.remove(self.api, action)
            self._remember(lambda m: _forget(m, action.model))
        elif isinstance(action, CreateDerived):
            digest = model_ops.create(self.api, action)
            entry = InventoryEntry(
                name=action.canonical,
                pulled_at=self.now(),
                last_used=self.now(),
                spec_hash=action.spec_hash,
                digest=digest,
            )
            self._remember(lambda m: _inventory_add(m, entry))
        elif isinstance(action, LoadModel):
            loader = self.runtime.ollama(self.base_url, loading=self.desired) if self.desired else self.api
            timeout = Runtime.load_timeout(self.desired) if self.desired else self.runtime.api_timeout
            model_ops.load(loader, action, self.events, timeout)
            names = {action.canonical, *(canonical(n) for n in action.shared_with)}
            self._remember(
                lambda m: m.model_copy(
                    update={"warmed": {**m.warmed, **dict.fromkeys(names, self.container_id)}}
                )
            )
        elif isinstance(action, UnloadModel):
            model_ops.unload(self.api, action)
            self._remember(
                lambda m: m.model_copy(
                    update={"warmed": {k: v for k, v in m.warmed.items() if k != action.model}}
                )
            )
        elif isinstance(action, UpdateModel | RestoreModel):
            self._update(action)
        elif isinstance(action, RecordUpdate):
            if self.runtime.desired_repo is None:
                raise ExecutorUnavailable("record: commit needs `serve` and its desired-state repo")
            sha = record_update(self.runtime.desired_repo, self.runtime.desired_branch, action)
            self.events.emit("update.recorded", model=action.model, commit=sha[:12], digest=action.new_digest)
            self._remember(
                lambda m: m.model_copy(
                    update={"recorded": {**m.recorded, action.canonical: action.new_digest}}
                )
            )
        elif isinstance(action, KamalDeploy):
            self._kamal(action)
        elif isinstance(action, ApplyWebUISettings):
            self._webui_settings(action)

    def _update(self, action: UpdateModel | RestoreModel) -> None:
        """The model moves to another digest; the old one (an update's) stays as a cached
        rollback entry in the inventory, so the cache budget counts and evicts it like others."""
        at = self.now()
        if isinstance(action, UpdateModel):
            update_ops.update(self.api, self.puller, action, self.events)
            kept = InventoryEntry(name=action.rollback, pulled_at=at, last_used=at, digest=action.old_digest)
            applied = AppliedUpdate(
                old=action.old_digest, new=action.new_digest, at=at, rollback=action.rollback
            )
        else:
            update_ops.restore(self.api, action)
            kept = None

        def change(m: Memory) -> Memory:
            m = _inventory_add(m, InventoryEntry(name=action.canonical, pulled_at=at, last_used=at))
            if kept is not None:
                m = _inventory_add(m, kept)
                m = m.model_copy(update={"applied_updates": {**m.applied_updates, action.canonical: applied}})
            # Unloaded on purpose, not evicted: the pinned model is warmed on its new digest.
            return m.model_copy(
                update={"warmed": {k: v for k, v in m.warmed.items() if k != action.canonical}}
            )

        self._remember(change)

    def _kamal(self, action: KamalDeploy) -> None:
        """Deploy OpenWebUI's new version, or roll back to it when its container is still on
        the server (a `git revert` of an OpenWebUI change takes seconds, not a deploy)."""
        if self.desired is None:
            raise ExecutorUnavailable("a Kamal deploy needs the desired state")
        workdir = self.runtime.state.root / "kamal"

        def emit(name: str, data: dict[str, Any]) -> None:
            self.events.emit(name, **data)

        service = self.desired.openwebui.kamal.service if self.desired.openwebui else "openwebui"
        common: dict[str, Any] = {
            "workdir": workdir,
            "events_emit": emit,
            "docker_client": self.runtime.docker,
            "timing": self.runtime.kamal_timing,
        }
        rolled_back = False
        rollback_possible = not action.first and not action.renew_tls
        if rollback_possible and action.spec_hash in kamal.available_versions(self.runtime.docker, service):
            rolled_back = kamal.rollback(self.desired, action.spec_hash, **common)
        if not rolled_back:
            kamal.deploy(self.desired, action.spec_hash, first=action.first, **common)
        deployed = {"openwebui_spec_hash": action.spec_hash}
        self._remember(lambda m: m.model_copy(update={"deployed": m.deployed.model_copy(update=deployed)}))

    def _webui_settings(self, action: ApplyWebUISettings) -> None:
        """Converge knowledge bases, presets and model visibility through OpenWebUI's API."""
        if self.desired is None or self.runtime.read_knowledge is None:
            raise ExecutorUnavailable(
                f"{action.title()}: needs the desired state and its knowledge files; left as they are"
            )
        settings.apply_settings(
            self.desired,
            self.runtime.read_knowledge,
            self.runtime.state.root,
            url=self.runtime.openwebui_url,
            timeout=self.runtime.api_timeout,
            emit=lambda name, data: self.events.emit(name, **data),
        )
        deployed = {"openwebui_settings_hash": action.settings_hash}
        self._remember(lambda m: m.model_copy(update={"deployed": m.deployed.model_copy(update=deployed)}))

    def _remember(self, change: Callable[[Memory], Memory]) -> None:
        self.runtime.state.update(change)


def _inventory_add(memory: Memory, entry: InventoryEntry) -> Memory:
    kept = tuple(e for e in memory.inventory if e.name != entry.name)
    return memory.model_copy(update={"inventory": (*kept, entry)})


def _forget(memory: Memory, name: str) -> Memory:
    return memory.model_copy(
        update={
            "inventory": tuple(e for e in memory.inventory if e.name != name),
            "warmed": {k: v for k, v in memory.warmed.items() if k != name},
        }
    )
