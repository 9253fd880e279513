"""The desired state: what the owner keeps in git, as frozen pydantic models.

Three files at the root of the desired-state repo, one per concern:
`server.yaml` (budgets, LAN), `ollama.yaml` (the Ollama container and models),
`openwebui.yaml` (OpenWebUI). Every field has a description and a default that
the generated docs (`desired_state/SCHEMA.md`) and JSON Schemas are made from.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from reconciler.desired.redact import shown
from reconciler.desired.refs import InvalidReference, parse_ref, valid_port
from reconciler.desired.webui_env import is_secret_setting
from reconciler.desired.webui_names import KNOWN_SETTINGS
from reconciler.units import ByteSize

_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,127}$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
_IMAGE = re.compile(
    r"^(?:[a-z0-9.-]+(?::[0-9]{1,5})?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
_SECRET_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Words in an environment variable's name that say it holds a secret (whole or as a part).
_SECRET_WORDS = ("KEY", "SECRET", "PASSWORD", "PASSWD", "TOKEN", "CREDENTIAL", "PRIVATE", "COOKIE")
_SECRET_PARTS = {"AUTH", "PASS", "PWD", "PW", "PAT"}
# OpenWebUI settings the reconciler renders (kamal/render.py clear_env) → the field they come from.
MANAGED_WEBUI_ENV: dict[str, str] = {
    "OLLAMA_BASE_URL": "the managed Ollama container",
    "ENABLE_OLLAMA_API": "the managed Ollama container",
    "RAG_OLLAMA_BASE_URL": "the managed Ollama container",
    "WEBUI_AUTH": "`auth`",
    "ENABLE_SIGNUP": "`signup.enabled`",
    "DEFAULT_USER_ROLE": "`signup.default_role`",
    "WEBUI_ADMIN_EMAIL": "the admin of `users`",
    "WEBUI_ADMIN_NAME": "the admin of `users`",
    "WEBUI_ADMIN_PASSWORD": "the admin of `users`",
    "ENABLE_PERSISTENT_CONFIG": "`persistent_config`",
    "ENABLE_OPENAI_API": "`cloud`",
    "OPENAI_API_BASE_URLS": "`cloud`",
    "OPENAI_API_KEYS": "`cloud` api_key references",
    "WEBUI_SECRET_KEY": "`kamal.webui_secret_key`",
    "DEFAULT_MODELS": "`default_models`",
    "TASK_MODEL": "`task_model`",
    "RAG_EMBEDDING_ENGINE": "`rag.embedding_engine`",
    "RAG_EMBEDDING_MODEL": "`rag.embedding_model`",
    "CHUNK_SIZE": "`rag.chunk_size`",
    "CHUNK_OVERLAP": "`rag.chunk_overlap`",
    "RAG_TOP_K": "`rag.top_k`",
    "AUDIO_STT_ENGINE": "`voice`",
    "WHISPER_MODEL": "`voice`",
    "AUDIO_TTS_ENGINE": "`voice`",
    "AUDIO_TTS_VOICE": "`voice`",
    "USER_PERMISSIONS_CHAT_STT": "`voice.enabled`",
    "USER_PERMISSIONS_CHAT_TTS": "`voice.enabled`",
    "USER_PERMISSIONS_CHAT_CALL": "`voice.enabled`",
    "OPENAI_API_CONFIGS": "`cloud` models",
}


def looks_like_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS) or bool(_SECRET_PARTS & set(upper.split("_")))


_DURATION = re.compile(r"^-?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")


class Frozen(BaseModel):
    # strict: a YAML string is never taken for a boolean or a number ("yes", "8"), so the
    # reconciler reads a file as the JSON Schemas (and editors) do. defer_build: a model's
    # validator is built when first used, not at import (the hooks and `validate` start fast).
    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, strict=True, defer_build=True
    )


def _model_ref(value: str) -> str:
    try:
        parse_ref(value)
    except InvalidReference as exc:
        raise ValueError(f"not a valid Ollama model reference: {exc}") from None
    return value


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float | str):
        text = str(value)
        if any(ord(ch) < 32 for ch in text):
            raise ValueError("environment values cannot contain control characters or newlines")
        return text
    raise ValueError("environment values must be strings, numbers or booleans")


def _slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        raise ValueError(
            "must be lower-case letters, digits, '-' or '_' (at most 63, starting with a letter or digit)"
        )
    return value


def _ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("not an IP address") from None
    return value


def _image(value: str) -> str:
    if not _IMAGE.fullmatch(value):
        raise ValueError("not a Docker image reference (e.g. ollama/ollama:0.32.15)")
    return value


def _docker_name(value: str) -> str:
    if not _DOCKER_NAME.fullmatch(value):
        raise ValueError("not a valid Docker name (letters, digits, '_', '.', '-')")
    return value


ModelName = Annotated[str, AfterValidator(_model_ref)]
EnvValue = Annotated[str, AfterValidator(_env_value)]
Slug = Annotated[str, AfterValidator(_slug)]
IPAddress = Annotated[str, AfterValidator(_ip)]
Image = Annotated[str, AfterValidator(_image)]
DockerName = Annotated[str, AfterValidator(_docker_name)]


# ───────────────────────────── server.yaml ─────────────────────────────


class DiskBudget(Frozen):
    models: ByteSize = Field(
        description="Most bytes all models may take on disk (shared blobs counted once), "
        "rollback cache included."
    )
    min_free: ByteSize = Field(
        default=10 * 2**30,
        description="Free space to keep on the filesystem that holds the models volume.",
    )


class VramBudget(Frozen):
    per_gpu: ByteSize | None = Field(
        default=None,
        description="VRAM the pinned (keep_loaded) models may use on each GPU. "
        "Leave unset to use the GPU's total minus `headroom`.",
    )
    headroom: ByteSize = Field(
        default=512 * 2**20,
        description="VRAM left free on each GPU for the desktop, other processes and "
        "on-demand models when `per_gpu` is unset.",
    )
    assume_gpu_total: ByteSize | None = Field(
        default=None,
        description="GPU memory to plan with when no GPU can be observed (e.g. planning on a "
        "laptop). Unset: the VRAM check needs a GPU or `per_gpu`.",
    )


class Budgets(Frozen):
    disk: DiskBudget = Field(description="Disk budget for models.")
    vram: VramBudget = Field(default_factory=VramBudget, description="VRAM budget per GPU.")


NotifyEvent = Literal[
    "failing", "stalled", "degraded", "recovered", "update_available", "update_applied", "update_failed",
    "disk_low",
]  # fmt: skip
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = (
    "failing", "stalled", "degraded", "recovered", "update_available", "update_applied", "update_failed",
    "disk_low",
)  # fmt: skip


class NotifyTarget(Frozen):
    """Where notifications go: an Apprise URL, by secret reference (it carries the token)."""

    to: str = Field(
        description="The host the notifications are sent to (e.g. ntfy.lan, 127.0.0.1): the "
        "secrets policy must allow the URL's secret there, and the URL must point at it."
    )
    url: SecretRef = Field(
        description="The Apprise URL (ntfys://, gotify://, matrixs://, mailtos://, tgram://, "
        "json://…), by reference: {env: NAME} or {file: NAME}."
    )
    events: list[NotifyEvent] = Field(
        default_factory=lambda: list(NOTIFY_EVENTS),
        description="What is sent: failing (a reconcile failing after retries), stalled, degraded, "
        "recovered, update_available, update_applied, update_failed, disk_low. Default: all.",
    )

    @field_validator("to")
    @classmethod
    def _host(cls, value: str) -> str:
        if not re.fullmatch(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$", value):
            raise ValueError("must be a host name or address, without scheme, port or path")
        return value.lower()


class ServerSpec(Frozen):
    """`server.yaml`: the machine's budgets and network."""

    budgets: Budgets = Field(description="Disk and VRAM budgets the plan must respect.")
    notify: list[NotifyTarget] = Field(
        default_factory=list,
        description="Notifications (Apprise URLs by secret reference), each sent once per change of state.",
    )
    lan_addresses: list[IPAddress] = Field(
        default_factory=list,
        description="The server's LAN addresses. Services are published on loopback plus "
        "these; never on 0.0.0.0 unless it is listed here explicitly.",
    )

    @field_validator("lan_addresses")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("an address is listed twice")
        return value


