"""The quantization advisor (pure): which quantization, context and KV cache fit, and the best change.

Every option is judged by the planner itself: the desired state is changed the way the
proposed YAML edit would change it (another tag, a smaller num_ctx, a quantized KV cache
with flash attention, a model pinned or unpinned) and planned against the same observation,
so the VRAM figure and the fit are the planner's own (plan/vram.py through plan/planner.py —
one implementation). A candidate's size and architecture come from its registry manifest
and GGUF header when looked up (or the model on disk); else they are scaled from the
current model by the bits per weight its tag names, and marked estimated.

The best change maximizes a quality score among the options that fit: the product of
- the quantization's quality, 1 − 2^−(bits per weight − 2) (Q4_K_M 0.86, Q5_K_M 0.92,
  Q6_K 0.96, Q8_0 0.99, F16 1.0 — the order of llama.cpp's perplexity tables, not their values),
- the context kept, (num_ctx / desired)^0.3 when smaller,
- the KV cache: f16 1.0, q8_0 0.995, q4_0 0.97 (llama.cpp: q8_0 is near lossless),
- 0.6 for unpinning a model (it then loads cold when asked),
relative to the desired state, less 1 % for each setting the option changes (of two near
equals, the smaller edit). Ties go to the option that leaves more VRAM free. When the desired
state fits, a change is proposed only if it scores at least 2 % better (an f16 KV cache
instead of q8_0 alone is not worth a commit).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.desired.refs import InvalidReference, canonical
from reconciler.desired.schema import DesiredState, ModelSpec
from reconciler.observed import Blob, GpuObs, ModelObs, Observed, RemoteManifest
from reconciler.plan.actions import Plan, VramEstimate
from reconciler.units import format_bytes

Check = Callable[[DesiredState, Observed], Plan]  # the planner (without advice of its own)
FilePath = tuple[str | int, ...]

# llama.cpp's bits per weight of each GGUF quantization (tools/quantize and the k-quants PR)
BITS = {
    "Q2_K": 3.35, "Q3_K_S": 3.5, "Q3_K_M": 3.91, "Q3_K_L": 4.27, "Q4_0": 4.55, "Q4_1": 5.0,
    "Q4_K_S": 4.58, "Q4_K_M": 4.85, "Q5_0": 5.54, "Q5_1": 6.0, "Q5_K_S": 5.54, "Q5_K_M": 5.69,
    "Q6_K": 6.59, "Q8_0": 8.5, "F16": 16.0, "BF16": 16.0, "F32": 32.0,
}  # fmt: skip
KV_QUALITY = {"f16": 1.0, "q8_0": 0.995, "q4_0": 0.97}
UNPIN_QUALITY = 0.6
MIN_GAIN = 1.02  # a change to a state that fits is proposed only when it is 2 % better
EDIT_COST = 0.99  # each setting an option changes costs 1 %: the smaller edit of two near equals
MIN_CTX = 2048
_QUANT = re.compile(
    r"(?:^|[-_.])(q[2-8]_k_[sml]|q[2-8]_k|q[2-8]_[01]|iq[1-4]_[a-z]+|bf16|fp16|f16|f32)$", re.I
)


def quant_of(name: str, fallback: str = "") -> str:
    """The quantization a tag names (`8b-instruct-q4_K_M` → Q4_K_M), else `fallback`."""
    tag = name.rsplit(":", 1)[-1] if ":" in name.rsplit("/", 1)[-1] else ""
    m = _QUANT.search(tag)
    if m is None:
        return fallback.upper()
    found = m.group(1).upper()
    return "F16" if found == "FP16" else found


def quality(quant: str) -> float:
    bits = BITS.get(quant.upper())
    return 1 - 2 ** -(bits - 2) if bits else 0.86  # unknown: about Q4_K_M


def tag_stem(name: str) -> str:
    """`llama3:8b-instruct-q4_K_M` → `8b-instruct-`: the tags that differ only by quantization."""
    tag = name.rsplit(":", 1)[-1]
    m = _QUANT.search(tag)
    return tag[: m.start(1)] if m else ""


@dataclass(frozen=True)
class Candidate:
    """Another quantization of a desired model."""

    name: str  # as it would be written in ollama.yaml
    manifest: RemoteManifest | None = None  # from the registry (None: on disk, or scaled)


@dataclass(frozen=True)
class Measured:
    eval_tps: float
    simulated: bool
    weights: int  # bytes of the weights measured (for the bandwidth-bound estimate of siblings)


@dataclass(frozen=True)
class Change:
    """One edit of the desired-state files."""

    file: str
    path: FilePath
    old: Any
    new: Any
    key: bool = False  # the key itself is renamed (benchmarks.candidates)

    def shown(self) -> str:
        where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in self.path).replace(".[", "[")
        if self.key:
            return f"{self.file} {where}: rename the key to {self.new}"
        old = "(unset)" if self.old is None else _yaml(self.old)
        return f"{self.file} {where}: {old} → {_yaml(self.new)}"


def _yaml(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


@dataclass(frozen=True)
class Option:
    model: str  # the desired model it is an option for (as written)
    candidate: str  # the model it would run
    quantization: str
    num_ctx: int
    kv_type: str
    pinned: bool
    changes: tuple[Change, ...]
    needed: int  # VRAM the pinned set needs with it (the planner's figure)
    limit: int | None
    own: VramEstimate | None  # the model's own estimate
    fits: bool
    score: float  # relative to the desired state (1.0 = as good)
    exact: bool  # sizes from a manifest or the disk, not scaled from the tag
    measured: Measured | None = None
    predicted_tps: float | None = None
    blocked_by: str = ""  # why the plan would be refused besides VRAM (disk, download size)
    axes: int = 0  # settings changed: quantization, num_ctx, KV cache type, pinning

    @property
    def own_total(self) -> int:
        return self.own.total if self.own else 0

    def setting(self) -> str:
        return f"num_ctx {self.num_ctx}, KV {self.kv_type}"


@dataclass(frozen=True)
class EvictionAdvice:
    model: str  # the pinned model pushed out
    by: str  # the model people load instead
    count: int
    options: tuple[Option, ...]  # changes with which both stay loaded


@dataclass(frozen=True)
class Advice:
    limit: int | None
    needed: int  # the desired pinned set
    fits: bool
    rows: tuple[Option, ...]  # each candidate at the desired setting (the table)
    best: Option | None  # the proposed change (None: nothing better fits)
    blocked: Option | None  # the next better option that does not fit
    alternatives: tuple[Option, ...] = ()  # the best fitting option of each kind (for a refusal)
    evictions: tuple[EvictionAdvice, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _World:
    desired: DesiredState
    observed: Observed
    check: Check
    measured: Mapping[str, Measured] = field(default_factory=dict)


def with_gpu(observed: Observed, total: int) -> Observed:
    """The observation as if the server had one idle GPU of `total` bytes (`advise --gpu`)."""
    gpu = GpuObs(index=0, name=f"{format_bytes(total)} GPU (assumed)", total=total, used=0, free=total)
    return observed.model_copy(update={"gpus": (gpu,)})


def _present(observed: Observed) -> dict[str, ModelObs]:
    return {m.name: m for m in observed.models}


def _canon(name: str) -> str:
    try:
        return canonical(name)
    except InvalidReference:
        return name.lower()


# ── changing the desired state (and the files) ──────────────────────────────────────────────


def _rename(desired: DesiredState, old: str, new: str) -> tuple[DesiredState, list[Change]]:
    """Every reference to `old` becomes `new`: the model, derived bases, benchmarks, OpenWebUI."""
    key = _canon(old)
    changes: list[Change] = []
    models = list(desired.ollama.models)
    for i, m in enumerate(models):
        if _canon(m.name) == key:
            models[i] = m.model_copy(update={"name": new})
            changes.append(Change("ollama.yaml", ("models", i, "name"), m.name, new))
    derived = list(desired.ollama.derived)
    for i, d in enumerate(derived):
        if _canon(d.from_) == key:
            derived[i] = d.model_copy(update={"from_": new})
            changes.append(Change("ollama.yaml", ("derived", i, "from"), d.from_, new))
    bench = desired.ollama.benchmarks
    listed = list(bench.models)
    for i, name in enumerate(listed):
        if _canon(name) == key:
            listed[i] = new
            changes.append(Change("ollama.yaml", ("benchmarks", "models", i), name, new))
    candidates = {}
    for name, others in bench.candidates.items():
        if _canon(name) == key:
            changes.append(Change("ollama.yaml", ("benchmarks", "candidates", name), name, new, key=True))
            candidates[new] = [old if _canon(o) == _canon(new) else o for o in others]
            changes += [  # applied after the key's rename, so under its new name
                Change("ollama.yaml", ("benchmarks", "candidates", new, j), o, old)
                for j, o in enumerate(others)
                if _canon(o) == _canon(new)
            ]
        else:
            candidates[name] = others
    ollama = desired.ollama.model_copy(
        update={
            "models": models,
            "derived": derived,
            "benchmarks": bench.model_copy(update={"models": listed, "candidates": candidates}),
        }
    )
    webui = desired.openwebui
    if webui is not None:
        webui, more = _rename_webui(webui, key, new)
        changes += more
    return desired.model_copy(update={"ollama": ollama, "openwebui": webui}), changes


def _rename_webui(webui: Any, key: str, new: str) -> tuple[Any, list[Change]]:
    changes: list[Change] = []
    defaults = list(webui.default_models)
    for i, name in enumerate(defaults):
        if _canon(name) == key:
            defaults[i] = new
            changes.append(Change("openwebui.yaml", ("default_models", i), name, new))
    update: dict[str, Any] = {"default_models": defaults}
    if webui.task_model and _canon(webui.task_model) == key:
        changes.append(Change("openwebui.yaml", ("task_model",), webui.task_model, new))
        update["task_model"] = new
    presets = list(webui.presets)
    for i, p in enumerate(presets):
        if _canon(p.base) == key:
            presets[i] = p.model_copy(update={"base": new})
            changes.append(Change("openwebui.yaml", ("presets", i, "base"), p.base, new))
    update["presets"] = presets
    return webui.model_copy(update=update), changes


def _model_index(desired: DesiredState, name: str) -> int:
    key = _canon(name)
    return next(i for i, m in enumerate(desired.ollama.models) if _canon(m.name) == key)


def _set_model(desired: DesiredState, name: str, **fields: Any) -> tuple[DesiredState, list[Change]]:
    i = _model_index(desired, name)
    m = desired.ollama.models[i]
    changes = [
        Change("ollama.yaml", ("models", i, k), getattr(m, k), v)
        for k, v in fields.items()
        if getattr(m, k) != v
    ]
    models = list(desired.ollama.models)
    models[i] = m.model_copy(update=fields)
    derived = desired.ollama.derived
    if "keep_loaded" in fields:  # a derived model pinned on these weights shares the choice
        derived = [
            d.model_copy(update={"keep_loaded": fields["keep_loaded"]})
            if _canon(d.from_) == _canon(name)
            else d
            for d in derived
        ]
        changes += [
            Change("ollama.yaml", ("derived", j, "keep_loaded"), d.keep_loaded, fields["keep_loaded"])
            for j, d in enumerate(desired.ollama.derived)
            if _canon(d.from_) == _canon(name) and d.keep_loaded != fields["keep_loaded"]
        ]
    ollama = desired.ollama.model_copy(update={"models": models, "derived": derived})
    return desired.model_copy(update={"ollama": ollama}), changes


def _set_kv(desired: DesiredState, kv: str) -> tuple[DesiredState, list[Change]]:
    env = desired.ollama.container.env
    changes = []
    update: dict[str, Any] = {}
    if (env.OLLAMA_KV_CACHE_TYPE or "f16") != kv:
        changes.append(
            Change("ollama.yaml", ("container", "env", "OLLAMA_KV_CACHE_TYPE"), env.OLLAMA_KV_CACHE_TYPE, kv)
        )
        update["OLLAMA_KV_CACHE_TYPE"] = kv
    if kv != "f16" and env.OLLAMA_FLASH_ATTENTION is not True:  # a quantized cache needs it
        changes.append(
            Change(
                "ollama.yaml",
                ("container", "env", "OLLAMA_FLASH_ATTENTION"),
                env.OLLAMA_FLASH_ATTENTION,
                True,
            )
        )
        update["OLLAMA_FLASH_ATTENTION"] = True
    if not update:
        return desired, []
    container = desired.ollama.container.model_copy(update={"env": env.model_copy(update=update)})
    return desired.model_copy(
        update={"ollama": desired.ollama.model_copy(update={"container": container})}
    ), changes


def without_lan(desired: DesiredState) -> DesiredState:
    """VRAM does not depend on the LAN addresses; a laptop is not the server they name."""
    return desired.model_copy(update={"server": desired.server.model_copy(update={"lan_addresses": []})})


# ── judging options with the planner ────────────────────────────────────────────────────────


def _scaled(source: ModelObs | RemoteManifest, name: str, quant: str, current: str) -> RemoteManifest | None:
    """`name`'s manifest as `source`'s with the weights scaled by bits per weight (same architecture)."""
    have, want = BITS.get(current), BITS.get(quant)
    if not have or not want:
        return None
    blobs = tuple(
        Blob(digest=f"scaled:{name}:{b.digest}", size=int(b.size * want / have), media_type=b.media_type)
        if b.is_weights
        else b
        for b in source.blobs
    )
    return RemoteManifest(name=_canon(name), blobs=blobs, architecture=source.architecture)


def _source_of(observed: Observed, name: str) -> ModelObs | RemoteManifest | None:
    key = _canon(name)
    found = _present(observed).get(key)
    if found is not None:
        return found
    return next((r for r in observed.remote if r.name == key), None)


def _world_for(w: _World, base: str, cand: Candidate) -> tuple[Observed, bool] | None:
    """The observation in which `cand` can be planned: on disk, looked up, or scaled (inexact)."""
    key = _canon(cand.name)
    if key in _present(w.observed) or key == _canon(base):
        return w.observed, True
    manifest = cand.manifest or next((r for r in w.observed.remote if r.name == key), None)
    exact = manifest is not None
    if manifest is None:
        source = _source_of(w.observed, base)
        current = quant_of(base, getattr(source, "quantization", ""))
        manifest = _scaled(source, cand.name, quant_of(cand.name), current) if source else None
    if manifest is None:
        return None
    remote = (*(r for r in w.observed.remote if r.name != key), manifest)
    errors = {k: v for k, v in w.observed.remote_errors.items() if k != key}
    return w.observed.model_copy(update={"remote": remote, "remote_errors": errors}), exact


def _judge(
    w: _World,
    desired: DesiredState,
    observed: Observed,
    *,
    model: str,
    candidate: str,
    changes: list[Change],
    pinned: bool,
    score: float,
    exact: bool,
    num_ctx: int,
) -> Option:
    plan = w.check(without_lan(desired), observed)
    budget = plan.budget
    vram = any(v.budget == "vram" for v in plan.violations)
    other = "; ".join(v.message for v in plan.violations if v.budget != "vram")
    own = next((e for e in budget.vram_estimates if _canon(e.model) == _canon(candidate)), None)
    env = desired.ollama.container.env
    return Option(
        model=model,
        candidate=candidate,
        quantization=quant_of(candidate, _quant_present(observed, candidate)),
        num_ctx=num_ctx,
        kv_type=env.OLLAMA_KV_CACHE_TYPE or "f16",
        pinned=pinned,
        changes=tuple(changes),
        needed=budget.vram_pinned,
        limit=budget.vram_limit,
        own=own,
        fits=budget.vram_limit is not None and not vram and not other,
        score=score,
        exact=exact,
        measured=w.measured.get(_canon(candidate)),
        blocked_by=other,
    )


def _quant_present(observed: Observed, name: str) -> str:
    found = _present(observed).get(_canon(name))
    return found.quantization if found else ""


def _ctx_steps(asked: int) -> list[int]:
    steps = [asked]
    while steps[-1] // 2 >= MIN_CTX and len(steps) < 3:
        steps.append(steps[-1] // 2)
    return steps


def _desired_ctx(desired: DesiredState, observed: Observed, name: str) -> int:
    from reconciler.plan.bench import num_ctx_for

    return num_ctx_for(desired, observed, _canon(name))


class _Spent(Exception):
    """The budget of plans to judge is used up."""


@dataclass
class _Counted:
    check: Check
    budget: int | None
    calls: int = 0

    def __call__(self, desired: DesiredState, observed: Observed) -> Plan:
        if self.budget is not None and self.calls >= self.budget:
            raise _Spent
        self.calls += 1
        return self.check(desired, observed)


def _grid(
    w: _World, m: ModelSpec, cands: Sequence[Candidate], *, beside: bool, shrink: bool = False
) -> list[Option]:
    options: list[Option] = []
    with contextlib.suppress(_Spent):  # what was judged before the budget ran out still counts
        _fill(w, m, cands, beside=beside, shrink=shrink, into=options)
    return options


_KV_BYTES = {"f16": 2.0, "q8_0": 1.0, "q4_0": 0.5}


def _fill(
    w: _World, m: ModelSpec, cands: Sequence[Candidate], *, beside: bool, shrink: bool, into: list[Option]
) -> None:
    """Every (quantization × num_ctx × KV cache) option of desired model `m`, judged by the
    planner; with `beside` (m not pinned) m is pinned for the check only: does it fit beside
    the pinned set when people load it."""
    env = w.desired.ollama.container.env
    kv_now = env.OLLAMA_KV_CACHE_TYPE or "f16"
    q_now = quality(quant_of(m.name, _quant_present(w.observed, m.name)))
    asked = _desired_ctx(w.desired, w.observed, m.name)
    bits_now = BITS.get(quant_of(m.name, _quant_present(w.observed, m.name)), 99.0)
    kvs = list(dict.fromkeys((kv_now, "q8_0", "q4_0", "f16")))
    if shrink:  # a refusal: only what takes less memory than the desired state
        cands = [c for c in cands if BITS.get(quant_of(c.name), 99.0) < bits_now]
        kvs = [kv for kv in kvs if _KV_BYTES[kv] <= _KV_BYTES.get(kv_now, 2.0)]
    for cand in [Candidate(m.name), *cands]:
        placed = _world_for(w, m.name, cand)
        if placed is None:
            continue
        observed, exact = placed
        renamed, renames = _rename(w.desired, m.name, cand.name) if cand.name != m.name else (w.desired, [])
        q = quality(quant_of(cand.name, _quant_present(w.observed, cand.name))) / q_now
        for ctx in _ctx_steps(asked):
            for kv in kvs:
                desired, changes = renamed, list(renames)
                if ctx != asked:
                    desired, more = _set_model(desired, cand.name, num_ctx=ctx)
                    changes += more
                if beside:
                    desired, _ = _set_model(desired, cand.name, keep_loaded=True)
                desired, more = _set_kv(desired, kv)
                changes += more
                score = q * (ctx / asked) ** 0.3 * KV_QUALITY[kv] / KV_QUALITY.get(kv_now, 1.0)
                option = _judge(w, desired, observed, model=m.name, candidate=cand.name, changes=changes,
                                pinned=not beside, score=score, exact=exact, num_ctx=ctx)  # fmt: skip
                axes = (cand.name != m.name) + (ctx != asked) + (kv != kv_now)
                into.append(replace(option, axes=axes))


def _pinned(desired: DesiredState, m: ModelSpec) -> bool:
    key = _canon(m.name)
    return m.keep_loaded or any(d.keep_loaded and _canon(d.from_) == key for d in desired.ollama.derived)


def _unpin(w: _World, m: ModelSpec) -> Option:
    desired, changes = _set_model(w.desired, m.name, keep_loaded=False)
    asked = _desired_ctx(w.desired, w.observed, m.name)
    option = _judge(w, desired, w.observed, model=m.name, candidate=m.name, changes=changes, pinned=False,
                    score=UNPIN_QUALITY, exact=True, num_ctx=asked)  # fmt: skip
    return replace(option, axes=1)


SINGLE_KINDS = ("context", "kv cache", "quantization", "unpin")


def _blocked(rows: Sequence[Option], best: Option | None) -> Option | None:
    """The next better quantization than the proposal's (of the same model) that does not fit."""
    if best is None or is_unpin(best):
        return None
    floor = quality(best.quantization)
    above = [
        o for o in rows if o.model == best.model and not o.fits and quality(o.quantization) > floor + 1e-9
    ]
    return min(above, key=lambda o: quality(o.quantization), default=None)


