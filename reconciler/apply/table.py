"""The one table: each action type → the executor that carries it out and the effect that
executor promises on what is observed. The runner, the Kamal hooks and `simulate` look
actions up here; adding an action type is one row (and a test fails until it has one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from reconciler.apply import bench, container, kamal, models, openwebui, people, updates
from reconciler.apply.context import ExecContext
from reconciler.apply.world import World
from reconciler.observed import DiskObs, ModelObs, Observed
from reconciler.plan.actions import (
    Action,
    AddKnowledgeFile,
    AdoptAdmin,
    CreateDerived,
    CreateGroup,
    CreateKnowledge,
    CreatePreset,
    CreateUser,
    DeleteGroup,
    DeleteKnowledge,
    DeletePreset,
    DeleteUser,
    EnsureContainer,
    FreePort,
    HideModel,
    KamalDeploy,
    KamalRollback,
    LinkNetworks,
    LoadModel,
    Plan,
    PullModel,
    RecordUpdate,
    RemoveKnowledgeFile,
    RemoveModel,
    RenewCertificate,
    ReplaceKnowledgeFile,
    RestoreModel,
    RunBenchmark,
    SetAccess,
    ShowModel,
    UnloadModel,
    UpdateGroup,
    UpdateImage,
    UpdateKnowledge,
    UpdateModel,
    UpdatePreset,
    UpdateUser,
)
from reconciler.plan.disk_budget import BlobLedger

A = TypeVar("A")


@dataclass(frozen=True)
class Row(Generic[A]):
    run: Callable[[A, ExecContext], None]
    effect: Callable[[A, World], None]


def _row(
    kind: type[A], run: Callable[[A, ExecContext], None], effect: Callable[[A, World], None]
) -> Row[Any]:
    return Row(run, effect)


TABLE: dict[type, Row[Any]] = {
    EnsureContainer: _row(EnsureContainer, container.run_container, container.container_effect),
    PullModel: _row(PullModel, models.run_pull, models.pulled),
    RemoveModel: _row(RemoveModel, models.run_remove, models.removed),
    CreateDerived: _row(CreateDerived, models.run_create, models.created),
    LoadModel: _row(LoadModel, models.run_load, models.loaded),
    UnloadModel: _row(UnloadModel, models.run_unload, models.unloaded),
    UpdateModel: _row(UpdateModel, updates.run_update, updates.updated),
    RestoreModel: _row(RestoreModel, updates.run_restore, updates.restored),
    RecordUpdate: _row(RecordUpdate, updates.run_record, updates.recorded),
    UpdateImage: _row(UpdateImage, updates.run_update_image, updates.image_updated),
    LinkNetworks: _row(LinkNetworks, kamal.run_links, kamal.linked),
    RenewCertificate: _row(RenewCertificate, kamal.run_renew, kamal.renewed),
    KamalDeploy: _row(KamalDeploy, kamal.run_deploy, kamal.version_deployed),
    KamalRollback: _row(KamalRollback, kamal.run_rollback, kamal.version_deployed),
    FreePort: _row(FreePort, kamal.run_free_port, kamal.port_freed),
    CreateKnowledge: _row(CreateKnowledge, openwebui.run_create_knowledge, openwebui.knowledge_created),
    UpdateKnowledge: _row(UpdateKnowledge, openwebui.run_update_knowledge, openwebui.knowledge_updated),
    DeleteKnowledge: _row(DeleteKnowledge, openwebui.run_delete_knowledge, openwebui.knowledge_deleted),
    AddKnowledgeFile: _row(AddKnowledgeFile, openwebui.run_add_file, openwebui.file_added),
    ReplaceKnowledgeFile: _row(ReplaceKnowledgeFile, openwebui.run_replace_file, openwebui.file_replaced),
    RemoveKnowledgeFile: _row(RemoveKnowledgeFile, openwebui.run_remove_file, openwebui.file_removed),
    CreatePreset: _row(CreatePreset, openwebui.run_create_preset, openwebui.preset_written),
    UpdatePreset: _row(UpdatePreset, openwebui.run_update_preset, openwebui.preset_written),
    DeletePreset: _row(DeletePreset, openwebui.run_delete_preset, openwebui.preset_deleted),
    HideModel: _row(HideModel, openwebui.run_hide, openwebui.hidden),
    ShowModel: _row(ShowModel, openwebui.run_show, openwebui.shown),
    CreateUser: _row(CreateUser, people.run_create_user, people.user_created),
    AdoptAdmin: _row(AdoptAdmin, people.run_adopt_admin, people.admin_adopted),
    UpdateUser: _row(UpdateUser, people.run_update_user, people.user_updated),
    DeleteUser: _row(DeleteUser, people.run_delete_user, people.user_deleted),
    CreateGroup: _row(CreateGroup, people.run_create_group, people.group_created),
    UpdateGroup: _row(UpdateGroup, people.run_update_group, people.group_updated),
    DeleteGroup: _row(DeleteGroup, people.run_delete_group, people.group_deleted),
    SetAccess: _row(SetAccess, people.run_set_access, people.access_set),
    RunBenchmark: _row(RunBenchmark, bench.run_benchmark, bench.benchmarked),
}


def execute(action: Action, ctx: ExecContext) -> None:
    TABLE[type(action)].run(action, ctx)


def simulate(plan: Plan, observed: Observed) -> Observed:
    """The observation the plan's executors promise to leave (pure): planning again on it
    must plan nothing (the property tests)."""
    world = World.of(observed)
    for action in plan.actions:
        TABLE[type(action)].effect(action, world)
    after = world.observed()
    return after.model_copy(update={"disk": _disk_after(observed, after.models)})


def _disk_after(observed: Observed, models: tuple[ModelObs, ...]) -> DiskObs | None:
    if observed.disk is None:
        return None
    before, after = BlobLedger(), BlobLedger()
    for m in observed.models:
        before.add(m.blobs)
    for m in models:
        after.add(m.blobs)
    free = observed.disk.free - (after.total() - before.total())
    return observed.disk.model_copy(update={"free": free})