# ───────────────────────────── ollama.yaml ─────────────────────────────

KvCacheType = Literal["f16", "q8_0", "q4_0"]


class OllamaEnv(Frozen):
    """Ollama server settings, passed to the container as environment variables."""

    OLLAMA_KEEP_ALIVE: str | int | None = Field(
        default=None,
        description="How long an idle model stays loaded (Go duration like 5m, or seconds; "
        "negative = forever). Ollama's default: 5m. Pinned models ignore it.",
    )
    OLLAMA_MAX_LOADED_MODELS: int | None = Field(
        default=None, ge=0, le=64, description="Models loaded at once (0/unset = 3 per GPU)."
    )
    OLLAMA_NUM_PARALLEL: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Parallel requests per model; the KV cache is sized num_ctx × this. Ollama's default: 1.",
    )
    OLLAMA_FLASH_ATTENTION: bool | None = Field(
        default=None, description="Flash attention; needed for a quantized KV cache."
    )
    OLLAMA_KV_CACHE_TYPE: KvCacheType | None = Field(
        default=None,
        description="KV cache element type: f16 (default), q8_0 (half), q4_0 (quarter). "
        "Only effective with flash attention.",
    )
    OLLAMA_CONTEXT_LENGTH: int | None = Field(
        default=None, ge=256, le=2**21, description="Default num_ctx (Ollama: 4096 on 8 GB)."
    )
    OLLAMA_GPU_OVERHEAD: ByteSize | None = Field(
        default=None, description="VRAM Ollama reserves per GPU, in bytes."
    )
    OLLAMA_LOAD_TIMEOUT: str | int | None = Field(
        default=None,
        description="How long a model load may make no progress before Ollama gives up (Go "
        "duration or seconds; 0 or negative = no limit). Ollama's default: 5m. The reconciler "
        "waits for a load at least this long.",
    )
    OLLAMA_NOPRUNE: bool | None = Field(
        default=None,
        description="Keep unreferenced blobs and partial downloads across restarts. The "
        "reconciler sets it to true unless you say otherwise, so interrupted pulls resume.",
    )
    OLLAMA_ORIGINS: str | None = Field(default=None, description="Extra CORS origins.")
    extra: dict[str, EnvValue] = Field(
        default_factory=dict,
        description="Any other environment variables for the container (names in "
        "UPPER_CASE). OLLAMA_HOST and OLLAMA_MODELS are managed by the reconciler.",
    )

    @field_validator("OLLAMA_KEEP_ALIVE", "OLLAMA_LOAD_TIMEOUT")
    @classmethod
    def _keep_alive(cls, value: str | int | None) -> str | int | None:
        if isinstance(value, str) and not _DURATION.fullmatch(value):
            raise ValueError("not a Go duration: write e.g. 5m, 24h, -1m or a number of seconds")
        return value

    @field_validator("extra")
    @classmethod
    def _extra_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{shown(name)} is not an environment variable name (UPPER_CASE)")
            if looks_like_secret_name(name):
                raise ValueError(
                    f"{name} looks like a secret: secrets never go in git, and Ollama's container "
                    "gets none from the reconciler"
                )
            if name in {"OLLAMA_HOST", "OLLAMA_MODELS"}:
                raise ValueError(f"{name} is managed by the reconciler; remove it")
            if name in OllamaEnv.model_fields:
                raise ValueError(f"{name} has its own field; set it there instead of in extra")
        return value

    def as_environment(self) -> dict[str, str]:
        env: dict[str, str] = {"OLLAMA_NOPRUNE": "1"}
        for name in type(self).model_fields:
            if name == "extra":
                continue
            value = getattr(self, name)
            if value is not None:
                env[name] = _env_value(value)
        env.update(self.extra)
        return env


class Publish(Frozen):
    port: int = Field(default=11434, ge=1, le=65535, description="Host port for Ollama's API.")
    addresses: list[IPAddress] | None = Field(
        default=None,
        description="Host addresses to bind. Unset: 127.0.0.1 plus server.yaml's "
        "lan_addresses. 0.0.0.0 only when written here explicitly.",
    )


