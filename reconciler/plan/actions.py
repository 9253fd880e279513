"""What a plan is made of. Every action carries the reason the user sees."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from reconciler.analytics.results import Setting, settings_key
from reconciler.desired.refs import canonical
from reconciler.desired.schema import Scalar, SecretRef
from reconciler.observed import ModelRow
from reconciler.plan.notes import Note
from reconciler.units import format_bytes


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


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


OLLAMA = "ollama"  # what the container provides: every action that talks to Ollama needs it
OPENWEBUI = "openwebui"  # what a deploy provides: every change through OpenWebUI's API needs it
TLS = "tls"  # what a certificate renewal provides: the deploy that hands it to kamal-proxy needs it


def model_key(name: str) -> str:
    return f"model:{name}"


class _Action(_Frozen):
    reason: str

    def needs(self) -> frozenset[str]:
        """What must not have failed earlier in the run for this action to make sense."""
        return frozenset({OLLAMA})

    def provides(self) -> frozenset[str]:
        """What this action's failure (or its being blocked) leaves broken for later ones."""
        return frozenset()

    def details(self) -> tuple[str, ...]:
        """Lines `plan` shows under the action (the fields an update changes, before → after)."""
        return ()


class _ModelAction(_Action):
    """An action on one model: it needs that model not to have failed, and breaks it if it fails."""

    def subject(self) -> str:
        raise NotImplementedError

    def needs(self) -> frozenset[str]:
        return frozenset({OLLAMA, model_key(self.subject())})

    def provides(self) -> frozenset[str]:
        return frozenset({model_key(self.subject())})


class EnsureContainer(_Action):
    kind: Literal["container"] = "container"
    op: Literal["create", "recreate", "start"]
    spec: ContainerSpec
    spec_hash: str
    # The image as written in git when `spec.image` is a release `updates.images: auto` moved
    # it to: a start that fails holds that release back (the previous one runs again).
    update_of: str | None = None

    def needs(self) -> frozenset[str]:
        return frozenset()

    def provides(self) -> frozenset[str]:
        return frozenset({OLLAMA})

    def title(self) -> str:
        return f"{self.op} container {self.spec.name} ({self.spec.image})"


class PullModel(_ModelAction):
    kind: Literal["pull"] = "pull"
    model: str  # as the user wrote it
    canonical: str
    download_bytes: int
    insecure: bool = False

    def subject(self) -> str:
        return self.canonical

    def title(self) -> str:
        return f"pull {self.model} ({format_bytes(self.download_bytes)} to download)"


class CreateDerived(_ModelAction):
    """`ollama create`: a derived model needs its base (a failed pull of it blocks the create);
    its own failure breaks only itself, never its base (whose warm load goes on)."""

    kind: Literal["create"] = "create"
    model: str
    canonical: str
    from_model: str
    system: str | None = None
    template: str | None = None
    parameters: dict[str, str | int | float | bool | list[str]] = Field(default_factory=dict)
    spec_hash: str
    layer_bytes: int = 0

    def subject(self) -> str:
        return self.canonical

    def needs(self) -> frozenset[str]:
        return super().needs() | {model_key(canonical(self.from_model))}

    def title(self) -> str:
        return f"create {self.model} from {self.from_model}"


class RemoveModel(_ModelAction):
    kind: Literal["remove"] = "remove"
    model: str  # canonical
    frees_bytes: int
    eviction: bool = False  # True: evicted from the rollback cache for space

    def subject(self) -> str:
        return self.model

    def title(self) -> str:
        verb = "evict" if self.eviction else "remove"
        return f"{verb} {self.model} (frees {format_bytes(self.frees_bytes)})"


class UpdateModel(_ModelAction):
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

    def subject(self) -> str:
        return self.canonical

    def title(self) -> str:
        return (
            f"update {self.model} sha256:{self.old_digest[:12]} → sha256:{self.new_digest[:12]} "
            f"({format_bytes(self.download_bytes)} to download)"
        )


class RecordUpdate(_ModelAction):
    """Commit the new digest as the model's pin (`record: commit`); the pinned model then
    moves to it in the reconcile of that commit."""

    kind: Literal["record_update"] = "record_update"
    model: str  # as written, without a digest
    canonical: str
    old_digest: str
    new_digest: str

    def subject(self) -> str:
        return self.canonical

    def title(self) -> str:
        return (
            f"commit {self.model}@sha256:{self.new_digest[:12]} to the desired-state repo "
            f"(was sha256:{self.old_digest[:12]})"
        )