def _effective(option: Option) -> float:
    """The score, 1 % less for each setting changed: of two near equals, the smaller edit."""
    return option.score * EDIT_COST**option.axes


def _rank(option: Option) -> tuple[float, int]:
    return (_effective(option), -option.needed)


def is_unpin(option: Option) -> bool:
    return any(c.path[-1] == "keep_loaded" and c.new is False for c in option.changes)


def _kind(option: Option, asked: int, kv_now: str) -> str:
    if is_unpin(option):
        return "unpin"
    parts = []
    if option.candidate != option.model:
        parts.append("quantization")
    if option.num_ctx != asked:
        parts.append("context")
    if option.kv_type != kv_now:
        parts.append("kv cache")
    return " + ".join(parts) or "as desired"


def _predict(rows: list[Option]) -> list[Option]:
    """Generation is bound by memory bandwidth: a sibling quantization's rate scales with the
    bytes of weights read per token."""
    measured = [r for r in rows if r.measured and r.own]
    out = []
    for r in rows:
        ref = next((x for x in measured if x.model == r.model), None)
        if r.measured is None and ref is not None and ref.own and ref.measured and r.own and r.own.weights:
            r = replace(r, predicted_tps=ref.measured.eval_tps * ref.own.weights / r.own.weights)
        out.append(r)
    return out


