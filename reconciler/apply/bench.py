"""Benchmark models on the server through Ollama's API, one at a time.

For each model, `runs` times: unload it and time a cold load (Ollama's own `load_duration`
of the first request after the unload), then stream every prompt of the set — the time to
the first token as the client sees it, and prompt-evaluation and generation tokens/s from
Ollama's timing fields (api/types.go Metrics: `prompt_eval_count / prompt_eval_duration`,
`eval_count / eval_duration`) — and, when asked, a long prompt that fills about 70 % of the
model's num_ctx. Every prompt starts with a nonce so llama-server's prompt cache (which
counts cached tokens in prompt_eval_count but not in its duration) never flatters the rate.
`/api/ps` gives the model's size and its split between VRAM and CPU; NVML, when a GPU is
visible, the GPU memory in use and the utilisation while it generates.

It never disturbs a person: before it starts it waits (up to `max_wait`) until no model it
did not load is in use or used within `quiet` (analytics/activity.py says how that is read
from `/api/ps`), and it looks again between and during its own requests: a chat that starts
stops the benchmark (BenchInterrupted) with what it measured so far. Models idle for longer
than `quiet` are unloaded for the benchmark, as Ollama itself would to make room; the
reconciler's pinned models among them leave its record of what it warmed, so their unload
is not taken for an eviction, and are loaded again afterwards by the planner's own load
actions: those of a fresh plan (`reconciler bench`) or those the planner put in the
RunBenchmark action (`benchmarks.on_change`).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import httpx
import ollama

from reconciler.analytics.activity import InUse, Ledger, Look, Row, judge
from reconciler.analytics.history import History, history_path
from reconciler.analytics.results import (
    EMBED,
    LONG,
    BenchRun,
    CaseResult,
    Machine,
    ModelResult,
    Sample,
)
from reconciler.analytics.stats import summarize
from reconciler.apply import models
from reconciler.apply.context import ExecContext
from reconciler.apply.world import World
from reconciler.desired.schema import BenchPrompt, DesiredState
from reconciler.errors import TemporaryError
from reconciler.http import http_client
from reconciler.observe.gpu_sample import GpuSample, GpuSampler, summarize_samples
from reconciler.observe.ollama import parse_loaded
from reconciler.observed import LoadedObs
from reconciler.plan.actions import BenchTarget as Target
from reconciler.plan.actions import RunBenchmark
from reconciler.plan.ollama_version import go_duration_s
from reconciler.report.events import EventBus
from reconciler.state.store import StateStore

KEEP_ALIVE_S = 120  # the keep-alive of the benchmark's own requests: gone soon if it dies
LONG_FILL = 0.7  # the long prompt fills this much of num_ctx (at ~4 characters a token)
LONG_PREDICT = 16  # tokens generated after the long prompt
SETTLE_S = 2.0  # two looks this far apart must agree that nobody is using Ollama
GPU_SAMPLE_EVERY = 0.25
UNLOAD_WAIT_S = 30.0
_PARAGRAPH = (
    "The reconciler keeps the server the way the repository describes it. Each push is checked, "
    "planned and applied; models are pulled, pinned in VRAM or cached for a rollback, and the "
    "budgets for disk and GPU memory hold at every step. "
)


class BenchBusy(TemporaryError):
    """Somebody is using Ollama; the benchmark did not start."""

    def __init__(self, signs: list[InUse], waited_s: float) -> None:
        self.signs = signs
        listing = "; ".join(s.message for s in signs)
        super().__init__(
            f"not benchmarking: Ollama is in use ({listing}); waited {waited_s:.0f} s. Try again when "
            "nobody chats, raise --max-wait (or benchmarks.max_wait), or let a reconcile run it in "
            "benchmarks.window"
        )


class BenchInterrupted(TemporaryError):
    """A chat started during the benchmark; what was measured before it is kept."""

    def __init__(self, sign: InUse, model: str) -> None:
        self.sign = sign
        self.model = model
        super().__init__(
            f"benchmark stopped while measuring {model}: {sign.message}. The models measured before "
            "it are recorded; run it again when nobody chats"
        )


class BenchFailed(TemporaryError):
    """Ollama failed a benchmark request (its own message)."""


@dataclass(frozen=True)
class BenchOptions:
    runs: int = 3
    prompts: tuple[BenchPrompt, ...] = ()
    num_predict: int = 128
    long_prompt: bool = True
    quiet_s: float = 300.0
    max_wait_s: float = 600.0
    keep_alive_s: float = 300.0  # OLLAMA_KEEP_ALIVE: what another client's runner is assumed to keep
    poll_s: float = 1.0

    @classmethod
    def of(
        cls, desired: DesiredState, runs: int | None = None, max_wait_s: float | None = None
    ) -> BenchOptions:
        bench = desired.ollama.benchmarks
        raw = desired.ollama.container.env.OLLAMA_KEEP_ALIVE
        keep = go_duration_s(str(raw)) if raw is not None else None
        return cls(
            runs=runs or bench.runs,
            prompts=bench.prompt_set(),
            num_predict=bench.num_predict,
            long_prompt=bench.long_prompt,
            quiet_s=go_duration_s(bench.quiet) or 0.0,
            max_wait_s=go_duration_s(bench.max_wait) if max_wait_s is None else max_wait_s,  # type: ignore[arg-type]
            keep_alive_s=keep if keep is not None and keep > 0 else 300.0,
        )


def long_text(num_ctx: int) -> str:
    """A prompt of about LONG_FILL × num_ctx tokens (at ~4 characters a token)."""
    chars = int(num_ctx * LONG_FILL * 4)
    repeats = chars // len(_PARAGRAPH) + 1
    return (_PARAGRAPH * repeats)[:chars] + "\nSummarize the text above in one sentence."


def server_machine(http: httpx.Client, url: str, sampler: GpuSampler) -> Machine:
    """The Ollama version and whether the server says its figures are simulated (a `simulated`
    field in /api/version, which Ollama never sends: routes.go answers {"version"} only), and
    the GPU as NVML names it."""
    try:
        body = http.get(f"{url}/api/version").json()
    except (httpx.HTTPError, ValueError) as exc:
        raise BenchFailed(f"Ollama at {url} does not answer: {type(exc).__name__}") from None
    body = body if isinstance(body, dict) else {}
    simulated = body.get("simulated")
    gpu = sampler.identity
    return Machine(
        ollama_version=str(body["version"]) if body.get("version") else None,
        simulated=str(simulated)[:300] if simulated else None,
        gpu_name=gpu.name if gpu else None,
        gpu_driver=gpu.driver if gpu else None,
        gpu_total=gpu.total if gpu else None,
        gpu_note=sampler.reason,
    )


@dataclass
class _Watch:
    """The benchmark's view of Ollama's activity: the last look and its own runners."""

    previous: Look | None = None
    expected: dict[str, datetime | None] = field(default_factory=dict)


class Bench:
    def __init__(
        self,
        client: ollama.Client,
        options: BenchOptions,
        events: EventBus,
        sampler: GpuSampler,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        warmed_at: Mapping[str, datetime] | None = None,
    ) -> None:
        self.client, self.options, self.events, self.sampler = client, options, events, sampler
        self.warmed_at = dict(warmed_at or {})  # when the reconciler's own warm loads returned
        self.clock, self.wall, self.sleep = clock, wall, sleep
        self.watch = _Watch()
        self.tag = uuid.uuid4().hex[:6]
        self._gpu: list[GpuSample] = []
        self._measuring = ""

    # -- looking at Ollama --------------------------------------------------------------------
    def look(self) -> tuple[Look, tuple[LoadedObs, ...]]:
        started = self.clock()
        try:
            running = self.client.ps().models
        except (ollama.ResponseError, httpx.HTTPError, ConnectionError) as exc:
            raise BenchFailed(f"Ollama's /api/ps failed: {exc}") from None
        took = self.clock() - started
        at = self.wall()
        loaded = parse_loaded(running, at)
        gpu = self.sampler.sample()
        rows = tuple(Row(m.name, m.expires_at) for m in loaded)
        return Look(at=at, rows=rows, took_s=took, gpu_util=gpu.util if gpu else None), loaded

    def _signs(self, current: Look, computing: bool) -> list[InUse]:
        ledger = Ledger(expected=dict(self.watch.expected), computing=computing, warmed_at=self.warmed_at)
        signs = judge(
            self.watch.previous,
            current,
            ledger,
            quiet_s=self.options.quiet_s,
            keep_alive_s=self.options.keep_alive_s,
        )
        if computing:  # our own request may be loading: a slow /api/ps is ours
            signs = [s for s in signs if s.why != "loading"]
        self.watch.previous = current
        return signs

    def check(self, computing: bool = False) -> tuple[LoadedObs, ...]:
        """Stop the benchmark if somebody started using Ollama."""
        current, loaded = self.look()
        signs = self._signs(current, computing)
        if signs:
            self.events.emit("bench.interrupted", model=self._measuring, reason=signs[0].message)
            raise BenchInterrupted(signs[0], self._measuring)
        return loaded

    def wait_quiet(self) -> tuple[LoadedObs, ...]:
        """Wait until two looks SETTLE_S apart see nobody using Ollama; BenchBusy after max_wait."""
        started = self.clock()
        self.watch.previous = None
        clean_since: float | None = None
        while True:
            current, loaded = self.look()
            signs = self._signs(current, computing=False)
            now = self.clock()
            if signs:
                clean_since = None
                waited = now - started
                if waited >= self.options.max_wait_s:
                    raise BenchBusy(signs, waited)
                self.events.emit(
                    "bench.waiting", reasons=[s.message for s in signs], waited_s=round(waited, 1)
                )
            elif clean_since is None:
                clean_since = now
            elif now - clean_since >= SETTLE_S:
                return loaded
            self.sleep(SETTLE_S if clean_since is not None else max(self.options.poll_s, SETTLE_S))

    # -- acting -------------------------------------------------------------------------------
    def unload(self, model: str, canonical_name: str) -> None:
        """What `ollama stop` sends; then wait until `/api/ps` no longer lists it."""
        try:
            self.client.generate(model=model, keep_alive=0)
        except ollama.ResponseError as exc:
            if exc.status_code != 404:
                raise BenchFailed(f"unloading {model} failed: {exc.error}") from None
        self.watch.expected.pop(canonical_name, None)
        deadline = self.clock() + UNLOAD_WAIT_S
        while self.clock() < deadline:
            current, loaded = self.look()
            self.watch.previous = current
            if all(m.name != canonical_name for m in loaded):
                return
            self.sleep(0.1)
        raise BenchFailed(f"{model} was still loaded {UNLOAD_WAIT_S:.0f} s after it was unloaded")

    def _settled(self, name: str) -> LoadedObs | None:
        """After our request: the expiry it set is what we expect until our next one."""
        current, loaded = self.look()
        self.watch.previous = current
        ours = next((m for m in loaded if m.name == name), None)
        self.watch.expected[name] = ours.expires_at if ours else None
        return ours

    def _stream(self, t: Target, prompt: str, num_predict: int) -> Iterator[ollama.GenerateResponse]:
        options = {"num_ctx": t.setting.num_ctx, "num_predict": num_predict, "temperature": 0, "seed": 42}
        try:
            yield from self.client.generate(
                model=t.model, prompt=prompt, stream=True, keep_alive=KEEP_ALIVE_S, options=options
            )
        except (ollama.ResponseError, httpx.HTTPError, ConnectionError) as exc:
            detail = exc.error if isinstance(exc, ollama.ResponseError) else str(exc) or type(exc).__name__
            raise BenchFailed(f"{t.model}: {detail}") from None

    def generate(
        self, t: Target, case: str, run: int, prompt: str, num_predict: int, *, cold: bool = False
    ) -> Sample:
        self.watch.expected[t.canonical] = None  # in flight: its expiry is ours to change
        started = self.clock()
        next_look = started + self.options.poll_s
        next_gpu = started
        ttft: float | None = None
        last: ollama.GenerateResponse | None = None
        for chunk in self._stream(t, prompt, num_predict):
            now = self.clock()
            if ttft is None and (chunk.response or chunk.thinking):
                ttft = now - started
            if now >= next_gpu:
                sample = self.sampler.sample()
                if sample is not None:
                    self._gpu.append(sample)
                next_gpu = now + GPU_SAMPLE_EVERY
            if now >= next_look and not (cold and ttft is None):  # never look while it loads
                self.check(computing=True)
                next_look = self.clock() + self.options.poll_s
            last = chunk
        if last is None:
            raise BenchFailed(f"{t.model}: Ollama ended the stream without an answer")
        return Sample(
            case=case,
            run=run,
            ttft_s=ttft,
            total_duration=last.total_duration,
            load_duration=last.load_duration,
            prompt_eval_count=last.prompt_eval_count,
            prompt_eval_duration=last.prompt_eval_duration,
            eval_count=last.eval_count,
            eval_duration=last.eval_duration,
        )

    def embed(self, t: Target, case: str, run: int, texts: list[str]) -> Sample:
        self.watch.expected[t.canonical] = None
        try:
            answer = self.client.embed(
                model=t.model, input=texts, keep_alive=KEEP_ALIVE_S, options={"num_ctx": t.setting.num_ctx}
            )
        except (ollama.ResponseError, httpx.HTTPError, ConnectionError) as exc:
            detail = exc.error if isinstance(exc, ollama.ResponseError) else str(exc) or type(exc).__name__
            raise BenchFailed(f"{t.model}: {detail}") from None
        return Sample(
            case=case,
            run=run,
            total_duration=answer.total_duration,
            load_duration=answer.load_duration,
            prompt_eval_count=answer.prompt_eval_count,
        )

    # -- one model ----------------------------------------------------------------------------
    def measure(self, t: Target) -> ModelResult:
        self._measuring, self._gpu = t.model, []
        samples: list[Sample] = []
        placed: LoadedObs | None = None
        for run in range(1, self.options.runs + 1):
            self.unload(t.model, t.canonical)
            self.check()
            nonce = f"[{self.tag} {run}] "
            if t.embedding:
                cold = self.embed(t, "load", run, [nonce + "warm up"])
            else:
                cold = self.generate(t, "load", run, nonce + "Say hi.", 1, cold=True)
            samples.append(cold)
            placed = self._settled(t.canonical) or placed
            for sample in self._cases(t, run, nonce):
                samples.append(sample)
                placed = self._settled(t.canonical) or placed
                self.check()
            self.events.emit("bench.run", model=t.model, run=run, of=self.options.runs)
        used, util = summarize_samples(self._gpu)
        cases = sorted(
            {s.case for s in samples if s.case != "load"}, key=[*self._case_order(), LONG, EMBED].index
        )
        return ModelResult(
            model=t.canonical,
            name=t.model,
            digest=t.digest,
            family=t.family,
            parameter_size=t.parameter_size,
            quantization=t.quantization,
            embedding=t.embedding,
            setting=t.setting,
            load_s=summarize((s.load_duration or 0) / 1e9 or None for s in samples if s.case == "load"),
            size=placed.size if placed else 0,
            size_vram=placed.size_vram if placed else 0,
            context_length=placed.context_length if placed else None,
            gpu_used_max=used,
            gpu_util_mean=util,
            cases=tuple(CaseResult.of(c, samples) for c in cases),
            samples=tuple(samples),
        )

    def _case_order(self) -> list[str]:
        return [p.name for p in self.options.prompts]

    def _cases(self, t: Target, run: int, nonce: str) -> Iterator[Sample]:
        if t.embedding:
            texts = [nonce + p.text for p in self.options.prompts]
            if self.options.long_prompt:
                texts.append(nonce + long_text(t.setting.num_ctx))
            yield self.embed(t, EMBED, run, texts)
            return
        for p in self.options.prompts:
            yield self.generate(t, p.name, run, nonce + p.text, self.options.num_predict)
        if self.options.long_prompt:
            yield self.generate(t, LONG, run, nonce + long_text(t.setting.num_ctx), LONG_PREDICT)

    def release(self) -> None:
        """Unload what the benchmark loaded (best effort: Ollama expires it anyway)."""
        for name in list(self.watch.expected):
            with contextlib.suppress(ollama.ResponseError, httpx.HTTPError, ConnectionError):
                self.client.generate(model=name, keep_alive=0)
        self.watch.expected.clear()


def clear_server(bench: Bench, loaded: tuple[LoadedObs, ...]) -> list[str]:
    """Unload every loaded model (all idle, as `wait_quiet` saw): the benchmark measures one
    model alone on the GPU. Returns their names."""
    for m in loaded:
        bench.unload(m.name, m.name)
    return [m.name for m in loaded]


def measure_all(
    bench: Bench,
    targets: list[Target],
    machine: Machine,
    *,
    revision: str | None,
    started_at: datetime,
    on_unloaded: Callable[[list[str]], None] = lambda _: None,
) -> BenchRun:
    """Wait for quiet, clear the GPU, measure each target; the run (completed, or interrupted
    with what was measured before)."""
    events = bench.events
    events.emit("bench.start", models=[t.model for t in targets], runs=bench.options.runs,
                simulated=machine.simulated is not None)  # fmt: skip
    results: list[ModelResult] = []
    status: Literal["completed", "interrupted"] = "completed"
    note = ""
    try:
        loaded = bench.wait_quiet()
        on_unloaded(clear_server(bench, loaded))
        for t in targets:
            events.emit("bench.model", model=t.model, setting=t.setting.label())
            result = measure_one(bench, t)
            results.append(result)
    except BenchInterrupted as exc:
        status, note = "interrupted", str(exc)
    finally:
        bench.release()
    return BenchRun(
        started_at=started_at,
        finished_at=bench.wall(),
        revision=revision,
        machine=machine,
        status=status,
        note=note,
        models=tuple(t.canonical for t in targets),
        results=tuple(results),
    )


def measure_one(bench: Bench, t: Target) -> ModelResult:
    result = bench.measure(t)
    bench.events.emit(
        "bench.result",
        model=t.model,
        eval_tps=_median(result.eval_tps),
        prompt_tps=_median(result.prompt_tps),
        ttft_s=_median(result.ttft_s),
        load_s=_median(result.load_s),
        size_vram=result.size_vram,
        size=result.size,
    )
    return result


def _median(stat: object) -> float | None:
    value = getattr(stat, "median", None)
    return round(value, 3) if isinstance(value, float) else None


@dataclass(frozen=True)
class Reach:
    """What a benchmark reaches the server through: Ollama's API (a client that waits as long
    as a load may take), plain HTTP for /api/version, and the reconciler's state directory."""

    client: ollama.Client
    http: httpx.Client
    url: str
    state: StateStore