class RestoreModel(_ModelAction):
    """Point a model's name at a manifest kept on disk (a rollback entry): `ollama cp`, no download."""

    kind: Literal["restore"] = "restore"
    model: str
    canonical: str
    source: str  # canonical name of the rollback entry
    digest: str
    unload_first: bool = False

    def subject(self) -> str:
        return self.canonical

    def title(self) -> str:
        return f"restore {self.model} to sha256:{self.digest[:12]} from {self.source} (no download)"


class LoadModel(_ModelAction):
    kind: Literal["load"] = "load"
    model: str
    canonical: str
    num_ctx: int
    vram_estimate: int
    embedding: bool = False  # an embedding model: loaded through /api/embed (it cannot generate)
    shared_with: tuple[str, ...] = ()  # pinned models on the same weights: one loaded copy

    def subject(self) -> str:
        return self.canonical

    def title(self) -> str:
        shared = f", shared with {', '.join(self.shared_with)}" if self.shared_with else ""
        return (
            f"load {self.model} pinned, num_ctx {self.num_ctx} (~{format_bytes(self.vram_estimate)} VRAM)"
            + shared
        )


class UnloadModel(_ModelAction):
    kind: Literal["unload"] = "unload"
    model: str  # canonical

    def subject(self) -> str:
        return self.model

    def title(self) -> str:
        return f"unload {self.model}"


# ─────────────────── Kamal: OpenWebUI's versions, its certificate, the networks ───────────────────


class NetworkLink(_Frozen):
    container: str
    network: str
    alias: str | None = None


class LinkNetworks(_Action):
    """OpenWebUI reaches Ollama as `http://ollama:11434`: Ollama on Kamal's network under that
    alias, OpenWebUI's containers on Ollama's network (where it always has the alias)."""

    kind: Literal["networks"] = "networks"
    links: tuple[NetworkLink, ...]

    def title(self) -> str:
        shown = ", ".join(
            f"{x.container} → {x.network}" + (f" as {x.alias}" if x.alias else "") for x in self.links
        )
        return f"link networks: {shown}"


class RenewCertificate(_Action):
    kind: Literal["tls_renew"] = "tls_renew"
    expires: datetime  # the certificate's expiry now
    new_ca: bool = False  # the CA itself is near its end: devices must trust the new one

    def needs(self) -> frozenset[str]:
        return frozenset()

    def provides(self) -> frozenset[str]:
        return frozenset({TLS})

    def title(self) -> str:
        return "renew OpenWebUI's LAN TLS certificate" + (" and its CA" if self.new_ca else "")


# ─────────────────── benchmarks (benchmarks.on_change) ───────────────────


class BenchTarget(_Frozen):
    """One model a benchmark measures, at the setting people use it with (plan/bench.py)."""

    model: str  # as the desired state (or the command line) names it
    canonical: str
    digest: str
    setting: Setting
    embedding: bool
    family: str = ""
    parameter_size: str = ""
    quantization: str = ""

    def key(self, ollama_version: str | None) -> str:
        return settings_key(self.canonical, self.digest, self.setting, ollama_version)


class RunBenchmark(_Action):
    """Measure models that were pulled or changed since their last benchmark
    (`benchmarks.on_change`), then load the pinned set again (`restore`: the planner's loads)."""

    kind: Literal["benchmark"] = "benchmark"
    targets: tuple[BenchTarget, ...]
    restore: tuple[LoadModel, ...] = ()

    def title(self) -> str:
        return f"benchmark {', '.join(t.model for t in self.targets)} (pulled or changed since last measured)"


class KamalDeploy(_Action):
    """`kamal setup` (the first time) or `kamal deploy` of a version (the wrapper image built
    and pushed first)."""

    kind: Literal["kamal_deploy"] = "kamal_deploy"
    version: str  # plan/kamal.py deploy_hash
    first: bool = False

    def needs(self) -> frozenset[str]:
        return frozenset({OLLAMA, TLS})

    def provides(self) -> frozenset[str]:
        return frozenset({OPENWEBUI})

    def title(self) -> str:
        verb = "kamal setup" if self.first else "kamal deploy"
        return f"{verb} OpenWebUI version {self.version}"