class OllamaContainer(Frozen):
    name: DockerName = Field(default="ollama", description="Container name.")
    image: Image = Field(
        default="ollama/ollama:0.32.15",
        description="Ollama image; pin a tag or a digest. The reconciler supports Ollama 0.6.8 "
        "and later; a version tag also tells it the server's defaults before it answers.",
    )
    gpus: Literal["all", "none"] | list[str] = Field(
        default="all",
        description="GPU passthrough: all (like --gpus all), none, or a list of device indexes/UUIDs.",
    )
    volume: DockerName = Field(
        default="ollama", description="Named volume mounted at /root/.ollama (the models)."
    )
    network: DockerName = Field(
        default="llm",
        description="Docker network shared with OpenWebUI; Ollama is reachable there as "
        "`ollama` whatever container is recreated.",
    )
    publish: Publish = Field(default_factory=Publish, description="Published API port.")

    @field_validator("network")
    @classmethod
    def _own_network(cls, value: str) -> str:
        if value in {"host", "none", "bridge"}:
            raise ValueError(
                f"{value} is one of Docker's built-in networks, where OpenWebUI cannot reach Ollama "
                "by name: name a network of its own (e.g. llm)"
            )
        return value

    env: OllamaEnv = Field(default_factory=OllamaEnv, description="Server settings.")
    restart: Literal["no", "always", "unless-stopped", "on-failure"] = Field(
        default="unless-stopped", description="Docker restart policy."
    )

    @field_validator("gpus")
    @classmethod
    def _gpu_ids(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list):
            if not value:
                raise ValueError("an empty list selects no GPU: write `none` instead")
            for index, item in enumerate(value):
                if not re.fullmatch(r"^([0-9]{1,2}|GPU-[0-9a-fA-F-]{8,64})$", str(item)):
                    raise ValueError(f"item {index} is not a GPU index or a GPU-UUID")
        return value


class RegistryLogin(Frozen):
    username: str = Field(description="User name for the registry's token server.")
    password: SecretRef = Field(description="The password (or access token), by reference.")


