"""What a plan is made of. Every action carries the reason the user sees."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from reconciler.units import format_bytes


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContainerSpec(_Frozen):
    """The Ollama container exactly as it should be created."""

    name: str
    image: str
    env: dict[str, str]
    gpus: Literal["all", "none"] | tuple[str, ...]
    volume: str
    network: str
    network_alias: str = "ollama"
    port: int
    bind_addresses: tuple[str, ...]
    restart: str


class _Action(_Frozen):
    reason: str

    @property
    def mutating(self) -> bool:
        return True


class EnsureContainer(_Action):
    kind: Literal["container"] = "container"
    op: Literal["create", "recreate", "start"]
    spec: ContainerSpec
    spec_hash: str

    def title(self) -> str:
        return f"{self.op} container {self.spec.name} ({self.spec.image})"


class PullModel(_Action):
    kind: Literal["pull"] = "pull"
    model: str  # as the user wrote it
    canonical: str
    download_bytes: int
    insecure: bool = False

    def title(self) -> str:
        return f"pull {self.model} ({format_bytes(self.download_bytes)} to download)"


class CreateDerived(_Action):
    kind: Literal["create"] = "create"
    model: str
    canonical: str
    from_model: str
    system: str | None = None
    template: str | None = None
    parameters: dict[str, str | int | float | bool | list[str]] = Field(default_factory=dict)
    spec_hash: str
    layer_bytes: int = 0

    def title(self) -> str:
        return f"create {self.model} from {self.from_model}"


class RemoveModel(_Action):
    kind: Literal["remove"] = "remove"
    model: str  # canonical
    frees_bytes: int
    eviction: bool = False  # True: evicted from the rollback cache for space

    def title(self) -> str:
        verb = "evict" if self.eviction else "remove"
        return f"{verb} {self.model} (frees {format_bytes(self.frees_bytes)})"


class UpdateModel(_Action):
    """Pull a present model's new upstream digest, keeping the old manifest under `rollback`
    (an `ollama cp` first, so a re-pull's prune leaves its blobs: server/images.go PullModel
    deletes only layers no manifest references)."""

    kind: Literal["update"] = "update"
    model: str  # as the user wrote it, without a digest (Ollama pulls by tag)
    canonical: str
    old_digest: str
    new_digest: str
    download_bytes: int
    rollback: str  # canonical name the old manifest is copied to
    insecure: bool = False
    unload_first: bool = False  # loaded: unloaded while its name still reaches the old weights

    def title(self) -> str:
        return (
            f"update {self.model} sha256:{self.old_digest[:12]} → sha256:{self.new_digest[:12]} "
            f"({format_bytes(self.download_bytes)} to download)"
        )


class RecordUpdate(_Action):
    """Commit the new digest as the model's pin (`record: commit`); the pinned model then
    moves to it in the reconcile of that commit."""

    kind: Literal["record_update"] = "record_update"
    model: str  # as written, without a digest
    canonical: str
    old_digest: str
    new_digest: str

    def title(self) -> str:
        return (
            f"commit {self.model}@sha256:{self.new_digest[:12]} to the desired-state repo "
            f"(was sha256:{self.old_digest[:12]})"
        )


class RestoreModel(_Action):
    """Point a model's name at a manifest kept on disk (a rollback entry): `ollama cp`, no download."""

    kind: Literal["restore"] = "restore"
    model: str
    canonical: str
    source: str  # canonical name of the rollback entry
    digest: str
    unload_first: bool = False

    def title(self) -> str:
        return f"restore {self.model} to sha256:{self.digest[:12]} from {self.source} (no download)"


class LoadModel(_Action):
    kind: Literal["load"] = "load"
    model: str
    canonical: str
    num_ctx: int
    vram_estimate: int
    embedding: bool = False  # an embedding model: loaded through /api/embed (it cannot generate)
    shared_with: tuple[str, ...] = ()  # pinned models on the same weights: one loaded copy

    def title(self) -> str:
        shared = f", shared with {', '.join(self.shared_with)}" if self.shared_with else ""
        return (
            f"load {self.model} pinned, num_ctx {self.num_ctx} (~{format_bytes(self.vram_estimate)} VRAM)"
            + shared
        )