class UpdateImage(_Action):
    """`updates.images: auto`: move an image to a newer release. Directly, the reconciler
    remembers the release and the next pass changes what runs (a new Ollama container, a Kamal
    deploy of OpenWebUI); with `record: commit` the new tag is committed to git instead."""

    kind: Literal["update_image"] = "update_image"
    component: Literal["ollama", "openwebui"]
    image: str  # as written in git
    old_tag: str
    new_tag: str
    record: bool = False

    def needs(self) -> frozenset[str]:
        return frozenset()

    def title(self) -> str:
        how = "commit" if self.record else "update"
        return f"{how} the {self.component} image {self.old_tag} → {self.new_tag}"


class KamalRollback(_Action):
    """`kamal rollback`: the version's container is still on the server (a `git revert` of an
    OpenWebUI change takes seconds, not a deploy)."""

    kind: Literal["kamal_rollback"] = "kamal_rollback"
    version: str

    def provides(self) -> frozenset[str]:
        return frozenset({OPENWEBUI})

    def title(self) -> str:
        return f"kamal rollback OpenWebUI to version {self.version}"


class FreePort(_Action):
    """Published mode, in Kamal's pre-app-boot hook: stop the running OpenWebUI containers so
    the new version can bind the same addresses and port (Docker refuses a second binding)."""

    kind: Literal["free_port"] = "free_port"
    containers: tuple[str, ...]
    port: int

    def needs(self) -> frozenset[str]:
        return frozenset()

    def title(self) -> str:
        return f"stop {', '.join(self.containers)} to free port {self.port} for the new version"


# ───────────────────────── OpenWebUI: knowledge, presets, the model picker ─────────────────────────


def knowledge_key(name: str) -> str:
    return f"knowledge:{name}"


class OpenWebUIAction(_Action):
    """A change made through OpenWebUI's API: it needs OpenWebUI (a failed deploy blocks it)."""

    def needs(self) -> frozenset[str]:
        return frozenset({OPENWEBUI})


class CreateKnowledge(OpenWebUIAction):
    kind: Literal["openwebui_knowledge_create"] = "openwebui_knowledge_create"
    name: str
    description: str = ""

    def provides(self) -> frozenset[str]:
        return frozenset({knowledge_key(self.name)})

    def title(self) -> str:
        return f"create knowledge base {self.name}"


class FieldChange(_Frozen):
    """One field that differs: what OpenWebUI has, what the desired state wants."""

    field: str
    before: JsonValue
    after: JsonValue

    def line(self, width: int = 60) -> str:
        return f"{self.field}: {_short(self.before, width)} → {_short(self.after, width)}"


def _short(value: JsonValue, width: int) -> str:
    if value is None:
        return "(unset)"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


class UpdateKnowledge(OpenWebUIAction):
    kind: Literal["openwebui_knowledge_update"] = "openwebui_knowledge_update"
    name: str
    id: str
    description: str = ""
    changed: tuple[str, ...]  # the fields that differ: name, description
    diff: tuple[FieldChange, ...] = ()  # each of them, before → after

    def title(self) -> str:
        return f"update knowledge base {self.name}: {', '.join(self.changed)}"

    def details(self) -> tuple[str, ...]:
        return tuple(c.line() for c in self.diff)


class DeleteKnowledge(OpenWebUIAction):
    kind: Literal["openwebui_knowledge_delete"] = "openwebui_knowledge_delete"
    name: str
    id: str

    def title(self) -> str:
        return f"remove knowledge base {self.name}"


class _FileAction(OpenWebUIAction):
    base: str  # the knowledge base (folder) name
    path: str  # under knowledge/<base>/
    embedding_model: str | None = None  # canonical: Ollama embeds the file with it

    def needs(self) -> frozenset[str]:
        embed = {model_key(self.embedding_model)} if self.embedding_model else set()
        return super().needs() | {knowledge_key(self.base)} | embed


class AddKnowledgeFile(_FileAction):
    kind: Literal["openwebui_file_add"] = "openwebui_file_add"
    sha256: str

    def title(self) -> str:
        return f"add {self.path} to knowledge base {self.base}"


class ReplaceKnowledgeFile(_FileAction):
    kind: Literal["openwebui_file_replace"] = "openwebui_file_replace"
    sha256: str
    old_file_id: str

    def title(self) -> str:
        return f"replace {self.path} in knowledge base {self.base}"