def advise(
    desired: DesiredState,
    observed: Observed,
    *,
    check: Check,
    candidates: Mapping[str, Sequence[Candidate]] | None = None,
    measured: Mapping[str, Measured] | None = None,
    unpin: bool = True,
    pinned_only: bool = False,
    budget: int | None = None,
) -> Advice:
    """The table, the best change and the alternatives for `desired` on `observed` (pass
    `with_gpu(observed, SIZE)` to ask about another card). `pinned_only` judges only the
    pinned models, and only options that take less memory (a refusal); `budget` bounds the
    plans judged (the planner's refusal uses both, so a refused plan stays cheap)."""
    counted = _Counted(check, budget)
    w = _World(desired, observed, counted, measured or {})
    cands = {_canon(k): list(v) for k, v in (candidates or {}).items()}
    base = check(without_lan(desired), observed)
    kv_now = desired.ollama.container.env.OLLAMA_KV_CACHE_TYPE or "f16"
    grid: list[Option] = []
    rows: list[Option] = []
    asked: dict[str, int] = {}
    models = [m for m in desired.ollama.models if _pinned(desired, m) or not pinned_only]
    if unpin:
        with contextlib.suppress(_Spent):
            grid += [_unpin(w, m) for m in models if _pinned(desired, m)]
    for m in models:
        asked[m.name] = _desired_ctx(desired, observed, m.name)
        options = _grid(
            w, m, cands.get(_canon(m.name), []), beside=not _pinned(desired, m), shrink=pinned_only
        )
        grid += options
        rows += [o for o in options if o.num_ctx == asked[m.name] and o.kv_type == kv_now]
    fits_now = not any(v.budget == "vram" for v in base.violations) and base.budget.vram_limit is not None
    fitting = sorted((o for o in grid if o.fits), key=_rank, reverse=True)
    better = [o for o in fitting if _effective(o) >= MIN_GAIN] if fits_now else fitting
    best = better[0] if better else None
    kinds: dict[str, Option] = {}
    for o in fitting:
        kinds.setdefault(_kind(o, asked.get(o.model, o.num_ctx), kv_now), o)
    alternatives = tuple(o for k, o in kinds.items() if k in SINGLE_KINDS)
    return Advice(
        limit=base.budget.vram_limit,
        needed=base.budget.vram_pinned,
        fits=fits_now,
        rows=tuple(_predict(rows)),
        best=best,
        blocked=_blocked(rows, best),
        alternatives=alternatives,
        evictions=tuple(_evictions(w, cands, base)),
        notes=_notes(desired, observed, base),
    )


