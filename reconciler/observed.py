"""What the observers saw: frozen models the planner takes. No I/O here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reconciler.labels import MANAGED_TAG


class Obs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Blob(Obs):
    digest: str
    size: int = Field(ge=0)
    media_type: str = ""

    @property
    def is_weights(self) -> bool:
        return self.media_type.endswith((".model", ".projector", ".adapter"))


class VisionTower(Obs):
    """A vision encoder in the model file (`v.*`/`mm.*` tensors, `<arch>.vision.*` keys)."""

    weights: int = Field(default=0, ge=0)  # bytes of its tensors
    image_size: int = Field(default=0, ge=0)
    patch_size: int = Field(default=0, ge=0)
    num_channels: int = Field(default=3, ge=0)
    embedding_length: int = Field(default=0, ge=0)
    head_count: int = Field(default=0, ge=0)


class Architecture(Obs):
    """From `/api/show` (model_info and tensors) or the GGUF header: what sizes the weights
    Ollama places on the GPU, the KV cache and the compute graph. Everything after
    `value_length` is optional (0 / None = not known) so older observations still load."""

    family: str
    block_count: int = Field(ge=0)
    head_count: int = Field(ge=0)
    head_count_kv: int = Field(ge=0)
    embedding_length: int = Field(ge=0)
    context_length: int = Field(default=0, ge=0)
    key_length: int | None = None
    value_length: int | None = None
    head_count_kv_given: bool = (
        True  # False: the GGUF has no head_count_kv (Ollama's old estimate then assumes 1)
    )
    vocab_size: int = Field(default=0, ge=0)
    parameter_count: int = Field(default=0, ge=0)  # general.parameter_count
    tied_embeddings: bool | None = None  # True: no output.weight, the token embedding doubles as the output
    token_embd_bytes: int = Field(default=0, ge=0)
    output_bytes: int = Field(default=0, ge=0)  # output.weight (+ output_norm) when untied
    sliding_window: int = Field(default=0, ge=0)
    sliding_window_pattern: tuple[bool, ...] = ()  # per layer, True = sliding-window layer
    kv_lora_rank: int = Field(default=0, ge=0)  # deepseek2 multi-head latent attention
    rope_dimension: int = Field(default=0, ge=0)
    expert_count: int = Field(default=0, ge=0)
    expert_used_count: int = Field(default=0, ge=0)
    embedding_model: bool = False  # `<arch>.pooling_type` present: served by /api/embed
    vision: VisionTower | None = None


class ContainerObs(Obs):
    name: str
    id: str = ""
    running: bool
    status: str = ""
    health: str | None = None
    image: str = ""
    spec_hash: str | None = None  # the label we set when creating it
    spec: dict[str, Any] | None = None  # the ContainerSpec it was created from (label), for diffs
    networks: tuple[str, ...] = ()  # the Docker networks it is attached to


class ModelObs(Obs):
    name: str  # canonical reference (host/namespace/model:tag, lower case)
    digest: str = ""
    blobs: tuple[Blob, ...] = ()
    family: str = ""
    parameter_size: str = ""
    quantization: str = ""  # /api/tags details.quantization_level (the benchmark and the advisor read it)
    modified_at: datetime | None = None
    architecture: Architecture | None = None
    system: str | None = None
    parameters: dict[str, str] = Field(default_factory=dict)
    capabilities: tuple[str, ...] | None = None  # `/api/show` capabilities, when it was asked
    broken: str | None = None  # why Ollama cannot use it (its own `/api/show` error)
    missing_blobs: tuple[str, ...] = ()  # digests its manifest lists that are not on disk

    @property
    def size(self) -> int:
        return sum(b.size for b in self.blobs)

    @property
    def weights_digest(self) -> str | None:
        """The GGUF layer's digest: Ollama loads one copy per weights file (server/sched.go)."""
        return next((b.digest for b in self.blobs if b.media_type.endswith(".model")), None)

    @property
    def embedding(self) -> bool:
        if self.capabilities is not None:
            return "embedding" in self.capabilities and "completion" not in self.capabilities
        return self.architecture is not None and self.architecture.embedding_model


