"""What one benchmark measured, as frozen records (pure).

A `Sample` is one request: Ollama's own timing fields (api/types.go Metrics at v0.32.15,
nanoseconds) and the time to the first streamed token the client saw. A `CaseResult` is a
prompt's samples over the runs, summarized; a `ModelResult` is one model at one setting
(quantization, num_ctx, KV cache type, flash attention) with its cold loads and placement;
a `BenchRun` is one `reconciler bench` (or planned benchmark) with what identifies the
machine it ran on.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from reconciler.analytics.stats import Stat, rate, summarize

LONG = "long"  # the case name of the long prompt
EMBED = "embed"  # the case name of an embedding model's throughput


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Sample(_Frozen):
    """One request, as Ollama reported it (durations in ns) and as the client saw it."""

    case: str
    run: int
    ttft_s: float | None = None  # first streamed token, from sending the request (client clock)
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None

    @property
    def prompt_tps(self) -> float | None:
        if self.case == EMBED:  # /api/embed has no prompt_eval_duration: the request minus the load
            busy = (self.total_duration or 0) - (self.load_duration or 0)
            return rate(self.prompt_eval_count, busy)
        return rate(self.prompt_eval_count, self.prompt_eval_duration)

    @property
    def eval_tps(self) -> float | None:
        return rate(self.eval_count, self.eval_duration)


class CaseResult(_Frozen):
    case: str  # the prompt's name, `long`, or `embed`
    prompt_tokens: int = 0  # median prompt_eval_count
    ttft_s: Stat | None = None
    prompt_tps: Stat | None = None
    eval_tps: Stat | None = None

    @classmethod
    def of(cls, case: str, samples: list[Sample]) -> CaseResult:
        mine = [s for s in samples if s.case == case]
        tokens = summarize(s.prompt_eval_count for s in mine)
        return cls(
            case=case,
            prompt_tokens=int(tokens.median) if tokens else 0,
            ttft_s=summarize(s.ttft_s for s in mine),
            prompt_tps=summarize(s.prompt_tps for s in mine),
            eval_tps=summarize(s.eval_tps for s in mine),
        )


class Setting(_Frozen):
    """What a measurement depends on besides the hardware."""

    num_ctx: int
    kv_type: str = "f16"  # OLLAMA_KV_CACHE_TYPE the server runs with
    flash_attention: bool | None = None  # OLLAMA_FLASH_ATTENTION (None: the version's default)
    num_parallel: int = 1

    def label(self) -> str:
        fa = {True: "on", False: "off", None: "auto"}[self.flash_attention]
        return f"num_ctx {self.num_ctx}, KV {self.kv_type}, flash attention {fa}"


class ModelResult(_Frozen):
    model: str  # canonical name
    name: str = ""  # as the desired state or the command line wrote it
    digest: str = ""  # the manifest digest Ollama lists (/api/tags)
    family: str = ""
    parameter_size: str = ""
    quantization: str = ""
    embedding: bool = False
    setting: Setting
    load_s: Stat | None = None  # cold load: Ollama's load_duration of the first request after an unload
    size: int = 0  # /api/ps size while it ran
    size_vram: int = 0  # /api/ps size_vram: the rest is on the CPU
    context_length: int | None = None  # /api/ps context_length (Ollama ≥ 0.9.7)
    gpu_used_max: int | None = None  # NVML: most GPU memory in use while it ran
    gpu_util_mean: float | None = None  # NVML: mean GPU utilisation (%) while it generated
    cases: tuple[CaseResult, ...] = ()
    samples: tuple[Sample, ...] = ()

    def case(self, name: str) -> CaseResult | None:
        return next((c for c in self.cases if c.case == name), None)

    @property
    def short_cases(self) -> tuple[CaseResult, ...]:
        return tuple(c for c in self.cases if c.case not in (LONG, EMBED))

    def _runs(self) -> dict[int, list[Sample]]:
        runs: dict[int, list[Sample]] = {}
        for s in self.samples:
            if s.case not in (LONG, "load"):
                runs.setdefault(s.run, []).append(s)
        return runs

    @property
    def eval_tps(self) -> Stat | None:
        """Generation tokens/s of each run over its short prompts (all tokens / all the time),
        summarized over the runs: the spread is run to run, not prompt to prompt."""
        return summarize(
            rate(sum(s.eval_count or 0 for s in run), sum(s.eval_duration or 0 for s in run))
            for run in self._runs().values()
        )

    @property
    def prompt_tps(self) -> Stat | None:
        if self.embedding:
            return summarize(s.prompt_tps for run in self._runs().values() for s in run)
        return summarize(
            rate(sum(s.prompt_eval_count or 0 for s in run), sum(s.prompt_eval_duration or 0 for s in run))
            for run in self._runs().values()
        )

    @property
    def ttft_s(self) -> Stat | None:
        """The median first-token time of each run's short prompts, over the runs."""
        medians = [summarize(s.ttft_s for s in run) for run in self._runs().values()]
        return summarize(m.median if m else None for m in medians)

    @property
    def shown(self) -> str:
        return self.name or self.model

    @property
    def on_cpu(self) -> int:
        return max(self.size - self.size_vram, 0)


def settings_key(model: str, digest: str, setting: Setting, ollama_version: str | None) -> str:
    """What a benchmark depends on, hashed: a model is benchmarked again when it changes."""
    data = {"model": model, "digest": digest, **setting.model_dump(), "version": ollama_version or ""}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class Machine(_Frozen):
    """What the figures were measured on."""

    ollama_version: str | None = None
    simulated: str | None = None  # the server says its figures are simulated (and how): see bench docs
    gpu_name: str | None = None
    gpu_driver: str | None = None
    gpu_total: int | None = None
    gpu_note: str | None = None  # why NVML saw no GPU


class BenchRun(_Frozen):
    id: int | None = None
    started_at: datetime
    finished_at: datetime | None = None
    revision: str | None = None  # the desired-state commit
    machine: Machine = Field(default_factory=Machine)
    status: Literal["completed", "interrupted", "busy", "failed"] = "completed"
    note: str = ""  # why it stopped (interrupted), or did not start (busy: people used Ollama)
    models: tuple[str, ...] = ()  # the models it was to measure (canonical)
    results: tuple[ModelResult, ...] = ()