class RemoveKnowledgeFile(_FileAction):
    kind: Literal["openwebui_file_remove"] = "openwebui_file_remove"
    file_id: str

    def needs(self) -> frozenset[str]:
        return frozenset({OPENWEBUI, knowledge_key(self.base)})

    def title(self) -> str:
        return f"remove {self.path} from knowledge base {self.base}"


class PresetForm(_Frozen):
    """A preset as OpenWebUI stores it, with its knowledge by name (ids are OpenWebUI's, known
    once the base exists: the executor fills them in)."""

    id: str
    name: str
    base_model_id: str
    params: dict[str, Scalar] = Field(default_factory=dict)  # the system prompt as `system`
    knowledge: tuple[str, ...] = ()


class _PresetAction(OpenWebUIAction):
    preset: PresetForm

    def needs(self) -> frozenset[str]:
        return super().needs() | {knowledge_key(k) for k in self.preset.knowledge}


class CreatePreset(_PresetAction):
    kind: Literal["openwebui_preset_create"] = "openwebui_preset_create"

    def title(self) -> str:
        return f"create preset {self.preset.id} on {self.preset.base_model_id}"


class UpdatePreset(_PresetAction):
    kind: Literal["openwebui_preset_update"] = "openwebui_preset_update"
    changed: tuple[str, ...]  # the fields that differ
    diff: tuple[FieldChange, ...] = ()  # each of them, before → after

    def title(self) -> str:
        return f"update preset {self.preset.id}: {', '.join(self.changed)}"

    def details(self) -> tuple[str, ...]:
        return tuple(c.line() for c in self.diff)


class DeletePreset(OpenWebUIAction):
    kind: Literal["openwebui_preset_delete"] = "openwebui_preset_delete"
    id: str

    def title(self) -> str:
        return f"remove preset {self.id}"


class HideModel(OpenWebUIAction):
    """Hide a model from the chat picker: a row of its own (made by the reconciler, marked) or
    `meta.hidden` on the row a person made."""

    kind: Literal["openwebui_hide"] = "openwebui_hide"
    id: str  # OpenWebUI's model id (Ollama's name for it)
    row: ModelRow | None = None  # the row there is, or None: one is created

    def title(self) -> str:
        return f"hide {self.id} from the model picker"


class ShowModel(OpenWebUIAction):
    kind: Literal["openwebui_show"] = "openwebui_show"
    id: str
    row: ModelRow
    delete_row: bool  # the reconciler made the row only to hide it: delete it

    def title(self) -> str:
        return f"show {self.id} in the model picker again"


# ───────────────────────── OpenWebUI: people, groups, who may use what ─────────────────────────


def user_key(email: str) -> str:
    return f"user:{email}"


def group_key(name: str) -> str:
    return f"group:{name}"


class CreateUser(OpenWebUIAction):
    """An account made through the admin API with its initial password, which the executor
    resolves from `password` (a reference: the value is in no plan, log or output)."""

    kind: Literal["openwebui_user_create"] = "openwebui_user_create"
    email: str
    name: str
    role: str
    password: SecretRef

    def provides(self) -> frozenset[str]:
        return frozenset({user_key(self.email)})

    def title(self) -> str:
        return f"create user {self.email} ({self.role}), initial password from {self.password.describe()}"


class AdoptAdmin(OpenWebUIAction):
    """Login turned on over a one-person OpenWebUI: its built-in admin (`admin@localhost`, whose
    password is OpenWebUI's public default) becomes the owner's account in git, e-mail, name and
    password (resolved by the executor from `password`), keeping its chats and settings."""

    kind: Literal["openwebui_admin_adopt"] = "openwebui_admin_adopt"
    id: str
    was: str  # the built-in admin's e-mail
    email: str
    name: str
    password: SecretRef

    def provides(self) -> frozenset[str]:
        return frozenset({user_key(self.email)})

    def title(self) -> str:
        return (
            f"make OpenWebUI's one-person admin {self.was} the account of {self.email} "
            f"(its chats kept), password from {self.password.describe()}"
        )

    def details(self) -> tuple[str, ...]:
        return (f"the default password of {self.was} no longer signs in",)


class UpdateUser(OpenWebUIAction):
    kind: Literal["openwebui_user_update"] = "openwebui_user_update"
    id: str
    email: str
    name: str
    role: str
    diff: tuple[FieldChange, ...]

    def title(self) -> str:
        return f"update user {self.email}: {', '.join(c.field for c in self.diff)}"

    def details(self) -> tuple[str, ...]:
        return tuple(c.line() for c in self.diff)