DEFAULT_MODELS_PER_GPU = 3  # v0.32.15 server/sched.go defaultModelsPerGPU (OLLAMA_MAX_LOADED_MODELS unset)


def _max_loaded(w: _World, copies: int) -> Change | None:
    """Ollama unloads a model to make room once OLLAMA_MAX_LOADED_MODELS runners are loaded,
    whatever VRAM is free (v0.32.15 server/sched.go processPending: `loadedCount >=
    maxRunners` → findRunnerToUnload; unset, 3 per GPU): the edit that lets `copies` stay."""
    env = w.desired.ollama.container.env
    limit = env.OLLAMA_MAX_LOADED_MODELS or DEFAULT_MODELS_PER_GPU * max(len(w.observed.gpus), 1)
    if copies <= limit:
        return None
    path = ("container", "env", "OLLAMA_MAX_LOADED_MODELS")
    return Change("ollama.yaml", path, env.OLLAMA_MAX_LOADED_MODELS, copies)


def _evictions(w: _World, cands: Mapping[str, list[Candidate]], base: Plan) -> list[EvictionAdvice]:
    """A pinned model pushed out by another again and again: the options with which both fit in
    VRAM, each with the OLLAMA_MAX_LOADED_MODELS that lets both stay loaded when that is short."""
    found = []
    desired_models = {_canon(m.name): m for m in w.desired.ollama.models}
    runners = _max_loaded(w, len(base.budget.vram_estimates) + 1)  # the pinned copies and the other
    for e in w.observed.evictions:
        if e.count < 2:
            continue
        for by in e.suspects:
            other = desired_models.get(_canon(by))
            if other is None or _pinned(w.desired, other):
                continue
            both = [o for o in _grid(w, other, cands.get(_canon(by), []), beside=True) if o.fits]
            if runners is not None:
                both = [replace(o, changes=(*o.changes, runners), axes=o.axes + 1) for o in both]
            both.sort(key=_rank, reverse=True)
            found.append(EvictionAdvice(model=e.model, by=other.name, count=e.count, options=tuple(both[:3])))
    return found


