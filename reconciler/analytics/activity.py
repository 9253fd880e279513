"""Is anybody using Ollama? Judged from what `/api/ps` really shows (pure).

What `/api/ps` shows (v0.32.15 server/routes.go PsHandler over sched.go loadedModels): one
row per loaded runner — name, size, size_vram, context_length and `expires_at` — and nothing
about the requests themselves: not how many are running (runnerRef.refCount), not who sent
them, not when the last one ended, not the keep-alive it was given (sessionDuration). What
can be read from it, by how sched.go keeps `expiresAt`:

* when a request ends and the runner goes idle, expiresAt = now + sessionDuration
  (finishedReqCh), so **last use ≈ expires_at − keep-alive** — exactly for a pinned model
  (keep_alive −1 is MaxInt64 ns, ~292 years), and with OLLAMA_KEEP_ALIVE assumed for the
  others (a client that sends a shorter keep_alive of its own looks idle longer than it is);
* a request to a loaded runner stops its timer and leaves expiresAt alone
  (useLoadedRunner), so **an expires_at in the past on a listed runner** means a request has
  been running longer than the keep-alive;
* **an expires_at that changed between two looks** means a request ended in between;
* a runner on its first request has no expiresAt yet and `/api/ps` shows now + keep-alive
  (loadedModels), so **an expires_at moving with the clock** means it is loading or answering;
* a runner that **appears** between two looks was loaded by somebody;
* a pinned runner whose last use is the moment the reconciler's own warm load returned
  (`Memory.warmed_at`) has not been used by anybody since;
* v0.32.15's loadedModels takes each runner's refMu, which a load holds until the model is
  running: **a slow `/api/ps`** means a model is loading.

A request in flight on a runner that had gone idle is invisible until it ends; the benchmark
therefore looks again between and during its own requests, and NVML's utilisation (when a GPU
is visible) shows generation nobody announced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

FOREVER = timedelta(microseconds=(2**63 - 1) // 1000)  # keep_alive < 0: Go's MaxInt64 ns
PINNED_AFTER = timedelta(days=3650)
JITTER = timedelta(seconds=1)  # how far apart two readings of one expires_at may be and still agree
SLOW_PS_S = 3.0  # a /api/ps that takes longer is waiting for a load
GPU_BUSY_PERCENT = 15.0  # NVML utilisation that says something generates


class Why(StrEnum):
    IN_FLIGHT = "in_flight"  # expires_at passed while still listed: a long request holds it
    ANSWERED = "answered"  # expires_at moved: a request ended since the last look
    STARTING = "starting"  # expires_at moves with the clock: loading or answering its first request
    APPEARED = "appeared"  # loaded since the last look
    RECENT = "recent"  # used within the quiet period
    LOADING = "loading"  # /api/ps waited for a load
    GPU_BUSY = "gpu_busy"  # the GPU computes while the benchmark does not
    OURS_USED = "ours_used"  # somebody else used the model the benchmark is measuring
    OURS_GONE = "ours_gone"  # the benchmark's model was unloaded by somebody else


@dataclass(frozen=True)
class Row:
    """One `/api/ps` entry, as far as activity goes."""

    name: str
    expires_at: datetime | None


@dataclass(frozen=True)
class Look:
    """One reading of `/api/ps` (and of NVML's utilisation, when a GPU is visible)."""

    at: datetime
    rows: tuple[Row, ...]
    took_s: float = 0.0
    gpu_util: float | None = None


@dataclass(frozen=True)
class Ledger:
    """What the benchmark itself did: the runners it owns and the expiry its last request set."""

    expected: Mapping[str, datetime | None] = field(default_factory=dict)  # ours → expiry (None: in flight)
    computing: bool = False  # one of our requests runs now (the GPU is ours)
    warmed_at: Mapping[str, datetime] = field(default_factory=dict)  # the reconciler's own warm loads


@dataclass(frozen=True)
class InUse:
    model: str
    why: Why
    message: str


def last_used(row: Row, at: datetime, keep_alive_s: float) -> datetime | None:
    """When the runner last went idle: expires_at − its keep-alive (forever when pinned)."""
    if row.expires_at is None:
        return None
    pinned = row.expires_at - at > PINNED_AFTER
    return row.expires_at - (FOREVER if pinned else timedelta(seconds=keep_alive_s))


def judge(
    previous: Look | None, current: Look, ledger: Ledger, *, quiet_s: float, keep_alive_s: float
) -> list[InUse]:
    """Every sign that somebody else is using Ollama now (empty: nobody is, as far as it shows)."""
    found: list[InUse] = []
    before = {r.name: r for r in previous.rows} if previous else None
    if current.took_s > SLOW_PS_S:
        found.append(
            InUse(
                "",
                Why.LOADING,
                f"/api/ps took {current.took_s:.1f} s: Ollama is loading a model for somebody",
            )
        )
    for row in current.rows:
        if row.name in ledger.expected:
            found += _ours(row, before, ledger.expected[row.name])
        else:
            found += _theirs(
                row, before, previous, current, quiet_s, keep_alive_s, ledger.warmed_at.get(row.name)
            )
    listed = {r.name for r in current.rows}
    for name, expected in ledger.expected.items():
        if name not in listed and before is not None and name in before and expected is not None:
            found.append(
                InUse(
                    name,
                    Why.OURS_GONE,
                    f"{name} was unloaded by somebody else (another model needed the memory?)",
                )
            )
    if current.gpu_util is not None and current.gpu_util >= GPU_BUSY_PERCENT and not ledger.computing:
        found.append(
            InUse(
                "", Why.GPU_BUSY, f"the GPU is {current.gpu_util:.0f} % busy while the benchmark waits (NVML)"
            )
        )
    return found


def _ours(row: Row, before: Mapping[str, Row] | None, expected: datetime | None) -> list[InUse]:
    if expected is None or row.expires_at is None:
        return []  # our own request is running on it
    if abs(row.expires_at - expected) > JITTER:
        return [
            InUse(
                row.name, Why.OURS_USED, f"somebody sent a request to {row.name} while it was being measured"
            )
        ]
    return []


def _theirs(
    row: Row,
    before: Mapping[str, Row] | None,
    previous: Look | None,
    current: Look,
    quiet_s: float,
    keep_alive_s: float,
    warmed_at: datetime | None,
) -> list[InUse]:
    name, now = row.name, current.at
    if before is not None and name not in before:
        return [InUse(name, Why.APPEARED, f"{name} was loaded by somebody")]
    if row.expires_at is None:
        return []
    if row.expires_at < now - JITTER:
        return [InUse(name, Why.IN_FLIGHT, f"{name} is answering a request (it outlasted its keep-alive)")]
    old = before.get(name) if before is not None else None
    if old is not None and old.expires_at is not None and previous is not None:
        moved = row.expires_at - old.expires_at
        if abs(moved - (now - previous.at)) <= JITTER and moved > JITTER:
            return [InUse(name, Why.STARTING, f"{name} is loading or answering its first request")]
        if abs(moved) > JITTER:
            return [InUse(name, Why.ANSWERED, f"{name} answered a request since the last look")]
    used = last_used(row, now, keep_alive_s)
    if used is not None and warmed_at is not None and abs(used - warmed_at) <= JITTER:
        return []  # its last request was the reconciler's own warm load
    if used is not None and (now - used).total_seconds() < quiet_s:
        ago = max((now - used).total_seconds(), 0)
        return [InUse(name, Why.RECENT, f"{name} was used {ago:.0f} s ago (quiet period {quiet_s:.0f} s)")]
    return []
