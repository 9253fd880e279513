"""`reconciler advise`, end to end: candidates → measured figures → advice → the exact edit.

The advice itself is pure (plan/advise.py). This module gathers what it needs: each desired
model's other quantizations — the tags its registry lists (Docker Registry API
`tags/list`; registry.ollama.ai lists none) with the same stem (`8b-instruct-`), and those
named in `benchmarks.candidates` — their manifests and GGUF headers (the look-up `plan`
does before a pull), the latest benchmark of each model from the history, and, for the
proposal, the desired-state files, so the edit is made on the owner's own text and checked
by the loader and the planner before it is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from reconciler.analytics.history import History
from reconciler.desired.edit import Edit, EditImpossible, OverlaySource, apply, unified_diff
from reconciler.desired.load import load_desired
from reconciler.desired.refs import InvalidReference, parse_ref
from reconciler.desired.schema import DesiredState
from reconciler.desired.source import Source
from reconciler.errors import PermanentError, ReconcilerError
from reconciler.observe.registry import LookupFailed, list_tags, lookup_all
from reconciler.observed import Observed
from reconciler.plan.actions import Plan
from reconciler.plan.advise import (
    Advice,
    Candidate,
    Change,
    Check,
    Measured,
    Option,
    quant_of,
    tag_stem,
    without_lan,
)
from reconciler.plan.vram import weights_bytes

MAX_FILE = 1 * 2**20


@dataclass
class Gathered:
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _repo_name(name: str) -> str:
    """`llama3:8b-instruct-q4_K_M` → `llama3`, `host/ns/model:tag` → `host/ns/model`."""
    head, sep, tail = name.rpartition(":")
    return head if sep and "/" not in tail else name


def _valid(name: str) -> bool:
    try:
        parse_ref(name)
    except InvalidReference:
        return False
    return True


def gather(
    desired: DesiredState, observed: Observed, *, http: httpx.Client | None, timeout: float
) -> tuple[Gathered, Observed]:
    """The candidates of each desired model, and the observation with their manifests added.
    Without `http` (a recorded observation) only `benchmarks.candidates` and the manifests the
    observation already holds are known; the others are scaled from the tag."""
    found = Gathered()
    named = {k.lower(): v for k, v in desired.ollama.benchmarks.candidates.items()}
    present = {m.name for m in observed.models} | {r.name for r in observed.remote}
    for m in desired.ollama.models:
        names = list(named.get(m.name.lower(), []))
        stem = tag_stem(m.name)
        if http is not None and stem:
            try:
                tags = list_tags(parse_ref(m.name), desired.ollama.registries, client=http)
            except LookupFailed as exc:
                found.notes.append(f"{m.name}: its registry lists no tags ({exc.message}); compared with "
                                   "benchmarks.candidates only")  # fmt: skip
                tags = []
            names += [f"{_repo_name(m.name)}:{t}" for t in tags if t.startswith(stem) and quant_of(f"x:{t}")]
        unique = [n for n in dict.fromkeys(names) if n.lower() != m.name.lower() and _valid(n)]
        found.candidates[m.name] = [Candidate(n) for n in unique]
    if http is None:
        return found, observed
    return _look_up(desired, observed, found, present, http, timeout)


def _look_up(
    desired: DesiredState,
    observed: Observed,
    found: Gathered,
    present: set[str],
    http: httpx.Client,
    timeout: float,
) -> tuple[Gathered, Observed]:
    """The candidates' manifests and GGUF headers from their registries (as `plan` looks up a
    model before pulling it); a candidate the registry does not have is left out, with why."""
    refs = {c.name: parse_ref(c.name) for cands in found.candidates.values() for c in cands}
    wanted = [ref for ref in refs.values() if ref.canonical not in present]
    manifests, errors = lookup_all(wanted, desired.ollama.registries, timeout, client=http)
    for model, cands in found.candidates.items():
        for c in cands:
            why = errors.get(refs[c.name].canonical)
            if why:
                found.notes.append(f"{c.name} (a candidate for {model}) is not compared: {why}")
        found.candidates[model] = [c for c in cands if refs[c.name].canonical not in errors]
    looked_up = {m.name for m in manifests}
    remote = (*(r for r in observed.remote if r.name not in looked_up), *manifests)
    return found, observed.model_copy(update={"remote": remote})


def measured(history: History, observed: Observed) -> dict[str, Measured]:
    """The latest generation rate of each benchmarked model, with the weights it read."""
    sizes = {m.name: weights_bytes(m.blobs) for m in observed.models}
    found = {}
    for name, (run, result) in history.latest().items():
        if result.eval_tps is not None:
            found[name] = Measured(
                eval_tps=result.eval_tps.median,
                simulated=run.machine.simulated is not None,
                weights=sizes.get(name, 0),
            )
    return found


class ProposalInvalid(PermanentError):
    """The proposed edit does not load or still does not fit: a bug to report, not an edit to use."""


def edits_by_file(changes: tuple[Change, ...]) -> dict[str, list[Edit]]:
    files: dict[str, list[Edit]] = {}
    for c in changes:
        files.setdefault(c.file, []).append(Edit(c.path, c.new, key=c.key))
    return files


def proposal_diff(source: Source, changes: tuple[Change, ...], check: Check, observed: Observed) -> str:
    """The proposal as a diff of the desired-state files, after the loader and the planner agreed
    with the edited files (VRAM fits)."""
    edited: dict[str, str] = {}
    diff = []
    for name, edits in edits_by_file(changes).items():
        raw = source.read(name, MAX_FILE)
        if raw is None:
            raise ProposalInvalid(f"{name} is not in the desired-state repo")
        before = raw.decode()
        try:
            edited[name] = apply(before, edits)
        except EditImpossible as exc:
            raise ProposalInvalid(f"the edit cannot be made in {name}: {exc}; make it by hand") from None
        diff.append(unified_diff(name, before, edited[name]))
    try:
        after = load_desired(OverlaySource(source, edited))
    except ReconcilerError as exc:
        raise ProposalInvalid(f"the proposed edit does not validate: {exc}") from None
    plan: Plan = check(without_lan(after), observed)
    if any(v.budget == "vram" for v in plan.violations):
        raise ProposalInvalid("the proposed edit still does not fit the VRAM budget")
    return "".join(diff)


def _option(o: Option | None) -> dict[str, object] | None:
    if o is None:
        return None
    data: dict[str, object] = {k: v for k, v in vars(o).items() if k not in ("own", "changes", "measured")}
    data["own_vram"] = o.own_total
    data["changes"] = [{**vars(c), "path": list(c.path), "shown": c.shown()} for c in o.changes]
    data["measured_tps"] = o.measured.eval_tps if o.measured else None
    data["measured_simulated"] = o.measured.simulated if o.measured else None
    return data


def advice_json(advice: Advice) -> dict[str, object]:
    return {
        "limit": advice.limit,
        "needed": advice.needed,
        "fits": advice.fits,
        "rows": [_option(o) for o in advice.rows],
        "best": _option(advice.best),
        "blocked": _option(advice.blocked),
        "alternatives": [_option(o) for o in advice.alternatives],
        "evictions": [
            {"model": e.model, "by": e.by, "count": e.count, "options": [_option(o) for o in e.options]}
            for e in advice.evictions
        ],
        "notes": list(advice.notes),
    }