class Registry(Frozen):
    host: str = Field(description="Registry host as written in model references, e.g. registry.lan:5000.")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return _registry_server(value)

    insecure: bool = Field(default=False, description="Plain HTTP (Ollama's --insecure).")
    url: str | None = Field(
        default=None,
        description="How the reconciler itself reaches the registry for manifest look-ups "
        "when that differs from inside the container (e.g. http://127.0.0.1:5000).",
    )
    login: RegistryLogin | None = Field(
        default=None,
        description="Credentials for the reconciler's manifest look-ups in a registry that "
        "demands a token (private namespaces): tried after an anonymous token. Ollama itself "
        "pulls with its own key (/root/.ollama/id_ed25519.pub in the models volume), which "
        "the registry must accept.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"^https?://[A-Za-z0-9.:\[\]-]+/?$", value):
            raise ValueError("must be http(s)://host[:port]")
        return value


_WINDOW = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$")
_INTERVAL = re.compile(r"^([1-9][0-9]*)(m|h|d)$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
UpdateMode = Literal["never", "notify", "auto"]


def _window(value: str) -> str:
    found = _WINDOW.fullmatch(value)
    if found is None:
        raise ValueError('must be "HH:MM-HH:MM" in the server\'s time zone, e.g. "02:00-06:00"')
    if found.group(1, 2) == found.group(3, 4):
        raise ValueError(
            "the window is empty: it starts and ends at the same time, so it would never be open"
        )
    return value


def _interval(value: str) -> str:
    found = _INTERVAL.fullmatch(value)
    if found is None:
        raise ValueError("must be a whole number of minutes, hours or days, e.g. 30m, 6h or 1d")
    if interval_seconds(value) < 300:
        raise ValueError("checks run at most every 5 minutes (5m): registries rate-limit look-ups")
    return value


def interval_seconds(value: str) -> int:
    """`30m` / `6h` / `1d` → seconds (the value is validated by the schema)."""
    found = _INTERVAL.fullmatch(value)
    if found is None:
        raise ValueError(value)
    return int(found.group(1)) * {"m": 60, "h": 3600, "d": 86400}[found.group(2)]


Window = Annotated[str, AfterValidator(_window)]
Interval = Annotated[str, AfterValidator(_interval)]


AutoImage = Literal["ollama", "openwebui"]


class UpdatePolicy(Frozen):
    """`updates:` in ollama.yaml (every model) or on one model (overrides those fields)."""

    policy: UpdateMode | None = Field(
        default=None,
        description="`never`: a present model is never looked at again; `notify`: check the "
        "registry on a schedule and report an update (changes nothing); `auto`: pull the new "
        "digest inside `window`, keeping the old one as a rollback entry. Default: never.",
    )
    check_every: Interval | None = Field(
        default=None,
        description="How often the registry is asked at most (30m, 6h, 1d; at least 5m). A "
        "failed look-up waits twice as long each time (up to 8x). Default: 24h.",
    )
    window: Window | None = Field(
        default=None,
        description='When `auto` may update, "HH:MM-HH:MM" in the server\'s time zone (may '
        "wrap past midnight). Unset: `auto` waits (an update needs a window).",
    )
    auto_images: list[AutoImage] | None = Field(
        default=None,
        description="The opt-in `images: auto` needs (ollama.yaml only): the images it may change, "
        "`ollama` and/or `openwebui`; an image not listed is only reported.",
    )
    images: Literal["never", "notify", "auto"] | None = Field(
        default=None,
        description="The Ollama and OpenWebUI images (ollama.yaml only): `notify` reports newer "
        "release tags (semantic versions from the registry's tag list, pre-releases ignored) on the "
        "same schedule; `auto` also moves each image listed in `auto_images` to the newest release "
        "inside `window` (a new container for Ollama, a Kamal deploy for OpenWebUI; a version that "
        "does not start is held back and the previous one runs). Default: never.",
    )
    record: Literal["none", "commit"] | None = Field(
        default=None,
        description="`commit`: an `auto` update is made as a commit to the desired-state repo that "
        "pins the new digest (name@sha256:…), by the reconciler's own identity and validated like "
        "any push; the pinned model then moves to it, so `git revert` of that commit restores the "
        "previous digest from its rollback entry. Default: none (the update is made directly).",
    )

    @field_validator("images")
    @classmethod
    def _auto_opted_in(cls, value: str | None, info: ValidationInfo) -> str | None:
        """`auto` changes what runs: only for the images the owner listed, never implied."""
        if value == "auto" and not info.data.get("auto_images"):
            raise ValueError(
                "`auto` replaces a running image, so it needs an explicit opt-in per image: add "
                "`auto_images: [ollama]` (and/or `openwebui`) next to it, or use `notify` to be told only"
            )
        return value


class ModelSpec(Frozen):
    name: ModelName = Field(
        description="Ollama reference: model[:tag], namespace/model[:tag] or "
        "host/namespace/model[:tag]; the tag names the quantization "
        "(llama3:8b-instruct-q4_K_M)."
    )
    keep_loaded: bool = Field(
        default=False, description="Pin in VRAM (loaded with keep_alive -1 and re-warmed)."
    )
    num_ctx: int | None = Field(
        default=None,
        ge=256,
        le=2**21,
        description="Context length the model is loaded with; sizes its KV cache. Unset: "
        "OLLAMA_CONTEXT_LENGTH or 4096.",
    )
    digest: str | None = Field(
        default=None,
        description="Pin the manifest digest (sha256:<64 hex>; also written name@sha256:...). "
        "Ollama pulls by tag only, so the model is pulled only while the registry serves this "
        "digest for the tag, and a pinned model is never updated.",
    )
    updates: UpdatePolicy | None = Field(
        default=None, description="Override ollama.yaml `updates:` for this model."
    )

    @model_validator(mode="before")
    @classmethod
    def _split_digest(cls, data: Any) -> Any:
        """`name@sha256:…` is the name and its pinned digest."""
        if isinstance(data, dict) and isinstance(data.get("name"), str) and "@" in data["name"]:
            name, _, digest = data["name"].partition("@")
            if "digest" in data and data["digest"] != digest:
                raise ValueError("the digest in `name` and `digest` differ: write it once")
            data = {**data, "name": name, "digest": digest}
        return data

    @field_validator("updates")
    @classmethod
    def _no_images(cls, value: UpdatePolicy | None) -> UpdatePolicy | None:
        if value is not None and (value.images is not None or value.auto_images is not None):
            raise ValueError(
                "`images` and `auto_images` are settings of ollama.yaml's top-level `updates:`, "
                "not of one model"
            )
        return value

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        if value is not None and not _DIGEST.fullmatch(value):
            raise ValueError("must be sha256: followed by 64 lower-case hex digits")
        return value


Scalar = str | int | float | bool


def _whole(value: Any) -> Any:
    """An integer option (Go `int`): a whole number, not a boolean, string or fraction."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number (Ollama refuses it at every load: must be of type integer)")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number (Ollama would silently drop the fraction)")
    return int(value)


def _number(value: Any) -> Any:
    """A float32 option: a number, not a boolean or a string."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number (Ollama refuses it at every load: must be of type float32)")
    return float(value)


def _flag(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("must be true or false (Ollama refuses it at every load: must be of type boolean)")
    return value


def _strings(value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(
            'must be a list of strings, e.g. ["<|end|>"] (Ollama refuses anything else at every '
            "load: must be of type array)"
        )
    return value


WholeOption = Annotated[int | None, BeforeValidator(_whole)]
NumberOption = Annotated[float | None, BeforeValidator(_number)]
FlagOption = Annotated[bool | None, BeforeValidator(_flag)]
StringsOption = Annotated[list[str] | None, BeforeValidator(_strings)]

# Options that must agree between pinned models sharing one loaded copy: api/types.go Runner
# (a change reloads the runner, server/sched.go needsReload).
RUNNER_PARAMETERS = ("num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread")
# Options only some releases take (api/types.go Options): gone in 0.7.0 / new in 0.30.0. Ollama
# ignores an option it does not know (with a warning), so the loader checks them against the
# version the image pins.
PARAMETERS_UNTIL_0_7 = (
    "mirostat", "mirostat_tau", "mirostat_eta", "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock",
)  # fmt: skip
PARAMETERS_FROM_0_30 = ("draft_num_predict",)


class Parameters(Frozen):
    """Modelfile parameters, each of the type Ollama checks it against at every load.

    The JSON options of Ollama's api/types.go `Options` and `Runner` (v0.32.15, plus those
    v0.6.8 still had), checked by `Options.FromMap`."""

    num_ctx: WholeOption = Field(default=None, description="Context length (tokens).")
    num_batch: WholeOption = Field(default=None, description="Prompt batch size.")
    num_gpu: WholeOption = Field(default=None, description="Layers to put on the GPU (-1 = all).")
    main_gpu: WholeOption = Field(default=None, description="GPU for small tensors.")
    use_mmap: FlagOption = Field(default=None, description="Memory-map the weights.")
    num_thread: WholeOption = Field(default=None, description="CPU threads.")
    num_keep: WholeOption = Field(default=None, description="Tokens kept when the context shifts.")
    seed: WholeOption = Field(default=None, description="Random seed.")
    num_predict: WholeOption = Field(default=None, description="Most tokens to generate (-1 = no limit).")
    top_k: WholeOption = Field(default=None, description="Top-k sampling.")
    top_p: NumberOption = Field(default=None, description="Top-p sampling.")
    min_p: NumberOption = Field(default=None, description="Min-p sampling.")
    typical_p: NumberOption = Field(default=None, description="Locally typical sampling.")
    repeat_last_n: WholeOption = Field(default=None, description="Tokens looked back for repeats.")
    temperature: NumberOption = Field(default=None, description="Sampling temperature.")
    repeat_penalty: NumberOption = Field(default=None, description="Penalty for repeats.")
    presence_penalty: NumberOption = Field(default=None, description="Penalty for tokens present.")
    frequency_penalty: NumberOption = Field(default=None, description="Penalty by token frequency.")
    stop: StringsOption = Field(default=None, description="Stop sequences: a list of strings.")
    draft_num_predict: WholeOption = Field(default=None, description="Draft tokens (Ollama 0.30.0+).")
    mirostat: WholeOption = Field(default=None, description="Mirostat sampling (Ollama before 0.7.0).")
    mirostat_tau: NumberOption = Field(default=None, description="Mirostat target (Ollama before 0.7.0).")
    mirostat_eta: NumberOption = Field(default=None, description="Mirostat rate (Ollama before 0.7.0).")
    low_vram: FlagOption = Field(default=None, description="Ollama before 0.7.0.")
    f16_kv: FlagOption = Field(default=None, description="Ignored; Ollama before 0.7.0.")
    logits_all: FlagOption = Field(default=None, description="Ollama before 0.7.0.")
    vocab_only: FlagOption = Field(default=None, description="Ollama before 0.7.0.")
    use_mlock: FlagOption = Field(default=None, description="Lock the weights in RAM (Ollama before 0.7.0).")

    @model_serializer(mode="wrap")
    def _set_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Only the parameters that are set: an unset one is left out, since `null` is no value
        the loader takes back, so a dumped desired state loads again (the Kamal hooks read the
        one the executor writes)."""
        return {k: v for k, v in handler(self).items() if v is not None}

    def as_options(self) -> dict[str, int | float | bool | list[str]]:
        """The parameters that are set, as Ollama's JSON options."""
        return {k: v for k, v in self.model_dump().items() if v is not None}

    def runner(self) -> dict[str, int | float | bool | list[str]]:
        return {k: v for k, v in self.as_options().items() if k in RUNNER_PARAMETERS}


class DerivedModel(Frozen):
    name: ModelName = Field(description="Name of the model to create (like `ollama create`).")
    from_: ModelName = Field(alias="from", description="Base model, listed under `models`.")
    system: str | None = Field(default=None, description="System prompt.")
    template: str | None = Field(
        default=None,
        description="Prompt template override (Go text/template). Ollama checks it when it "
        "creates the model; one it cannot parse fails only this model's create.",
    )
    parameters: Parameters = Field(
        default_factory=Parameters,
        description="Modelfile parameters, typed as Ollama checks them at every load: "
        "whole numbers (num_ctx, top_k, seed, num_predict, ...), numbers (temperature, top_p, "
        "min_p, repeat_penalty, ...), true/false (use_mmap) and `stop`, a list of strings.",
    )
    keep_loaded: bool = Field(
        default=False,
        description="Pin the derived model in VRAM. It shares its base's weights: pinned "
        "together they are one loaded copy, so they must agree on num_ctx and the other "
        "runner parameters.",
    )


class RemovalPolicy(Frozen):
    undesired: Literal["cache", "remove"] = Field(
        default="cache",
        description="Models the reconciler pulled that are no longer desired: `cache` keeps "
        "them for a fast rollback while the disk budget allows, evicting the least recently "
        "used first; `remove` deletes them at once.",
    )
    adopt_unmanaged: bool = Field(
        default=False,
        description="Treat models the reconciler did not pull (pulled by hand) as its own, so "
        "they can be cached/removed. Off: they are never touched.",
    )


def _go_duration(value: str) -> str:
    if not _DURATION.fullmatch(value) or value.startswith("-"):
        raise ValueError("not a Go duration: write e.g. 30s, 5m or 1h")
    return value


GoDuration = Annotated[str, AfterValidator(_go_duration)]


class BenchPrompt(Frozen):
    name: Slug = Field(description="Short name, shown in the report.")
    text: str = Field(min_length=1, max_length=20_000, description="The prompt sent to /api/generate.")


DEFAULT_PROMPTS = (
    BenchPrompt(name="chat", text="Explain in three sentences why the sky is blue."),
    BenchPrompt(
        name="code",
        text="Write a Python function that returns the n-th Fibonacci number iteratively, with a docstring.",
    ),
    BenchPrompt(
        name="summary",
        text="Summarize in one sentence: A GitOps reconciler keeps a server the way a git repository "
        "describes it. Every push is validated, planned and applied; drift is corrected on the "
        "next pass, and a revert commit is how changes are rolled back.",
    ),
)


class Benchmarks(Frozen):
    """`reconciler bench` and `reconciler advise`: what to measure, when, and what to compare."""

    models: list[ModelName] = Field(
        default_factory=list,
        description="Models to benchmark (listed under models or derived). Empty: every model "
        "that can generate; `reconciler bench MODEL…` names others.",
    )
    prompts: list[BenchPrompt] = Field(
        default_factory=list,
        max_length=20,
        description="Prompts each run sends. Empty: the built-in set (a chat question, a coding "
        "task, a summary: reconciler/desired/schema.py DEFAULT_PROMPTS).",
    )
    runs: int = Field(
        default=3, ge=1, le=20, description="Runs per model; the report shows medians and spread."
    )
    num_predict: int = Field(default=128, ge=1, le=4096, description="Tokens generated per prompt.")
    long_prompt: bool = Field(
        default=True, description="Also time a prompt that fills ~3/4 of the model's num_ctx."
    )
    on_change: bool = Field(
        default=False,
        description="Benchmark a listed model after it is pulled or its settings change: a "
        "reconcile (serve, apply) plans it within `window`.",
    )
    window: Window | None = Field(
        default=None,
        description="When on_change benchmarks may run, HH:MM-HH:MM in the server's local time "
        "(may wrap midnight). Unset: any time.",
    )
    quiet: GoDuration = Field(
        default="5m",
        description="A model used within this long counts as in use: the benchmark waits for it.",
    )
    max_wait: GoDuration = Field(
        default="10m", description="How long `reconciler bench` waits for people to stop using Ollama."
    )
    candidates: dict[ModelName, list[ModelName]] = Field(
        default_factory=dict,
        description="Quantizations `reconciler advise` compares a model with, where its registry "
        "lists no tags (registry.ollama.ai does not): model → other tags.",
    )

    def prompt_set(self) -> tuple[BenchPrompt, ...]:
        return tuple(self.prompts) or DEFAULT_PROMPTS


class OllamaSpec(Frozen):
    """`ollama.yaml`: the Ollama container and the models it should hold."""

    container: OllamaContainer = Field(default_factory=OllamaContainer)
    registries: list[Registry] = Field(
        default_factory=list, description="Registries other than registry.ollama.ai."
    )
    models: list[ModelSpec] = Field(default_factory=list, description="Models to have.")
    derived: list[DerivedModel] = Field(
        default_factory=list, description="Models built from a base (system prompt, params)."
    )
    removal: RemovalPolicy = Field(default_factory=RemovalPolicy)
    benchmarks: Benchmarks = Field(
        default_factory=Benchmarks, description="Benchmarks and the quantization advisor."
    )
    updates: UpdatePolicy = Field(
        default_factory=UpdatePolicy,
        description="When present models are checked for a new upstream digest, and what is done then.",
    )

    def all_models(self) -> list[ModelSpec | DerivedModel]:
        """Pulled and derived models, in the order they are declared."""
        return [*self.models, *self.derived]


# ─────────────────────────── openwebui.yaml ────────────────────────────


class SecretRef(Frozen):
    """A secret by reference: its value never enters git."""

    env: str | None = Field(
        default=None,
        description="Environment variable of `serve`; the server's reconciler.toml must list it "
        "under [secrets] env.",
    )
    file: str | None = Field(
        default=None,
        description="Name of a file in the server's secrets directory ([secrets] dir of "
        "reconciler.toml, e.g. /etc/reconciler/secrets); no paths.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of `env` or `file`")
        if self.env is not None and not _ENV_NAME.fullmatch(self.env):
            raise ValueError("`env` is not an environment variable name (UPPER_CASE)")
        if self.file is not None and (not _SECRET_FILE.fullmatch(self.file) or ".." in self.file):
            raise ValueError(
                "`file` is the name of a file in the server's secrets directory (letters, digits, "
                "'.', '_', '-'; no '/'), e.g. {file: openai.key}"
            )
        return self

    def describe(self) -> str:
        return f"env:{self.env}" if self.env else f"file:{self.file}"


def _setting(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # A mapping of only `env` / `file` is a secret reference, never a JSON object setting.
    if isinstance(value, dict) and value and set(value) <= {"env", "file"}:
        try:
            return SecretRef.model_validate(value)
        except ValidationError as exc:
            raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
    if not isinstance(value, str | bool | int | float | list | dict):
        raise ValueError(
            "an OpenWebUI setting is a string, true/false, a number, a list, an object, or a "
            "secret reference {env: NAME} / {file: NAME}"
        )
    if isinstance(value, str) and any(ord(ch) < 32 for ch in value):
        raise ValueError("environment values cannot contain control characters or newlines")
    return handler(value)


def _env_refusal(name: str, setting: object) -> str | None:
    """Why OpenWebUI's `env` may not hold `name: setting` (None: it may)."""
    if not _ENV_NAME.fullmatch(name):
        return f"{shown(name)} is not an environment variable name (UPPER_CASE)"
    if name in MANAGED_WEBUI_ENV:
        return f"{name} is set by the reconciler from {MANAGED_WEBUI_ENV[name]}; remove it from env"
    if isinstance(setting, SecretRef):
        return None
    if is_secret_setting(name):
        return (
            f"{name} is one of OpenWebUI's secret settings: secrets never go in git; give it by "
            f"reference, {name}: {{env: NAME}} or {{file: NAME}}"
        )
    if name not in KNOWN_SETTINGS and looks_like_secret_name(name):
        return (
            f"{name} looks like a secret and is not one of OpenWebUI 0.12's settings: secrets never "
            f"go in git; give it by reference, {name}: {{env: NAME}} or {{file: NAME}}"
        )
    return None


WebuiSetting = Annotated[
    SecretRef | str | bool | int | float | list[JsonValue] | dict[str, JsonValue],
    Field(union_mode="left_to_right"),
    WrapValidator(_setting),
]


class CloudEndpoint(Frozen):
    name: Slug = Field(description="Short name, used in presets as `<name>/<model>`.")
    base_url: str = Field(description="OpenAI-compatible base URL, e.g. https://api.openai.com/v1")
    api_key: SecretRef = Field(description="The key, by reference: {env: NAME} or {file: PATH}.")
    models: list[str] = Field(
        default_factory=list,
        description="The only models of this endpoint the picker offers (OpenWebUI's per-connection "
        "model_ids, rendered into OPENAI_API_CONFIGS). Empty: the provider's whole catalogue.",
    )

    @field_validator("base_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not re.fullmatch(r"^https?://[^\s/@]+(/[^\s]*)?$", value):
            raise ValueError("not an http(s) URL without credentials (put the key in api_key)")
        return value


class Voice(Frozen):
    enabled: bool = Field(default=True, description="Voice chat (speech in and out).")
    stt_engine: Literal["", "openai", "web", "deepgram", "azure"] = Field(
        default="",
        description="Speech-to-text: '' = local Whisper on the server, web = the browser.",
    )
    stt_model: str = Field(default="base", description="Whisper model for local STT.")
    tts_engine: Literal["", "openai", "elevenlabs", "azure", "transformers"] = Field(
        default="", description="Text-to-speech: '' = the browser's voices."
    )
    tts_voice: str = Field(default="alloy", description="Voice name for the TTS engine.")


class Rag(Frozen):
    embedding_engine: Literal["", "ollama", "openai"] = Field(
        default="ollama", description="'' = sentence-transformers inside OpenWebUI."
    )
    embedding_model: str = Field(default="nomic-embed-text", description="Embedding model.")
    chunk_size: int = Field(default=1000, ge=100, le=100_000, description="Characters per chunk.")
    chunk_overlap: int = Field(default=100, ge=0, le=10_000, description="Overlap of chunks.")
    top_k: int = Field(default=5, ge=1, le=100, description="Chunks retrieved per query.")

    @model_validator(mode="after")
    def _overlap(self) -> Rag:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self


_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})$")


class Access(Frozen):
    """Who may use a preset, a base model or a knowledge base (OpenWebUI's read grants).
    Admins always may; an empty `access: {}` leaves it to admins only."""

    everyone: bool = Field(default=False, description="Every signed-in user may use it.")
    groups: list[Slug] = Field(default_factory=list, description="Groups (of `groups`) that may use it.")
    users: list[str] = Field(default_factory=list, description="Users (e-mails of `users`) who may use it.")


class User(Frozen):
    """A person with an OpenWebUI account. With `password` the reconciler creates the account
    (the password is only the initial one: never reset afterwards); without it the person is
    invited: they sign up themselves (`signup.enabled`), and their role and groups follow git."""

    name: str = Field(min_length=1, max_length=100, description="Display name.")
    email: str = Field(description="Sign-in e-mail; the key the reconciler matches accounts by.")
    role: Literal["admin", "user", "pending"] = Field(default="user", description="OpenWebUI role.")
    password: SecretRef | None = Field(
        default=None,
        description="Initial password by reference ({env: NAME} / {file: NAME}); unset = invited. "
        "The first admin with a password is created when OpenWebUI first starts and is the "
        "account the reconciler signs in as.",
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _EMAIL.fullmatch(value):
            raise ValueError("not an e-mail address (name@host)")
        return value.lower()


class Group(Frozen):
    name: Slug = Field(description="Group name in OpenWebUI (the key it is matched by).")
    description: str = Field(default="", description="Shown in OpenWebUI.")
    members: list[str] = Field(default_factory=list, description="E-mails of `users` in the group.")

    @field_validator("members")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [m.lower() for m in value]


class Signup(Frozen):
    enabled: bool = Field(
        default=False, description="ENABLE_SIGNUP: people may create their own account (invited users)."
    )
    default_role: Literal["pending", "user"] = Field(
        default="pending",
        description="DEFAULT_USER_ROLE of a new account: pending (waits for an admin, or for git to "
        "name its role) or user.",
    )


class Knowledge(Frozen):
    name: Slug = Field(description="Knowledge base name; its documents are in knowledge/<name>/.")
    description: str = Field(default="", description="Shown in OpenWebUI.")
    access: Access | None = Field(
        default=None, description="Who may use it; unset = the reconciler leaves its grants alone."
    )


class Preset(Frozen):
    id: Slug = Field(description="Stable id of the preset model in OpenWebUI.")
    name: str = Field(description="Display name.")
    base: str = Field(
        description="Base model: a local model/derived name, or `<cloud>/<model>` of a cloud endpoint."
    )
    system: str = Field(default="", description="System prompt.")
    knowledge: list[Slug] = Field(
        default_factory=list, description="Knowledge bases attached (shared across presets)."
    )
    params: dict[str, Scalar] = Field(default_factory=dict, description="temperature, ...")
    access: Access | None = Field(
        default=None,
        description="Who may use it (they need access to its base model too: `model_access`); "
        "unset = the reconciler leaves its grants alone.",
    )


_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*$"
)


class Tls(Frozen):
    """LAN TLS: a local certificate authority and a server certificate made by the reconciler."""

    enabled: bool = Field(
        default=False,
        description="Serve OpenWebUI over HTTPS through kamal-proxy with a certificate from a "
        "local CA (browsers give a page the microphone only over HTTPS or on localhost).",
    )
    names: list[str] = Field(
        default_factory=list,
        description="DNS names the certificate is for (e.g. gpu-box.lan); the server's "
        "lan_addresses and 127.0.0.1 are always included as IP addresses.",
    )

    @field_validator("names")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for index, name in enumerate(value):
            if not _DNS_NAME.fullmatch(name):
                raise ValueError(f"item {index} is not a DNS name (letters, digits, '-', dots)")
        if len(set(value)) != len(value):
            raise ValueError("names must be unique")
        return value


class Exposure(Frozen):
    mode: Literal["proxy", "published"] = Field(
        default="published",
        description="`proxy`: behind kamal-proxy (ports 80/443); `published`: the container "
        "port published on `addresses`:`port` with no proxy.",
    )
    port: int = Field(default=3000, ge=1, le=65535, description="Host port when published.")
    https_port: int = Field(
        default=443, ge=1, le=65535, description="Host port kamal-proxy serves HTTPS on (mode `proxy`)."
    )
    http_port: int = Field(
        default=80,
        ge=1,
        le=65535,
        description="Host port kamal-proxy serves plain HTTP on (mode `proxy`; with TLS it redirects "
        "to HTTPS on port 443).",
    )
    addresses: list[IPAddress] | None = Field(
        default=None, description="Bind addresses; unset: 127.0.0.1 + lan_addresses."
    )
    host: str | None = Field(default=None, description="Host name for the proxy.")
    tls: Tls = Field(default_factory=Tls, description="LAN HTTPS with a local CA (mode `proxy` only).")

    @model_validator(mode="after")
    def _tls_needs_proxy(self) -> Exposure:
        if self.tls.enabled and self.mode != "proxy":
            raise ValueError("tls.enabled needs mode: proxy (kamal-proxy terminates TLS)")
        if self.tls.enabled and self.host and self.host not in self.tls.names:
            raise ValueError("add the proxy host (exposure.host) to tls.names")
        return self


_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})$|^\[?[0-9A-Fa-f:.]+\]?$")
_REGISTRY_SERVER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}(?::[0-9]{1,5})?$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/@+-]{1,4095}$")
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")


