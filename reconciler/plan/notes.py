"""What a plan (or a reconcile) says beside its actions: a note, typed by what it means.

A note's kind, never its text, decides what follows from it: whether the server is Degraded
(it works, but is short of what the commit asks for) and when `serve` comes back to look again
(a model waiting for memory other processes hold is warmed once they free it, not at the
next five-minute resync). Adding a kind means one line in `NoteKind` and one in `POLICY`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

NoteKind = Literal[
    # plan: Ollama
    "ollama_unreachable",  # its API does not answer: models are planned once it does
    "ollama_unsupported",  # older than the oldest version the reconciler supports
    "disk_unobserved",  # free space not observed: only the models budget is checked
    "over_budget",  # a budget is broken already, but nothing is pulled
    "num_ctx_capped",  # Ollama caps a num_ctx above the model's trained context
    "shared_copy_options",  # two pinned names on one loaded copy ask for different num_ctx
    "vram_estimate_partial",  # a model's KV cache is left out: its architecture is not known yet
    "vram_unchecked",  # no GPU and no VRAM budget: the VRAM check was skipped
    "eviction_loop",  # a pinned model evicted too often is left unloaded
    "no_room",  # a pinned model waits for VRAM other processes hold
    "offloaded",  # a pinned model runs partly on the CPU
    # plan: OpenWebUI
    "openwebui_unreachable",  # deployed but not answering: its settings are planned once it does
    "openwebui_waiting",  # its settings wait for the pass after a deploy, or for Ollama
    "openwebui_held_back",  # a version that did not become healthy is not deployed again
    # plan: images (updates.images: auto)
    "image_update_waiting",  # a newer release waits (outside the window, busy, committed already)
    "image_held_back",  # a release that did not start runs no more: the previous one does
    # plan: benchmarks
    "benchmark_waiting",  # a benchmark is due (benchmarks.on_change) and waits for benchmarks.window
    "benchmark_deferred",  # its last attempt found Ollama in use: it is tried again later
    # reconcile
    "not_implemented",  # an action this installation cannot carry out
    "models_unchecked",  # the container runs but Ollama's API does not answer
    "passes_exhausted",  # the plan was not empty after several passes
    "observe_failed",  # observing the server failed: nothing was planned
]


@dataclass(frozen=True)
class NotePolicy:
    degraded: bool = False  # the server works but is short of what the commit asks for
    requeue_after: float | None = None  # come back this soon (seconds) instead of at the resync


RECHECK_MEMORY_S = 30.0  # how soon a model waiting for VRAM is looked at again
RECHECK_OPENWEBUI_S = 15.0  # how soon OpenWebUI's settings are looked at again

POLICY: dict[NoteKind, NotePolicy] = {
    "ollama_unreachable": NotePolicy(),
    "image_update_waiting": NotePolicy(),
    "image_held_back": NotePolicy(),
    "ollama_unsupported": NotePolicy(degraded=True),
    "disk_unobserved": NotePolicy(),
    "over_budget": NotePolicy(degraded=True),
    "num_ctx_capped": NotePolicy(),
    "shared_copy_options": NotePolicy(degraded=True),
    "vram_estimate_partial": NotePolicy(),
    "vram_unchecked": NotePolicy(),
    "eviction_loop": NotePolicy(degraded=True),
    "no_room": NotePolicy(degraded=True, requeue_after=RECHECK_MEMORY_S),
    "offloaded": NotePolicy(degraded=True),
    "openwebui_unreachable": NotePolicy(degraded=True, requeue_after=RECHECK_OPENWEBUI_S),
    "openwebui_waiting": NotePolicy(requeue_after=RECHECK_OPENWEBUI_S),
    "openwebui_held_back": NotePolicy(degraded=True),
    "benchmark_waiting": NotePolicy(),
    "benchmark_deferred": NotePolicy(),
    "not_implemented": NotePolicy(degraded=True),
    "models_unchecked": NotePolicy(),
    "passes_exhausted": NotePolicy(),
    "observe_failed": NotePolicy(),
}


class Note(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    kind: NoteKind
    message: str

    def __str__(self) -> str:
        return self.message

    @property
    def degraded(self) -> bool:
        return POLICY[self.kind].degraded

    @property
    def requeue_after(self) -> float | None:
        return POLICY[self.kind].requeue_after


def note(kind: NoteKind, message: str) -> Note:
    return Note(kind=kind, message=message)


def requeue_after(notes: tuple[Note, ...] | list[Note]) -> float | None:
    """The soonest any note asks to be looked at again (None: at the resync)."""
    times = [n.requeue_after for n in notes if n.requeue_after is not None]
    return min(times) if times else None
