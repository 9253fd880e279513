"""The only code that changes Ollama's models: pull, remove, create, load, unload.

Each call is idempotent and safe to retry: pulling a present model re-verifies it
(Ollama skips blobs it has and resumes partial ones), removing an absent model is done,
loading a loaded model only refreshes its keep-alive.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import httpx
import ollama

from reconciler.apply.context import ExecContext
from reconciler.apply.world import FOREVER, World
from reconciler.desired.refs import canonical
from reconciler.errors import PermanentError, ReconcilerError, TemporaryError
from reconciler.memory import Memory
from reconciler.observed import Blob, InventoryEntry, LoadedObs, ModelObs
from reconciler.plan.actions import CreateDerived, LoadModel, PullModel, RemoveModel, UnloadModel
from reconciler.report.events import EventBus

PROGRESS_EVERY = 0.5  # seconds between progress events of one pull
LOAD_PROGRESS_EVERY = 2.0  # seconds between progress events of one load


class ModelActionFailed(ReconcilerError):
    """Ollama failed an action; the message is Ollama's own."""


class ModelActionInterrupted(ModelActionFailed, TemporaryError):
    """Ollama did not answer, answered 5xx, or the stream ended early: the next run retries."""


class ModelActionRefused(ModelActionFailed, PermanentError):
    """Ollama refused the request as given (4xx: a bad template or parameter, a model that
    cannot do what was asked): the same request is refused again."""


# Ollama's answers that say the request itself is wrong (server/routes.go: 400 for a bad
# request, 401/403 from the registry behind a pull). 404 (the model is gone) is not among them:
# what was observed changed, and the next run plans from what is there.
_REFUSED = frozenset({400, 401, 403, 422})


@dataclass
class PullProgress:
    """Sum of `completed`/`total` over the distinct layer digests of one pull."""

    started: float = field(default_factory=time.monotonic)
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)

    def update(self, digest: str | None, completed: int | None, total: int | None) -> None:
        if digest and total:
            self.layers[digest] = (completed or 0, total)

    @property
    def completed(self) -> int:
        return sum(c for c, _ in self.layers.values())

    @property
    def total(self) -> int:
        return sum(t for _, t in self.layers.values())

    def figures(self) -> dict[str, float | int]:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.completed / elapsed
        left = self.total - self.completed
        return {
            "completed": self.completed,
            "total": self.total,
            "percent": round(100 * self.completed / self.total, 1) if self.total else 0.0,
            "rate_bps": int(rate),
            "eta_s": round(left / rate, 1) if rate > 0 else -1,
        }


def _fail(action: str, model: str, exc: Exception) -> ModelActionFailed:
    detail = exc.error if isinstance(exc, ollama.ResponseError) else str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        detail = f"Ollama did not answer in time ({type(exc).__name__})"
    message = f"{action} {model} failed: {detail}"
    if isinstance(exc, ollama.ResponseError) and exc.status_code in _REFUSED:
        return ModelActionRefused(message)
    return ModelActionInterrupted(message)


def pull(client: ollama.Client, action: PullModel, events: EventBus) -> None:
    progress = PullProgress()
    last_emit = 0.0
    status = ""
    try:
        for update in client.pull(action.model, insecure=action.insecure, stream=True):
            progress.update(update.digest, update.completed, update.total)
            now = time.monotonic()
            if update.status != status or now - last_emit >= PROGRESS_EVERY:
                status, last_emit = update.status or "", now
                events.emit("pull.progress", model=action.model, status=status, **progress.figures())
    except (ollama.ResponseError, ConnectionError, OSError, httpx.HTTPError) as exc:
        raise _fail("pull", action.model, exc) from None
    if status != "success":
        raise ModelActionInterrupted(f"pull {action.model} ended without success (last status {status!r})")
    events.emit("pull.done", model=action.model, **progress.figures())


def remove(client: ollama.Client, action: RemoveModel) -> None:
    try:
        client.delete(action.model)
    except ollama.ResponseError as exc:
        if exc.status_code != 404:  # already gone is done
            raise _fail("remove", action.model, exc) from None
    except (ConnectionError, httpx.HTTPError) as exc:
        raise _fail("remove", action.model, exc) from None


def create(client: ollama.Client, action: CreateDerived) -> str:
    """Create the derived model; return its manifest digest as Ollama lists it."""
    try:
        client.create(
            model=action.model,
            from_=action.from_model,
            system=action.system,
            template=action.template,
            parameters=action.parameters or None,
            stream=False,
        )
        listed = {m.model: m.digest for m in client.list().models}
    except (ollama.ResponseError, ConnectionError, httpx.HTTPError) as exc:
        raise _fail("create", action.model, exc) from None
    for name, digest in listed.items():
        if name == action.model or name == f"{action.model}:latest":
            return str(digest)
    raise ModelActionInterrupted(f"create {action.model}: Ollama does not list it after creating it")