class LoadedObs(Obs):
    name: str  # canonical
    size: int
    size_vram: int
    expires_at: datetime | None = None
    context_length: int | None = None
    pinned: bool = False  # expires so far away that it was loaded with keep_alive < 0


class GpuObs(Obs):
    index: int
    name: str = ""
    uuid: str = ""
    total: int
    used: int
    free: int
    reserved: int = 0  # the driver's own reserve: neither used nor free (NVML v2)
    processes: tuple[tuple[int, int], ...] = ()  # (pid, bytes used)


class DiskObs(Obs):
    path: str = ""
    total: int
    free: int
    partial: dict[str, int] = {}  # digest → bytes an unfinished download already holds on disk


class RemoteManifest(Obs):
    """A model's layers as the registry lists them, looked up before pulling."""

    name: str  # canonical
    blobs: tuple[Blob, ...]
    digest: str = ""  # sha256 (hex) of the manifest bytes: what /api/tags lists once pulled
    architecture: Architecture | None = None

    @property
    def size(self) -> int:
        return sum(b.size for b in self.blobs)

    @property
    def weights_digest(self) -> str | None:
        return next((b.digest for b in self.blobs if b.media_type.endswith(".model")), None)


class InventoryEntry(Obs):
    """The reconciler's own record of a model it pulled (kept under the state dir)."""

    name: str  # canonical
    pulled_at: datetime | None = None
    last_used: datetime | None = None  # last time it was desired or seen loaded
    spec_hash: str | None = None  # derived models: hash of the spec it was created from
    digest: str | None = None  # derived models: manifest digest right after creation


class UpstreamObs(Obs):
    """The last look-up of a model's tag in its registry (the reconciler's memory): the digest
    the registry served then, and when. A failed check keeps the digest of the last good one."""

    name: str  # canonical
    checked_at: datetime
    digest: str | None = None
    blobs: tuple[Blob, ...] = ()
    error: str | None = None  # why the last check failed
    failures: int = Field(default=0, ge=0)  # consecutive failed checks (they back off)


class ImageTagsObs(Obs):
    """The last look at an image's tag list (the reconciler's memory)."""

    image: str  # host/repository
    checked_at: datetime
    tags: tuple[str, ...] = ()  # release tags seen (pre-releases and other tags left out)
    error: str | None = None
    failures: int = Field(default=0, ge=0)


class ImageRun(Obs):
    """Where `updates.images: auto` has moved one image as written in git (the reconciler's
    memory, keyed by that image): a new tag in git starts afresh."""

    tag: str | None = None  # the release it runs; None: the one written in git
    previous: str | None = None  # the release before it (what a failed start falls back to)
    failed: tuple[str, ...] = ()  # releases that did not start: never taken again
    recorded: str | None = None  # the release last committed to git (record: commit)


class AppliedUpdate(Obs):
    """The last update the reconciler made to a model (its memory)."""

    old: str
    new: str
    at: datetime
    rollback: str = ""  # where the old manifest is kept


class DeployedObs(Obs):
    """What the Kamal executor last deployed, and the OpenWebUI settings last converged."""

    # Memory written by older versions holds `running_versions` too (never read): ignored.
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    openwebui_spec_hash: str | None = None
    openwebui_settings_hash: str | None = None
    # a version whose container did not become healthy when deployed: not deployed again
    # until the desired spec changes (each retry would stop the serving version for nothing)
    openwebui_failed_hash: str | None = None


class KnowledgeFile(Obs):
    id: str
    filename: str = ""
    sha256: str | None = None
    path: str | None = None  # the reconciler's mark (meta.data.reconciler_path), when it uploaded it


class Grant(Obs):
    """One of OpenWebUI's access grants: a principal (`user` id, `group` id, or user `*` for
    every user) may `read` or `write` a model or a knowledge base."""

    principal_type: str
    principal_id: str
    permission: str = "read"


# The account OpenWebUI makes for its one person when login is off (WEBUI_AUTH=False) and signs
# in as on every empty sign-in (open_webui/routers/auths.py:735-765, 0.12.4).
BUILTIN_ADMIN_EMAIL = "admin@localhost"


