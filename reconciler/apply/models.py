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

from reconciler.errors import ReconcilerError
from reconciler.plan.actions import CreateDerived, LoadModel, PullModel, RemoveModel, UnloadModel
from reconciler.report.events import EventBus

PROGRESS_EVERY = 0.5  # seconds between progress events of one pull
LOAD_PROGRESS_EVERY = 2.0  # seconds between progress events of one load


class ModelActionFailed(ReconcilerError):
    """Ollama refused or failed an action; the message is Ollama's own."""


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
    return ModelActionFailed(f"{action} {model} failed: {detail}")


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
        raise ModelActionFailed(f"pull {action.model} ended without success (last status {status!r})")
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
    raise ModelActionFailed(f"create {action.model}: Ollama does not list it after creating it")


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
            raise ModelActionFailed(
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