def load(client: ollama.Client, action: LoadModel, events: EventBus, timeout_s: float | None = None) -> None:
    """Load a pinned model with keep_alive -1 and the planned num_ctx: through `/api/embed`
    for an embedding model (`/api/generate` answers it 400 "does not support generate"),
    `/api/generate` otherwise (routes.go: both load when given no input).

    Ollama answers only once the model is in memory and aborts the load when the client hangs
    up (server/sched.go, llm/server.go WaitUntilRunning), so `client` must wait at least
    Ollama's own OLLAMA_LOAD_TIMEOUT; meanwhile `load.progress` events say how long it has
    taken. The request runs in a worker thread so the events come from this one."""
    options = {"num_ctx": action.num_ctx}

    def request() -> None:
        if action.embedding:
            client.embed(model=action.model, input=[], keep_alive=-1, options=options)
        else:
            client.generate(model=action.model, keep_alive=-1, options=options)

    started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load")
    try:
        future = pool.submit(request)
        while True:
            try:
                future.result(timeout=LOAD_PROGRESS_EVERY)
                break
            except FutureTimeout:
                events.emit(
                    "load.progress",
                    model=action.model,
                    elapsed_s=round(time.monotonic() - started, 1),
                    timeout_s=timeout_s if timeout_s is not None else -1,
                )
    except (ollama.ResponseError, ConnectionError, httpx.HTTPError) as exc:
        if isinstance(exc, httpx.TimeoutException):
            waited = f"{timeout_s:g} s" if timeout_s is not None else "its timeout"
            raise ModelActionInterrupted(
                f"load {action.model} failed: Ollama had not finished loading it after {waited} "
                "(twice OLLAMA_LOAD_TIMEOUT plus a minute); raise OLLAMA_LOAD_TIMEOUT in ollama.yaml "
                "for models this slow to load"
            ) from None
        raise _fail("load", action.model, exc) from None
    finally:
        pool.shutdown(wait=True)
    events.emit("load.done", model=action.model, elapsed_s=round(time.monotonic() - started, 1))


def unload(client: ollama.Client, action: UnloadModel) -> None:
    """`/api/generate` with no prompt and keep_alive 0, what `ollama stop` sends: Ollama expires
    the runner before any capability check, so it unloads embedding models too (routes.go
    GenerateHandler), and never loads a model only to unload it (as `/api/embed` would)."""
    try:
        client.generate(model=action.model, keep_alive=0)
    except ollama.ResponseError as exc:
        if exc.status_code != 404:
            raise _fail("unload", action.model, exc) from None
    except (ConnectionError, httpx.HTTPError) as exc:
        raise _fail("unload", action.model, exc) from None


# ───────────────────────────── the executors and their effects ─────────────────────────────


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


def run_pull(action: PullModel, ctx: ExecContext) -> None:
    pull(ctx.clients().puller, action, ctx.events)
    entry = InventoryEntry(name=action.canonical, pulled_at=ctx.now(), last_used=ctx.now())
    ctx.remember(lambda m: _inventory_add(m, entry))


def pulled(action: PullModel, world: World) -> None:
    manifest = world.remote[action.canonical]
    world.models[action.canonical] = ModelObs(
        name=action.canonical,
        digest=f"pulled-{action.canonical}",
        blobs=manifest.blobs,
        architecture=manifest.architecture,
    )
    world.inventory[action.canonical] = InventoryEntry(name=action.canonical)


def run_remove(action: RemoveModel, ctx: ExecContext) -> None:
    remove(ctx.clients().api, action)
    ctx.remember(lambda m: _forget(m, action.model))


def removed(action: RemoveModel, world: World) -> None:
    world.models.pop(action.model, None)
    world.inventory.pop(action.model, None)
    world.loaded.pop(action.model, None)


def run_create(action: CreateDerived, ctx: ExecContext) -> None:
    digest = create(ctx.clients().api, action)
    entry = InventoryEntry(
        name=action.canonical,
        pulled_at=ctx.now(),
        last_used=ctx.now(),
        spec_hash=action.spec_hash,
        digest=digest,
    )
    ctx.remember(lambda m: _inventory_add(m, entry))


def created(action: CreateDerived, world: World) -> None:
    digest = f"created-{action.spec_hash}"
    base = world.models.get(canonical(action.from_model))
    blobs = (base.blobs if base else ()) + (
        Blob(digest=f"derived:{action.spec_hash}", size=action.layer_bytes),
    )
    world.models[action.canonical] = ModelObs(name=action.canonical, digest=digest, blobs=blobs)
    world.inventory[action.canonical] = InventoryEntry(
        name=action.canonical, spec_hash=action.spec_hash, digest=digest
    )


def run_load(action: LoadModel, ctx: ExecContext) -> None:
    clients = ctx.clients()
    load(clients.loader, action, ctx.events, clients.load_timeout)
    names = {action.canonical, *(canonical(n) for n in action.shared_with)}
    container = ctx.container_id
    ctx.remember(lambda m: m.model_copy(update={"warmed": {**m.warmed, **dict.fromkeys(names, container)}}))


def loaded(action: LoadModel, world: World) -> None:
    # Ollama reuses (or reloads) the runner of the same weights, still listed once.
    keys = world.weights_keys()
    key = keys.get(action.canonical, f"name:{action.canonical}")
    shared = next((n for n in world.loaded if n == action.canonical or keys.get(n) == key), None)
    size = action.vram_estimate
    world.loaded[shared or action.canonical] = LoadedObs(
        name=shared or action.canonical,
        size=size,
        size_vram=size,
        expires_at=FOREVER,
        context_length=action.num_ctx,
        pinned=True,
    )
    world.warmed |= {action.canonical, *(canonical(n) for n in action.shared_with)}


def run_unload(action: UnloadModel, ctx: ExecContext) -> None:
    unload(ctx.clients().api, action)
    ctx.remember(
        lambda m: m.model_copy(update={"warmed": {k: v for k, v in m.warmed.items() if k != action.model}})
    )


def unloaded(action: UnloadModel, world: World) -> None:
    world.loaded.pop(action.model, None)
    world.warmed.discard(action.model)