class Person(Obs):
    """An OpenWebUI account (the admin's `/api/v1/users/` list)."""

    id: str
    email: str
    name: str = ""
    role: str = "pending"
    group_ids: tuple[str, ...] = ()


class GroupObs(Obs):
    id: str
    name: str
    description: str = ""


class KnowledgeBase(Obs):
    id: str
    name: str
    description: str = ""
    access: tuple[Grant, ...] = ()
    file_count: int = 0
    files: tuple[KnowledgeFile, ...] | None = None  # listed only for the reconciler's own bases


class ModelRow(Obs):
    """A row of OpenWebUI's `model` table: a preset (with a base model) or the override of a
    base model (hidden, renamed)."""

    id: str
    base_model_id: str | None = None
    name: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    is_active: bool = True
    access: tuple[Grant, ...] = ()

    @property
    def managed(self) -> bool:
        return bool(self.meta.get(MANAGED_TAG))

    @property
    def hidden(self) -> bool:
        return bool(self.meta.get("hidden"))


class OfferedModel(Obs):
    """A model the chat picker offers."""

    id: str
    owned_by: str = ""
    preset: bool = False  # a workspace model on top of a base model
    hidden: bool = False


class OpenWebUIObs(Obs):
    """OpenWebUI as its REST API shows it (observed once it was deployed)."""

    reachable: bool
    version: str | None = None
    error: str | None = None
    knowledge: tuple[KnowledgeBase, ...] = ()
    rows: tuple[ModelRow, ...] = ()
    offered: tuple[OfferedModel, ...] = ()
    users: tuple[Person, ...] = ()
    groups: tuple[GroupObs, ...] = ()
    signed_in_as: str | None = None  # the account the reconciler signed in as (its e-mail)
    login: bool | None = None  # login on (WEBUI_AUTH), as OpenWebUI says; None: not asked
    # Login is on with accounts there: OpenWebUI would refuse every sign-in with it turned off.
    login_locked: bool = False

    def user_by_email(self) -> dict[str, Person]:
        return {u.email.lower(): u for u in self.users}

    def group_by_name(self) -> dict[str, GroupObs]:
        return {g.name: g for g in self.groups}

    def knowledge_by_id(self) -> dict[str, KnowledgeBase]:
        return {k.id: k for k in self.knowledge}

    def rows_by_id(self) -> dict[str, ModelRow]:
        return {r.id: r for r in self.rows}


class LedgerFile(Obs):
    sha256: str
    file_id: str


class LedgerKnowledge(Obs):
    id: str
    files: dict[str, LedgerFile] = Field(default_factory=dict)  # path → the file the reconciler uploaded


class Ledger(Obs):
    """What the reconciler made in OpenWebUI (its memory, kept in the state directory): a
    knowledge base, file or preset a person made is never its to delete."""

    knowledge: dict[str, LedgerKnowledge] = Field(default_factory=dict)  # base name → id and files
    presets: tuple[str, ...] = ()
    hidden: dict[str, bool] = Field(default_factory=dict)  # model id → True if it created the row
    groups: dict[str, str] = Field(default_factory=dict)  # group name → id, the groups it created

    def own_ids(self) -> set[str]:
        return {entry.id for entry in self.knowledge.values()}


class KamalApp(Obs):
    """One of OpenWebUI's app containers Kamal made (labels `service`, `role=web`), any state."""

    name: str
    version: str | None  # our image label, else from the container name
    running: bool = False
    health: str | None = None  # Docker's health status, when the container has a check
    networks: tuple[str, ...] = ()

    @property
    def unhealthy(self) -> bool:
        return not self.running or self.health not in (None, "healthy")


class CertificateObs(Obs):
    """OpenWebUI's LAN TLS certificate kept under the state directory (kamal-proxy serves it)."""

    not_after: datetime
    ca_not_after: datetime | None = None  # None: no CA next to it (it is made again with the next one)


class KamalObs(Obs):
    """What Kamal left on this machine for OpenWebUI."""

    apps: tuple[KamalApp, ...] = ()
    kamal_network: bool = False  # Kamal's `kamal` network exists
    certificate: CertificateObs | None = None  # None: not made yet (the first deploy makes it)

    @property
    def retained(self) -> set[str]:
        """Versions that still have a container: `kamal rollback` can start one in seconds."""
        return {a.version for a in self.apps if a.version}

    @property
    def running(self) -> tuple[str, ...]:
        return tuple(sorted({a.version for a in self.apps if a.version and a.running}))