def _registry_server(value: str) -> str:
    port = value.rpartition(":")[2]
    if not _REGISTRY_SERVER.fullmatch(value) or ".." in value or not valid_port(port, value):
        raise ValueError("not a registry host[:port] (port 1-65535)")
    return value


def _host(value: str) -> str:
    if not _HOST.fullmatch(value) or ".." in value:
        raise ValueError("not a host name or IP address (no spaces, shell characters or ports)")
    return value


class KamalRegistry(Frozen):
    server: str = Field(
        default="127.0.0.1:5000",
        description="Registry the wrapped OpenWebUI image is pushed to and pulled from, host[:port]. "
        "Write 127.0.0.1:PORT, not localhost:PORT (Kamal treats `localhost` as its own "
        "SSH-forwarded local registry, which cannot work when the server deploys to itself).",
    )
    username: str = Field(default="reconciler", description="Registry user name.")
    password: SecretRef | None = Field(
        default=None,
        description="Registry password by reference ({env: NAME} or {file: PATH}). Unset: a "
        "placeholder is used (a registry without authentication, e.g. on loopback).",
    )

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        return _registry_server(value)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not re.fullmatch(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$", value):
            raise ValueError("not a registry user name (letters, digits, '.', '_', '@', '-')")
        return value


class KamalSpec(Frozen):
    """How Kamal deploys OpenWebUI: where, as whom, through which registry."""

    service: Slug = Field(
        default="openwebui",
        description="Kamal service name: container names (`<service>-web-<version>`) and the "
        "image's `service` label.",
    )
    servers: list[Annotated[str, AfterValidator(_host)]] = Field(
        default_factory=lambda: ["127.0.0.1"],
        description="Hosts OpenWebUI runs on (role `web`). Default: the server itself over SSH on loopback.",
        min_length=1,
    )
    ssh_user: str = Field(default="root", description="SSH user Kamal logs in as (needs Docker access).")
    ssh_port: int = Field(default=22, ge=1, le=65535, description="SSH port of the servers.")
    ssh_keys: list[str] = Field(
        default_factory=list,
        description="Private key files for SSH, absolute paths on the machine that runs kamal. "
        "Empty: the SSH agent and ~/.ssh defaults.",
    )
    registry: KamalRegistry = Field(default_factory=KamalRegistry)
    image: str = Field(
        default="openwebui-local",
        description="Repository name of the wrapped OpenWebUI image in that registry.",
    )
    webui_secret_key: SecretRef | None = Field(
        default=None,
        description="OpenWebUI's WEBUI_SECRET_KEY (signs sessions) by reference. Unset: a random "
        "key is generated once and kept in the Kamal project directory on the deploying machine.",
    )
    data_volume: DockerName = Field(
        default="open-webui",
        description="Named volume mounted at /app/backend/data: OpenWebUI's SQLite database, "
        "uploads and vector store survive every deploy.",
    )

    @field_validator("ssh_user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not re.fullmatch(r"^[a-z_][a-z0-9_-]{0,31}$", value):
            raise ValueError("not a Unix user name")
        return value

    @field_validator("ssh_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for index, path in enumerate(value):
            if not _SAFE_PATH.fullmatch(path) or "/../" in path or path.endswith("/.."):
                raise ValueError(
                    f"item {index} must be an absolute path of letters, digits and . _ / @ + - only"
                )
        return value

    @field_validator("image")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not _REPOSITORY.fullmatch(value) or len(value) > 255:
            raise ValueError("not a repository name (lower-case, e.g. openwebui-local)")
        return value


class OpenWebUISpec(Frozen):
    """`openwebui.yaml`: OpenWebUI, deployed by Kamal and configured from git."""

    image: Image = Field(
        default="ghcr.io/open-webui/open-webui:v0.12.4", description="OpenWebUI image to wrap."
    )
    exposure: Exposure = Field(default_factory=Exposure)
    auth: bool = Field(default=False, description="Require login (WEBUI_AUTH). false = LAN MVP, no login.")
    persistent_config: bool = Field(
        default=False,
        description="ENABLE_PERSISTENT_CONFIG: false = the rendered settings win on every start (git is "
        "the truth); true = OpenWebUI keeps what its database holds and they only seed a fresh one.",
    )
    admin_token: SecretRef | None = Field(
        default=None,
        description="An admin's API key by reference, for converging knowledge and presets through "
        "OpenWebUI's API when `auth` is true. Unused without login (the reconciler signs in as the "
        "built-in admin).",
    )
    users: list[User] = Field(default_factory=list, description="People with an account (needs `auth`).")
    groups: list[Group] = Field(default_factory=list, description="Groups of `users`.")
    signup: Signup = Field(default_factory=Signup, description="Whether people may sign up themselves.")
    model_access: dict[str, Access] = Field(
        default_factory=dict,
        description="Who may use each base model (its OpenWebUI id, e.g. phi3:mini); a model not "
        "named here is left alone (OpenWebUI shows a base model with no grants to admins only).",
    )
    prune: bool = Field(
        default=False,
        description="Also remove the users (never an admin) and groups a person made by hand that "
        "git does not name. Off: what a person made is left alone.",
    )
    default_models: list[str] = Field(default_factory=list, description="Picker defaults.")
    task_model: str | None = Field(default=None, description="Model for titles/tags tasks.")
    voice: Voice = Field(default_factory=Voice)
    rag: Rag = Field(default_factory=Rag)
    knowledge: list[Knowledge] = Field(default_factory=list)
    presets: list[Preset] = Field(default_factory=list)
    cloud: list[CloudEndpoint] = Field(default_factory=list)
    env: dict[str, WebuiSetting] = Field(
        default_factory=dict,
        description="Any other OpenWebUI environment settings, typed: a string, true/false, a "
        "number, or a list/object for OpenWebUI's JSON settings (rendered as OpenWebUI reads "
        "each). OpenWebUI's secret settings (API keys, passwords, client secrets) only by "
        "reference: {env: NAME} or {file: NAME}, which the server's reconciler.toml allows for "
        'that setting ([secrets.send_to] NAME = ["openwebui-env:SETTING"]).',
    )
    kamal: KamalSpec = Field(
        default_factory=KamalSpec, description="How Kamal deploys OpenWebUI (servers, SSH, registry)."
    )

    @model_validator(mode="after")
    def _token_with_auth(self) -> OpenWebUISpec:
        if self.auth and self.manages_content() and self.admin_token is None and self.admin() is None:
            raise ValueError(
                "with auth: true the reconciler signs in as an admin to manage people, knowledge "
                "and presets: add a user with role: admin and a password: {env: NAME} / {file: NAME}, "
                "or set admin_token: {env: NAME} to an admin's API key"
            )
        return self

    @model_validator(mode="after")
    def _people(self) -> OpenWebUISpec:
        problems = [
            InitErrorDetails(type=PydanticCustomError("value_error", why), loc=loc, input=None)
            for loc, why in people_problems(self)
        ]
        if problems:  # each at its own field (file:line of that line)
            raise ValidationError.from_exception_data("openwebui", problems)
        return self

    def manages_content(self) -> bool:
        return bool(self.knowledge or self.presets or self.users or self.groups or self.model_access)

    def admin(self) -> User | None:
        """The account the reconciler signs in as: the first admin with a password."""
        return next((u for u in self.users if u.role == "admin" and u.password is not None), None)

    @field_validator("env", mode="wrap")
    @classmethod
    def _env_names(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> dict[str, object]:
        settings: dict[str, object] = handler(value)
        problems = [
            InitErrorDetails(type=PydanticCustomError("value_error", why), loc=(name,), input=setting)
            for name, setting in settings.items()
            if (why := _env_refusal(name, setting))
        ]
        if problems:  # one error per setting, at its own key (file:line of that line)
            raise ValidationError.from_exception_data("env", problems)
        return settings

    def env_secrets(self) -> dict[str, SecretRef]:
        """The `env` settings given by reference, by name."""
        return {k: v for k, v in self.env.items() if isinstance(v, SecretRef)}


Loc = tuple[str | int, ...]


def people_problems(webui: OpenWebUISpec) -> list[tuple[Loc, str]]:
    """What is wrong with `users`, `groups` and the `access` lists, each at its own field."""
    emails = [u.email for u in webui.users]
    names = [g.name for g in webui.groups]
    problems: list[tuple[Loc, str]] = []
    if webui.users and not webui.auth:
        problems.append(
            (("users",), "users need auth: true (without login everyone is the one built-in admin)")
        )
    for index, user in enumerate(webui.users):
        if emails.index(user.email) != index:
            problems.append(
                (("users", index, "email"), f"{user.email} is already the e-mail of another user")
            )
        if user.password is None and not webui.signup.enabled:
            problems.append(
                (("users", index, "password"), "no password means invited: set signup: {enabled: true}")
            )
    for index, group in enumerate(webui.groups):
        if names.index(group.name) != index:
            problems.append((("groups", index, "name"), f"there is already a group {group.name}"))
        for m, member in enumerate(group.members):
            if member not in emails:
                problems.append(
                    (("groups", index, "members", m), f"{member} is not the e-mail of one of users")
                )
    return problems + _access_problems(webui, emails, names)


def _access_problems(webui: OpenWebUISpec, emails: list[str], names: list[str]) -> list[tuple[Loc, str]]:
    grants: list[tuple[Loc, Access | None]] = [
        (("presets", i, "access"), p.access) for i, p in enumerate(webui.presets)
    ]
    grants += [(("knowledge", i, "access"), k.access) for i, k in enumerate(webui.knowledge)]
    grants += [(("model_access", m), a) for m, a in webui.model_access.items()]
    problems: list[tuple[Loc, str]] = []
    for loc, access in grants:
        for i, g in enumerate(access.groups if access else ()):
            if g not in names:
                problems.append(((*loc, "groups", i), f"{g} is not one of groups"))
        for i, u in enumerate(access.users if access else ()):
            if u.lower() not in emails:
                problems.append(((*loc, "users", i), f"{u} is not the e-mail of one of users"))
    return problems


class DesiredState(Frozen):
    """Everything one commit of the desired-state repo asks for."""

    server: ServerSpec
    ollama: OllamaSpec
    openwebui: OpenWebUISpec | None = None
    knowledge_files: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="knowledge/<name>/<path> → sha256 of the file, read from the commit.",
    )
    revision: str | None = Field(default=None, description="Commit the state was read from.")


RegistryLogin.model_rebuild()  # its SecretRef is defined further down, with the other secrets