class UnloadModel(_Action):
    kind: Literal["unload"] = "unload"
    model: str  # canonical

    def title(self) -> str:
        return f"unload {self.model}"


class KamalDeploy(_Action):
    kind: Literal["kamal_deploy"] = "kamal_deploy"
    spec_hash: str
    first: bool = False
    renew_tls: bool = False  # same version, new certificate: a deploy, never a rollback

    def title(self) -> str:
        verb = "kamal setup" if self.first else "kamal deploy"
        return f"{verb} OpenWebUI version {self.spec_hash}"


class ApplyWebUISettings(_Action):
    kind: Literal["openwebui_settings"] = "openwebui_settings"
    settings_hash: str

    def title(self) -> str:
        return f"apply OpenWebUI settings {self.settings_hash} (knowledge, presets)"


Action = Annotated[
    EnsureContainer
    | PullModel
    | CreateDerived
    | RemoveModel
    | LoadModel
    | UnloadModel
    | UpdateModel
    | RecordUpdate
    | RestoreModel
    | KamalDeploy
    | ApplyWebUISettings,
    Field(discriminator="kind"),
]


class Violation(_Frozen):
    """One broken budget, with the numbers and the entries responsible."""

    budget: Literal["disk", "free_space", "vram", "download_size", "loaded_count", "lan_addresses", "digest"]
    message: str
    needed: int = 0
    limit: int = 0
    entries: tuple[tuple[str, int], ...] = ()  # (model, bytes), largest first


class VramEstimate(_Frozen):
    model: str
    weights: int
    kv_cache: int
    graph: int
    overhead: int  # runtime VRAM beside the model: CUDA minimum, Ollama's buffer layer, OLLAMA_GPU_OVERHEAD
    architecture_known: bool
    reported: int = 0  # what `ollama ps` SIZE shows for it on this Ollama version
    margin: int = 0  # free VRAM the runner leaves beside it when placing layers, once per GPU
    memory_model: str = ""  # how this Ollama version counts memory (plan/vram.py MemoryModel)

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.graph + self.overhead


class Budget(_Frozen):
    disk_models_after: int = 0
    disk_models_limit: int = 0
    disk_free_after: int | None = None
    disk_min_free: int = 0
    download_bytes: int = 0
    vram_pinned: int = 0
    vram_limit: int | None = None
    vram_estimates: tuple[VramEstimate, ...] = ()
    cached_models: tuple[str, ...] = ()  # kept on disk for rollback, not desired


UpdateStateKind = Literal[
    "current", "available", "waiting", "updating", "pinned", "unchecked", "check_failed"
]


class UpdateState(_Frozen):
    """Where a present model stands against its registry: never drift, only reported."""

    model: str  # canonical
    policy: Literal["never", "notify", "auto", "pinned"]
    state: UpdateStateKind
    local: str | None = None  # digest (hex) on the server
    upstream: str | None = None  # digest (hex) the registry served at the last check
    download_bytes: int = 0  # what the update would download
    reason: str = ""  # why it waits / why the check failed

    def message(self) -> str:
        old, new = f"sha256:{(self.local or '')[:12]}", f"sha256:{(self.upstream or '')[:12]}"
        size = format_bytes(self.download_bytes)
        if self.state == "available":
            return f"update available: {old} → {new}, {size} to download"
        if self.state == "waiting":
            return f"update {old} → {new} ({size}) waits: {self.reason}"
        if self.state == "updating":
            return f"updating {old} → {new}, {size} to download"
        if self.state == "check_failed":
            return f"update check failed: {self.reason}"
        return self.state


class Plan(_Frozen):
    revision: str | None = None
    actions: tuple[Action, ...] = ()
    violations: tuple[Violation, ...] = ()
    notes: tuple[str, ...] = ()
    budget: Budget = Field(default_factory=Budget)
    updates: tuple[UpdateState, ...] = ()

    @property
    def refused(self) -> bool:
        return bool(self.violations)

    @property
    def empty(self) -> bool:
        return not self.actions and not self.violations