class DeleteUser(OpenWebUIAction):
    kind: Literal["openwebui_user_delete"] = "openwebui_user_delete"
    id: str
    email: str

    def title(self) -> str:
        return f"remove user {self.email} (prune: true)"


class CreateGroup(OpenWebUIAction):
    kind: Literal["openwebui_group_create"] = "openwebui_group_create"
    name: str
    description: str = ""
    members: tuple[str, ...] = ()  # e-mails

    def needs(self) -> frozenset[str]:
        return super().needs() | {user_key(m) for m in self.members}

    def provides(self) -> frozenset[str]:
        return frozenset({group_key(self.name)})

    def title(self) -> str:
        return f"create group {self.name} with {len(self.members)} member(s)"


class UpdateGroup(OpenWebUIAction):
    kind: Literal["openwebui_group_update"] = "openwebui_group_update"
    id: str
    name: str
    description: str = ""
    add: tuple[str, ...] = ()  # e-mails to add
    remove: tuple[str, ...] = ()  # user ids to remove (people git does not name in the group)
    diff: tuple[FieldChange, ...]

    def needs(self) -> frozenset[str]:
        return super().needs() | {user_key(m) for m in self.add}

    def title(self) -> str:
        return f"update group {self.name}: {', '.join(c.field for c in self.diff)}"

    def details(self) -> tuple[str, ...]:
        return tuple(c.line() for c in self.diff)


class DeleteGroup(OpenWebUIAction):
    kind: Literal["openwebui_group_delete"] = "openwebui_group_delete"
    id: str
    name: str

    def title(self) -> str:
        return f"remove group {self.name}"


class Principal(_Frozen):
    """Who a grant is for, by the names git uses: a group name, a user's e-mail, or everyone."""

    type: Literal["group", "user", "everyone"]
    name: str = ""

    def label(self) -> str:
        return "everyone" if self.type == "everyone" else f"{self.type} {self.name}"


class SetAccess(OpenWebUIAction):
    """Replace the read grants of a model (a preset or a base model) or a knowledge base."""

    kind: Literal["openwebui_access"] = "openwebui_access"
    target: Literal["model", "knowledge"]
    id: str  # the model id, or the knowledge base's name (its id is the ledger's)
    principals: tuple[Principal, ...]
    diff: tuple[FieldChange, ...]

    def needs(self) -> frozenset[str]:
        named = {group_key(p.name) for p in self.principals if p.type == "group"}
        named |= {user_key(p.name) for p in self.principals if p.type == "user"}
        own = {knowledge_key(self.id)} if self.target == "knowledge" else set()
        return super().needs() | named | own

    def title(self) -> str:
        who = ", ".join(p.label() for p in self.principals) or "admins only"
        return (
            f"set who may use {'knowledge base' if self.target == 'knowledge' else 'model'} {self.id}: {who}"
        )

    def details(self) -> tuple[str, ...]:
        return tuple(c.line() for c in self.diff)


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
    | LinkNetworks
    | RenewCertificate
    | KamalDeploy
    | KamalRollback
    | UpdateImage
    | FreePort
    | CreateKnowledge
    | UpdateKnowledge
    | DeleteKnowledge
    | AddKnowledgeFile
    | ReplaceKnowledgeFile
    | RemoveKnowledgeFile
    | CreatePreset
    | UpdatePreset
    | DeletePreset
    | HideModel
    | ShowModel
    | CreateUser
    | AdoptAdmin
    | UpdateUser
    | DeleteUser
    | CreateGroup
    | UpdateGroup
    | DeleteGroup
    | SetAccess
    | RunBenchmark,
    Field(discriminator="kind"),
]


class Violation(_Frozen):
    """One broken budget, with the numbers and the entries responsible."""

    budget: Literal[
        "disk", "free_space", "vram", "download_size", "loaded_count", "lan_addresses", "digest", "login"
    ]
    message: str
    needed: int = 0
    limit: int = 0
    entries: tuple[tuple[str, int], ...] = ()  # (model, bytes), largest first
    alternatives: tuple[str, ...] = ()  # VRAM: the advisor's changes that fit, with the numbers


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
    notes: tuple[Note, ...] = ()
    budget: Budget = Field(default_factory=Budget)
    updates: tuple[UpdateState, ...] = ()

    @property
    def refused(self) -> bool:
        return bool(self.violations)

    @property
    def empty(self) -> bool:
        return not self.actions and not self.violations