class EvictionObs(Obs):
    """A pinned model found unloaded after the reconciler warmed it, within the last hour."""

    model: str  # canonical
    count: int
    suspects: tuple[str, ...] = ()  # models that were loaded instead


class BenchObs(Obs):
    """The benchmark history, as `benchmarks.on_change` needs it (analytics/history.py)."""

    benchmarked: tuple[str, ...] = ()  # settings keys measured (model, digest, setting, version)
    deferred: tuple[tuple[str, datetime], ...] = ()  # model → when its last attempt found Ollama in use
    clock: datetime | None = None  # the server's local time at the observation (benchmarks.window)


class Observed(Obs):
    container: ContainerObs | None = None
    ollama_reachable: bool = True
    ollama_version: str | None = None
    models: tuple[ModelObs, ...] = ()
    loaded: tuple[LoadedObs, ...] = ()
    gpus: tuple[GpuObs, ...] = ()
    gpu_error: str | None = None  # why NVML saw no GPU, when it saw none
    disk: DiskObs | None = None
    remote: tuple[RemoteManifest, ...] = ()
    remote_errors: dict[str, str] = Field(default_factory=dict)  # canonical name → why unknown
    inventory: tuple[InventoryEntry, ...] = ()
    deployed: DeployedObs = Field(default_factory=DeployedObs)
    evictions: tuple[EvictionObs, ...] = ()
    warmed: tuple[str, ...] = ()  # models the reconciler itself loaded pinned (its memory)
    openwebui: OpenWebUIObs | None = None  # None: not deployed yet, or not looked at
    ledger: Ledger = Field(default_factory=Ledger)  # what the reconciler made in OpenWebUI (memory)
    kamal: KamalObs | None = None  # None: no OpenWebUI desired, or not looked at
    host_addresses: tuple[str, ...] | None = None  # this machine's IP addresses (None: not observed)
    bench: BenchObs | None = None  # the benchmark history (only with benchmarks.on_change)
    at: datetime | None = None  # when it was observed: what the planner's time windows count from
    upstream: tuple[UpstreamObs, ...] = ()  # the last registry check of each model (memory)
    recorded: dict[str, str] = Field(default_factory=dict)  # model → digest last committed (record: commit)
    image_tags: tuple[ImageTagsObs, ...] = ()  # the last tag-list check of each image (memory)
    image_checks: tuple[ImageTagsObs, ...] = ()  # the tag-list looks of this observation
    applied_updates: dict[str, AppliedUpdate] = Field(default_factory=dict)  # model → its last update
    image_runs: dict[str, ImageRun] = Field(default_factory=dict)  # image as written → auto's moves (memory)
    clock: datetime | None = None  # `at` in the server's time zone (update windows are in it)

    def weights_keys(self) -> dict[str, str]:
        """Name → what Ollama keys its loaded copy by: the weights file (digest) when known,
        else the name itself (server/sched.go keys runners by the model file)."""
        keys = {r.name: r.weights_digest for r in self.remote if r.weights_digest}
        keys.update({m.name: m.weights_digest for m in self.models if m.weights_digest})
        return keys

    def runner_of(self, name: str, keys: dict[str, str] | None = None) -> LoadedObs | None:
        """The loaded runner that serves `name`: listed under it, or under another name on the
        same weights (`/api/ps` lists a shared copy once, under the name that loaded it)."""
        keys = self.weights_keys() if keys is None else keys
        key = keys.get(name, f"name:{name}")
        return next((m for m in self.loaded if m.name == name or keys.get(m.name) == key), None)

    def served_names(self) -> set[str]:
        """Every model name a loaded runner serves: the names listed and those sharing their weights."""
        keys = self.weights_keys()
        loaded = {keys.get(m.name) for m in self.loaded} - {None}
        return {m.name for m in self.loaded} | {n for n, k in keys.items() if k in loaded}
