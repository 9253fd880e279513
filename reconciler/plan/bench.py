"""What a benchmark measures: which models, at which setting (pure: no I/O, no clock).

A model is measured at the setting the desired state gives it — its num_ctx (a derived
model's parameter, else its base's, else the server's default for its version), and the
server's OLLAMA_KV_CACHE_TYPE, OLLAMA_FLASH_ATTENTION and OLLAMA_NUM_PARALLEL — so the
figures are the ones people get. `due()` says which listed models a reconcile should
benchmark (`benchmarks.on_change`): those whose settings key (digest, setting, Ollama
version) has not been measured yet, when the owner's window is open.
"""

from __future__ import annotations

from datetime import datetime, time

from reconciler.analytics.results import Setting
from reconciler.desired.refs import InvalidReference, canonical
from reconciler.desired.schema import DerivedModel, DesiredState, ModelSpec
from reconciler.observed import ModelObs, Observed
from reconciler.plan.actions import BenchTarget as Target
from reconciler.plan.ollama_version import defaults_for


class NotBenchmarkable(ValueError):
    """A model the benchmark cannot measure; the message says why and what to do."""


def _spec(desired: DesiredState, name: str) -> ModelSpec | DerivedModel | None:
    return next((m for m in desired.ollama.all_models() if canonical(m.name) == name), None)


def num_ctx_for(desired: DesiredState, observed: Observed, name: str) -> int:
    """The num_ctx `name` is used with: its own, a derived model's parameter or its base's, else
    the server's default for the version it reports (OLLAMA_CONTEXT_LENGTH, then by VRAM)."""
    spec = _spec(desired, name)
    if isinstance(spec, ModelSpec) and spec.num_ctx:
        return spec.num_ctx
    if isinstance(spec, DerivedModel):
        if spec.parameters.num_ctx:
            return spec.parameters.num_ctx
        base = _spec(desired, canonical(spec.from_))
        if isinstance(base, ModelSpec) and base.num_ctx:
            return base.num_ctx
    env = desired.ollama.container.env
    defaults = defaults_for(observed.ollama_version, desired.ollama.container.image)
    vram = sum(g.total for g in observed.gpus) or desired.server.budgets.vram.assume_gpu_total
    return defaults.default_num_ctx(env, vram)


def setting_for(desired: DesiredState, observed: Observed, name: str, embedding: bool) -> Setting:
    env = desired.ollama.container.env
    defaults = defaults_for(observed.ollama_version, desired.ollama.container.image)
    return Setting(
        num_ctx=num_ctx_for(desired, observed, name),
        kv_type=env.OLLAMA_KV_CACHE_TYPE or "f16",
        flash_attention=env.OLLAMA_FLASH_ATTENTION,
        num_parallel=1 if embedding else defaults.num_parallel(env),
    )


def target(desired: DesiredState, observed: Observed, name: str) -> Target:
    """The benchmark of one present model; NotBenchmarkable when it is not there to measure."""
    try:
        key = canonical(name)
    except InvalidReference as exc:
        raise NotBenchmarkable(f"{name!r} is not a model reference: {exc}") from None
    present: dict[str, ModelObs] = {m.name: m for m in observed.models}
    model = present.get(key)
    if model is None:
        raise NotBenchmarkable(f"{name} is not on the server: pull it (or list it in ollama.yaml) first")
    if model.broken:
        raise NotBenchmarkable(f"{name} cannot be used: {model.broken}")
    return Target(
        model=name,
        canonical=key,
        digest=model.digest,
        setting=setting_for(desired, observed, key, model.embedding),
        embedding=model.embedding,
        family=model.family,
        parameter_size=model.parameter_size,
        quantization=model.quantization,
    )


def default_names(desired: DesiredState, observed: Observed) -> list[str]:
    """`benchmarks.models`, else every desired model that can generate."""
    listed = desired.ollama.benchmarks.models
    if listed:
        return list(listed)
    present = {m.name: m for m in observed.models}
    return [
        m.name
        for m in desired.ollama.all_models()
        if (seen := present.get(canonical(m.name))) is not None and not seen.embedding
    ]


def window_open(window: str | None, at: datetime) -> bool:
    """Is `at` (the server's local time) inside HH:MM-HH:MM? It may wrap midnight."""
    if window is None:
        return True
    start, end = (time.fromisoformat(part) for part in window.split("-"))
    now = at.time().replace(second=0, microsecond=0, tzinfo=None)
    return start <= now < end if start < end else now >= start or now < end


def due(desired: DesiredState, observed: Observed, benchmarked: set[str]) -> list[Target]:
    """The listed models an on_change benchmark should measure now: present, usable, and not
    measured at their current settings key."""
    bench = desired.ollama.benchmarks
    if not bench.on_change:
        return []
    found = []
    for name in bench.models:
        try:
            t = target(desired, observed, name)
        except NotBenchmarkable:
            continue  # not pulled yet: it is due once it is
        if t.key(observed.ollama_version) not in benchmarked:
            found.append(t)
    return found


def window_label(window: str | None) -> str:
    return f"benchmarks.window {window}" if window else "any time"