def forget_warmed(state: StateStore, names: list[str]) -> None:
    """Pinned models the benchmark unloads leave the reconciler's record of what it warmed, as
    an unload action's do: their absence is the benchmark's doing, not an eviction."""
    gone = set(names)
    state.update(
        lambda m: m.model_copy(update={"warmed": {k: v for k, v in m.warmed.items() if k not in gone}})
    )


def _history(state: StateStore, events: EventBus) -> History:
    return History(history_path(state.root), warn=lambda text: events.emit("bench.warning", message=text))


def run_bench(
    desired: DesiredState,
    reach: Reach,
    targets: list[Target],
    events: EventBus,
    options: BenchOptions,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> BenchRun:
    """Measure the targets and record the run (completed or interrupted) in the history.
    BenchBusy (nobody's use disturbed, nothing touched) is raised as it is."""
    sampler = GpuSampler()
    try:
        machine = server_machine(reach.http, reach.url, sampler)
        memory = reach.state.load()
        warmed_at = {name: at for name, at in memory.warmed_at.items() if name in memory.warmed}
        bench = Bench(reach.client, options, events, sampler, wall=now, warmed_at=warmed_at)
        run = measure_all(bench, targets, machine, revision=desired.revision, started_at=now(),
                          on_unloaded=lambda names: forget_warmed(reach.state, names))  # fmt: skip
    finally:
        sampler.close()
    run = run.model_copy(update={"id": _history(reach.state, events).record(run)})
    events.emit("bench.done", run_id=run.id, status=run.status, models=len(run.results))
    return run


PLANNED_WAIT_S = 15.0  # a planned benchmark waits this long for quiet, then is deferred (never blocks serve)


def run_planned(desired: DesiredState, reach: Reach, action: RunBenchmark, events: EventBus) -> BenchRun:
    """Measure and record a planned benchmark (`benchmarks.on_change`); when people use Ollama
    it does not wait long: the attempt is recorded as busy (the planner tries again later) and
    nothing is touched."""
    options = BenchOptions.of(desired, max_wait_s=PLANNED_WAIT_S)
    try:
        return run_bench(desired, reach, list(action.targets), events, options)
    except BenchBusy as exc:
        at = datetime.now(UTC)
        run = BenchRun(started_at=at, finished_at=at, revision=desired.revision, status="busy", note=str(exc),
                       models=tuple(t.canonical for t in action.targets))  # fmt: skip
        run = run.model_copy(update={"id": _history(reach.state, events).record(run)})
        events.emit("bench.deferred", models=[t.model for t in action.targets], reason=str(exc))
        return run


def run_benchmark(action: RunBenchmark, ctx: ExecContext) -> None:
    """The executor of RunBenchmark: measure and record, then load the pinned set again with
    the loads the planner put in the action (through the load executor) — after a failed
    request too, but not when it did not start because people use Ollama (it touched nothing)."""
    clients = ctx.clients()
    run = None
    try:
        with http_client(ctx.api_timeout) as http:
            run = run_planned(ctx.desired, Reach(clients.loader, http, clients.base_url, ctx.state), action,
                              ctx.events)  # fmt: skip
    finally:
        if run is None or run.status != "busy":
            for load in action.restore:
                models.run_load(load, ctx)


def benchmarked(action: RunBenchmark, world: World) -> None:
    """Its targets measured at their settings keys, the pinned set loaded again."""
    if world.bench is not None:
        version = world.start.ollama_version
        keys = (*world.bench.benchmarked, *(t.key(version) for t in action.targets))
        world.bench = world.bench.model_copy(update={"benchmarked": keys})
    for load in action.restore:
        models.loaded(load, world)