def _notes(desired: DesiredState, observed: Observed, base: Plan) -> tuple[str, ...]:
    notes = [
        f"the plan is refused besides VRAM: {v.message}"
        for v in base.violations
        if v.budget not in ("vram", "lan_addresses")
    ]
    if base.budget.vram_limit is None:
        notes.append("no GPU observed and no VRAM budget: pass --gpu SIZE to ask about a card")
    if not observed.ollama_reachable:
        notes.append("Ollama's API did not answer: only models looked up in a registry are known")
    return tuple(notes)


def summary(advice: Advice, option: Option | None = None) -> str:
    """One sentence for a person: what fits, at what setting, beside what — and what does not."""
    o = option or advice.best
    if o is None:
        if advice.fits:
            return "the desired state is the best option that fits: no change proposed"
        return (
            "nothing fits: no quantization, context, KV cache type or one unpinned model brings the "
            "pinned set under the VRAM budget"
        )
    room = f"{format_bytes(o.needed)} of {format_bytes(o.limit or 0)}"
    if is_unpin(o):
        return f"unpinning `{o.model}` (it loads when asked, then expires) leaves the pinned set at {room}"
    beside = "beside the pinned set" if not o.pinned else "the pinned set"
    exact = "" if o.exact else ", size estimated from the tag"
    text = (
        f"`{o.candidate}` fits at num_ctx {o.num_ctx} with OLLAMA_KV_CACHE_TYPE {o.kv_type} "
        f"(~{format_bytes(o.own_total)}{exact}; {beside}: {room})"
    )
    blocked = advice.blocked
    if blocked is not None and option is None:
        text += (
            f"; `{blocked.candidate}` does not (~{format_bytes(blocked.own_total)}, "
            f"{format_bytes(blocked.needed)} needed)"
        )
    return text
