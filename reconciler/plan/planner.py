"""plan(desired, observed) → Plan. Pure: no I/O, no clock, no randomness.

The order of actions is the order they are safe to run in: the container first
(everything else talks to it), then unloads and removals (free VRAM and disk), pulls,
derived models, warm loads, and OpenWebUI last.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from reconciler.desired.refs import canonical, parse_ref
from reconciler.desired.schema import DerivedModel, DesiredState, ModelSpec
from reconciler.observed import Architecture, Blob, InventoryEntry, LoadedObs, ModelObs, Observed
from reconciler.plan import bench as bench_plan
from reconciler.plan import vram
from reconciler.plan.actions import (
    Action,
    Budget,
    CreateDerived,
    EnsureContainer,
    LoadModel,
    Plan,
    PullModel,
    RemoveModel,
    RunBenchmark,
    UnloadModel,
    UpdateState,
    Violation,
    VramEstimate,
)
from reconciler.plan.container import container_action
from reconciler.plan.disk_budget import DiskPlan, plan_disk
from reconciler.plan.hashing import spec_hash
from reconciler.plan.host import lan_violations
from reconciler.plan.image_tags import effective, image_updates
from reconciler.plan.kamal import held_back, kamal_actions, link_actions
from reconciler.plan.notes import Note, note
from reconciler.plan.ollama_version import ServerDefaults, defaults_for, support
from reconciler.plan.openwebui import plan_openwebui
from reconciler.plan.people import login_violations
from reconciler.plan.updates import DiskRoom, pinned_missing, plan_updates
from reconciler.units import format_bytes
from reconciler.versions import show

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EVICTION_LIMIT = 3  # evictions of one pinned model within an hour before we stop re-warming it


@dataclass(frozen=True)
class _Ctx:
    desired: DesiredState
    observed: Observed
    since: str  # "desired since abc1234"
    defaults: ServerDefaults  # of the Ollama version the server reports (or the image pins)
    keys: dict[str, str]  # model → its weights digest (what Ollama keys a loaded copy by)
    advise: bool = True  # a VRAM refusal names the advisor's alternatives (off while it judges them)

    @property
    def present(self) -> dict[str, ModelObs]:
        return {m.name: m for m in self.observed.models}

    @property
    def inventory(self) -> dict[str, InventoryEntry]:
        return {e.name: e for e in self.observed.inventory}


def plan(desired: DesiredState, observed: Observed) -> Plan:
    return _plan(desired, observed, advise=True)


def plain_plan(desired: DesiredState, observed: Observed) -> Plan:
    """The plan without the advisor's alternatives in a VRAM refusal: what the advisor judges
    each of its options with (plan/advise.py)."""
    return _plan(desired, observed, advise=False)


def _plan(desired: DesiredState, observed: Observed, *, advise: bool) -> Plan:
    rev = desired.revision
    foreign = lan_violations(desired, observed) + login_violations(desired, observed)
    if foreign:
        return Plan(revision=rev, violations=tuple(foreign))
    moves, image_notes = image_updates(desired, observed, None)  # from the images as written
    written, desired = desired.ollama.container.image, effective(desired, observed)
    if moves:  # the next pass works from the moved images
        return Plan(revision=rev, actions=tuple(moves), notes=tuple(image_notes))
    image = desired.ollama.container.image
    since = f"desired since {rev[:7]}" if rev else "desired"
    ctx = _Ctx(desired, observed, since, defaults_for(None, image), observed.weights_keys(), advise)
    container = container_action(desired, observed.container)
    if container is not None and image != written:
        container = container.model_copy(update={"update_of": written})
    # The server's own version, unless the container is about to be (re)created from the image.
    version = observed.ollama_version if container is None or container.op == "start" else None
    ctx = replace(ctx, defaults=defaults_for(version, image))
    notes: list[Note] = list(image_notes)
    supported = support(version)
    if observed.ollama_reachable and not supported.supported and supported.message:
        notes.append(note("ollama_unsupported", supported.message))
    if not observed.ollama_reachable and container is None:
        notes.append(
            note("ollama_unreachable", "Ollama's API does not answer: models are planned once it does")
        )
    first = ([container] if container else []) + link_actions(desired, observed, container)
    kamal = kamal_actions(desired, observed, since)
    held = held_back(desired, observed)
    if held is not None:
        notes.append(held)
    webui, webui_notes = _openwebui(ctx, container, kamal)
    notes += webui_notes
    if not observed.ollama_reachable:
        return Plan(revision=rev, actions=tuple(first + kamal + webui), notes=tuple(notes))
    violations: list[Violation] = []
    states: list[UpdateState] = []
    model_actions, budget = _model_actions(ctx, container is not None, violations, notes, states)
    updates = tuple(states)
    if violations:
        return Plan(
            revision=rev, violations=tuple(violations), notes=tuple(notes), budget=budget, updates=updates
        )
    actions = first + model_actions + kamal + webui
    if not actions:  # converged: a benchmark that is due may run now
        benchmark = _bench_action(ctx, notes)
        actions = [benchmark] if benchmark else []
    return Plan(revision=rev, actions=tuple(actions), notes=tuple(notes), budget=budget, updates=updates)


def _derived_hash(d: DerivedModel) -> str:
    """What `ollama create` is given (pinning it changes nothing on disk)."""
    dumped = d.model_dump(mode="json", by_alias=True, exclude={"keep_loaded", "parameters"})
    return spec_hash({**dumped, "parameters": d.parameters.as_options()})


def derived_layer(d: DerivedModel) -> Blob:
    """The layers `ollama create` adds (system prompt, parameters, template), as one blob
    whose size is what they take on disk, give or take JSON framing."""
    params = str(d.parameters.as_options())
    size = len((d.system or "").encode()) + len((d.template or "").encode()) + len(params) + 64
    return Blob(digest=f"derived:{_derived_hash(d)}", size=size)


@dataclass(frozen=True)
class _ModelWork:
    """What the models need, before any budget is checked."""

    wanted: dict[str, ModelSpec]
    derived: dict[str, DerivedModel]
    broken: dict[str, ModelObs]  # present, but Ollama cannot use them
    to_pull: dict[str, tuple[Blob, ...]]
    to_create: dict[str, DerivedModel]
    corrupt: list[str]  # a blob Ollama cannot read: removed first, then pulled again
    undesired: list[str]
    managed: set[str]
    remove_now: list[str]
    cache: list[str]
    restores: list[Action]  # missing models pinned to a digest a rollback entry holds


def _to_pull(
    ctx: _Ctx,
    wanted: dict[str, ModelSpec],
    broken: dict[str, ModelObs],
    violations: list[Violation],
    restores: list[Action],
) -> dict[str, tuple[Blob, ...]]:
    remote = {r.name: r for r in ctx.observed.remote}
    to_pull: dict[str, tuple[Blob, ...]] = {}
    for name, spec in wanted.items():
        if name in ctx.present and name not in broken:
            continue
        if spec.digest is not None:
            restore, refused = pinned_missing(spec, remote.get(name), ctx.present)
            violations += [refused] if refused else []
            restores += [restore] if restore else []
            if restore is not None or refused is not None:
                continue
        if name in remote:
            to_pull[name] = remote[name].blobs
            continue
        why = ctx.observed.remote_errors.get(name, "not looked up")
        violations.append(
            Violation(
                budget="download_size",
                message=f"download size of {spec.name} is unknown ({why}); cannot check the disk budget",
            )
        )
    return to_pull


def _model_work(ctx: _Ctx, violations: list[Violation]) -> _ModelWork:
    desired, present, inventory = ctx.desired, ctx.present, ctx.inventory
    wanted = {canonical(m.name): m for m in desired.ollama.models}
    derived = {canonical(d.name): d for d in desired.ollama.derived}
    broken = {n: m for n, m in present.items() if m.broken is not None}
    restores: list[Action] = []
    to_pull = _to_pull(ctx, wanted, broken, violations, restores)
    removal = desired.ollama.removal
    managed = set(inventory) | (set(present) if removal.adopt_unmanaged else set())
    undesired = [n for n in present if n not in wanted and n not in derived]
    removable = [n for n in undesired if n in managed]
    lru = sorted(removable, key=lambda n: (inventory[n].last_used or _EPOCH) if n in inventory else _EPOCH)
    remove_now, cache = (lru, []) if removal.undesired == "remove" else ([], lru)
    stale = [n for n in derived if n in present and not _derived_ok(ctx, n, derived[n])]
    repulled = {canonical(d.from_) for d in derived.values()} & set(to_pull)
    to_create = {
        n: d
        for n, d in derived.items()
        if n not in present or n in stale or (n in broken and canonical(d.from_) in repulled)
    }
    # A blob Ollama has but cannot read is skipped by a pull (download.go: a cache hit), so a
    # model with one is removed first; a model with missing blobs only needs the pull.
    corrupt = sorted(n for n, m in broken.items() if not m.missing_blobs and (n in wanted or n in derived))
    return _ModelWork(
        wanted, derived, broken, to_pull, to_create, corrupt, undesired, managed, remove_now, cache, restores
    )


def _disk_plan(ctx: _Ctx, work: _ModelWork) -> DiskPlan:
    present, observed = ctx.present, ctx.observed
    new_blobs = dict(work.to_pull)
    for name, d in work.to_create.items():
        base = canonical(d.from_)
        base_blobs = present[base].blobs if base in present else work.to_pull.get(base, ())
        new_blobs[name] = (*base_blobs, derived_layer(d))
    disk_budget = ctx.desired.server.budgets.disk
    return plan_disk(
        {n: _on_disk(m) for n, m in present.items()},
        new_blobs,
        work.remove_now + [n for n in work.corrupt if n not in work.remove_now],
        work.cache,
        budget=disk_budget.models,
        free=observed.disk.free if observed.disk else None,
        min_free=disk_budget.min_free,
        partial=observed.disk.partial if observed.disk else None,
    )


def _model_actions(
    ctx: _Ctx, restarting: bool, violations: list[Violation], notes: list[Note], states: list[UpdateState]
) -> tuple[list[Action], Budget]:
    work = _model_work(ctx, violations)
    disk = _disk_plan(ctx, work)
    if ctx.observed.disk is None:
        notes.append(
            note("disk_unobserved", "free disk space was not observed: only the models budget is checked")
        )
    _disk_violations(ctx, disk, work.undesired, work.managed, violations, notes)
    groups = _groups(ctx, work.to_pull, notes)
    estimates, vram_limit = _vram_check(ctx, groups, violations, notes)
    disk_budget = ctx.desired.server.budgets.disk
    budget = Budget(
        disk_models_after=disk.models_after,
        disk_models_limit=disk_budget.models,
        disk_free_after=disk.free_after,
        disk_min_free=disk_budget.min_free,
        download_bytes=disk.download,
        vram_pinned=vram.pinned_total(estimates.values()),
        vram_limit=vram_limit,
        vram_estimates=tuple(estimates.values()),
        cached_models=tuple(disk.cached),
    )
    # Updates of present models: never while this plan pulls others, within what is left of the budget.
    busy = f"pulls of this commit run first ({', '.join(sorted(work.to_pull))})" if work.to_pull else None
    room = DiskRoom(disk.models_after, disk_budget.models, disk.free_after, disk_budget.min_free)
    updates = plan_updates(ctx.desired, ctx.observed, room, busy)
    violations.extend(updates.violations)
    states.extend(updates.states)
    if violations:
        return [], budget
    removed = {name for name, _, _ in disk.removed}
    unloads = _unload_actions(ctx, groups, removed, restarting)
    actions = [*unloads, *_removals(work, disk), *_pulls(ctx, work, disk), *_creates(ctx, work)]
    actions += work.restores + updates.actions
    unloading = {a.model for a in unloads if isinstance(a, UnloadModel)}
    actions += _load_actions(ctx, groups, estimates, restarting, unloading, notes)
    return actions, budget


def _removals(work: _ModelWork, disk: DiskPlan) -> list[Action]:
    actions: list[Action] = []
    for name, frees, evicted in disk.removed:
        if name in work.corrupt:
            reason = f"{work.broken[name].broken}; removed to be pulled again"
        elif evicted:
            reason = "evicted from the rollback cache (least recently used) to make room"
        else:
            reason = "no longer desired; removal policy is `remove`"
        actions.append(RemoveModel(model=name, frees_bytes=frees, eviction=evicted, reason=reason))
    return actions


def _pulls(ctx: _Ctx, work: _ModelWork, disk: DiskPlan) -> list[Action]:
    insecure = {r.host.lower() for r in ctx.desired.ollama.registries if r.insecure}
    actions: list[Action] = []
    for name in sorted(work.to_pull, key=lambda n: not work.wanted[n].keep_loaded):
        spec, broken = work.wanted[name], work.broken.get(name)
        why = "not present" if broken is None else f"present but unusable: {broken.broken}"
        actions.append(
            PullModel(
                model=spec.name,
                canonical=name,
                download_bytes=disk.downloads[name],
                insecure=parse_ref(spec.name).host.lower() in insecure,
                reason=f"{ctx.since}, {why}",
            )
        )
    return actions


def _creates(ctx: _Ctx, work: _ModelWork) -> list[Action]:
    actions: list[Action] = []
    for name, d in work.to_create.items():
        if name in work.broken:
            why = f"present but unusable: {work.broken[name].broken}"
        else:
            why = "not present" if name not in ctx.present else "its spec changed"
        actions.append(
            CreateDerived(
                model=d.name,
                canonical=name,
                from_model=d.from_,
                system=d.system,
                template=d.template,
                parameters=d.parameters.as_options(),
                spec_hash=_derived_hash(d),
                layer_bytes=derived_layer(d).size,
                reason=f"{ctx.since}, {why}",
            )
        )
    return actions


def _derived_ok(ctx: _Ctx, name: str, d: DerivedModel) -> bool:
    entry = ctx.inventory.get(name)
    model = ctx.present[name]
    return entry is not None and entry.digest == model.digest and entry.spec_hash == _derived_hash(d)


def _on_disk(m: ModelObs) -> tuple[Blob, ...]:
    """A model's blobs as they take disk space now (a missing one takes none)."""
    return tuple(b for b in m.blobs if b.digest not in m.missing_blobs)


def _disk_violations(
    ctx: _Ctx,
    disk: DiskPlan,
    undesired: list[str],
    managed: set[str],
    violations: list[Violation],
    notes: list[Note],
) -> None:
    """A plan that downloads nothing cannot break a budget; over budget already is a note."""
    budget = ctx.desired.server.budgets.disk
    over_models = disk.models_after > budget.models
    low_free = disk.free_after is not None and disk.free_after < budget.min_free
    if not (over_models or low_free):
        return
    unmanaged = [n for n in undesired if n not in managed]
    tail = ""
    if unmanaged:
        tail = (
            f"; models the reconciler does not manage take space too: {', '.join(unmanaged)}"
            " (remove them by hand or set removal.adopt_unmanaged)"
        )
    messages: list[tuple[str, int, int, str]] = []
    if over_models:
        text = f"models need {format_bytes(disk.models_after)} on disk, budget {format_bytes(budget.models)}"
        messages.append(("disk", disk.models_after, budget.models, text + tail))
    if low_free and disk.free_after is not None:
        left = format_bytes(max(disk.free_after, 0))
        minimum = format_bytes(budget.min_free)
        pulling = format_bytes(disk.download)
        if disk.resumed:
            pulling += f" ({format_bytes(disk.resumed)} of it already downloaded)"
        text = f"pulling {pulling} would leave {left} free, minimum {minimum}"
        messages.append(("free_space", budget.min_free - disk.free_after, budget.min_free, text + tail))
    if disk.download == 0:
        notes.extend(note("over_budget", f"over budget already (nothing to pull): {m[3]}") for m in messages)
        return
    pulls = tuple(sorted(disk.downloads.items(), key=lambda e: -e[1]))
    for kind, needed, limit, text in messages:
        violations.append(Violation(budget=kind, needed=needed, limit=limit, entries=pulls, message=text))


@dataclass(frozen=True)
class _Group:
    """Pinned models Ollama loads as one copy: they share a weights file (server/sched.go keys
    loaded runners by the model file; `/api/ps` lists the copy once, under the name that
    loaded it first). Usually one model; a derived model pinned with its base is two."""

    key: str  # the weights digest, or `name:<base>` while it is not known
    members: tuple[ModelSpec | DerivedModel, ...]
    source: str  # canonical name of the model whose weights these are
    num_ctx: int  # what the load asks for: the desired num_ctx, capped where Ollama caps it
    asked: int  # what the desired state asks for
    trained: int  # the model's trained context (0 = unknown)
    embedding: bool
    architecture: Architecture | None
    blobs: tuple[Blob, ...]

    @property
    def lead(self) -> ModelSpec | DerivedModel:
        return self.members[0]

    @property
    def names(self) -> set[str]:
        return {canonical(m.name) for m in self.members}

    @property
    def label(self) -> str:
        return " + ".join(m.name for m in self.members)


def _source(m: ModelSpec | DerivedModel) -> str:
    return canonical(m.from_ if isinstance(m, DerivedModel) else m.name)


def _vram_total(ctx: _Ctx) -> int | None:
    """The VRAM Ollama sees for its context default (none without GPU passthrough)."""
    if ctx.desired.ollama.container.gpus == "none":
        return None
    if ctx.observed.gpus:
        return sum(g.total for g in ctx.observed.gpus)
    return ctx.desired.server.budgets.vram.assume_gpu_total


def _asked_ctx(ctx: _Ctx, m: ModelSpec | DerivedModel) -> int:
    """The num_ctx a pinned model is loaded with: its own, a derived model's parameter, else
    its base's (they share one copy), else the server's default for its version."""
    if isinstance(m, ModelSpec) and m.num_ctx:
        return m.num_ctx
    if isinstance(m, DerivedModel):
        if m.parameters.num_ctx:
            return m.parameters.num_ctx
        base = next((b for b in ctx.desired.ollama.models if canonical(b.name) == canonical(m.from_)), None)
        if base is not None and base.num_ctx:
            return base.num_ctx
    return ctx.defaults.default_num_ctx(ctx.desired.ollama.container.env, _vram_total(ctx))


def _groups(ctx: _Ctx, to_pull: dict[str, tuple[Blob, ...]], notes: list[Note]) -> list[_Group]:
    keys, present = ctx.keys, ctx.present
    remote = {r.name: r for r in ctx.observed.remote}
    by_key: dict[str, list[ModelSpec | DerivedModel]] = {}
    for m in ctx.desired.ollama.all_models():
        if m.keep_loaded:
            source = _source(m)
            by_key.setdefault(keys.get(source, f"name:{source}"), []).append(m)
    groups = []
    for key, members in by_key.items():
        lead = members[0]
        source = _source(lead)
        seen = present.get(source)
        seen = seen if seen is not None and seen.broken is None else None
        far = remote.get(source)
        arch = seen.architecture if seen and seen.architecture else (far.architecture if far else None)
        embedding = (
            seen.embedding if seen and seen.capabilities is not None else bool(arch and arch.embedding_model)
        )
        asked = _asked_ctx(ctx, lead)
        trained = arch.context_length if arch else 0
        group = _Group(
            key=key,
            members=tuple(members),
            source=source,
            num_ctx=ctx.defaults.effective_num_ctx(asked, trained),
            asked=asked,
            trained=trained,
            embedding=embedding,
            architecture=arch,
            blobs=seen.blobs if seen else to_pull.get(source, ()),
        )
        groups.append(group)
        if group.num_ctx < asked:
            notes.append(
                note(
                    "num_ctx_capped",
                    f"{lead.name} was trained on {trained} tokens: Ollama {show(ctx.defaults.version)} caps "
                    f"num_ctx {asked} to {trained}, so it is planned and loaded with num_ctx {trained}",
                )
            )
        for other in members[1:]:
            if _asked_ctx(ctx, other) != asked:
                notes.append(
                    note(
                        "shared_copy_options",
                        f"{other.name} shares one loaded copy with {lead.name} (one weights file): it "
                        f"runs with num_ctx {group.num_ctx}, not the {_asked_ctx(ctx, other)} it asks for; "
                        "give them the same num_ctx",
                    )
                )
    return groups


def _vram_check(
    ctx: _Ctx, groups: list[_Group], violations: list[Violation], notes: list[Note]
) -> tuple[dict[str, VramEstimate], int | None]:
    env = ctx.desired.ollama.container.env
    estimates: dict[str, VramEstimate] = {}
    for g in groups:
        estimates[g.key] = vram.estimate(
            g.lead.name,
            g.blobs,
            g.architecture,
            num_ctx=g.num_ctx,
            num_parallel=1 if g.embedding else ctx.defaults.num_parallel(env),
            kv_type=env.OLLAMA_KV_CACHE_TYPE or "f16",
            flash_attention=env.OLLAMA_FLASH_ATTENTION,
            gpu_overhead=env.OLLAMA_GPU_OVERHEAD or 0,
            version=show(ctx.defaults.version),
        )
    for e in estimates.values():
        if not e.architecture_known:
            notes.append(
                note(
                    "vram_estimate_partial",
                    f"VRAM estimate of {e.model} leaves out its KV cache: architecture unknown until pulled",
                )
            )
    limit = _vram_limit(ctx)
    if limit is None:
        if estimates:
            notes.append(
                note("vram_unchecked", "no GPU observed and no VRAM budget set: the VRAM check was skipped")
            )
        return estimates, None
    total = vram.pinned_total(estimates.values())
    if total > limit:
        labels = {g.key: g.label for g in groups}
        entries = tuple(sorted(((labels[k], e.total) for k, e in estimates.items()), key=lambda x: -x[1]))
        listing = ", ".join(f"{n} {format_bytes(b)}" for n, b in entries)
        alternatives = _vram_alternatives(ctx) if ctx.advise else ()
        fits = (
            f"; fits instead: {'; '.join(alternatives)} (`reconciler advise` shows the edit)"
            if alternatives
            else ""
        )
        violations.append(
            Violation(
                budget="vram",
                needed=total,
                limit=limit,
                entries=entries,
                message=f"pinned models need {format_bytes(total)} of VRAM, "
                f"budget {format_bytes(limit)}: {listing}{fits}",
                alternatives=alternatives,
            )
        )
    return estimates, limit


REFUSAL_BUDGET = 32  # plans the advisor may judge for one refusal: a refused plan stays cheap
REFUSAL_MAX_PINNED = 6  # beyond this many pinned models the refusal lists none (`reconciler advise` does)


def _vram_alternatives(ctx: _Ctx) -> tuple[str, ...]:
    """The advisor's best fitting changes of each kind (another quantization named in
    benchmarks.candidates — sized from its tag here —, a smaller num_ctx, a quantized KV
    cache with flash attention, one model unpinned), with the numbers."""
    if sum(1 for m in ctx.desired.ollama.all_models() if m.keep_loaded) > REFUSAL_MAX_PINNED:
        return ()
    from reconciler.plan import advise  # only for a refusal: a plan that fits never needs it

    candidates = {
        name: [advise.Candidate(c) for c in others]
        for name, others in ctx.desired.ollama.benchmarks.candidates.items()
    }
    advice = advise.advise(
        ctx.desired,
        ctx.observed,
        check=plain_plan,
        candidates=candidates,
        pinned_only=True,
        budget=REFUSAL_BUDGET,
    )
    picks = list(dict.fromkeys(o for o in (advice.best, *advice.alternatives) if o is not None))
    return tuple(advise.summary(advice, o) for o in picks[:4])


def _vram_limit(ctx: _Ctx) -> int | None:
    budget = ctx.desired.server.budgets.vram
    gpus = ctx.observed.gpus
    count = max(len(gpus), 1)
    if budget.per_gpu is not None:
        return budget.per_gpu * count
    if gpus:
        return sum(max(g.total - budget.headroom, 0) for g in gpus)
    if budget.assume_gpu_total is not None:
        return max(budget.assume_gpu_total - budget.headroom, 0)
    return None


def _unload_actions(ctx: _Ctx, groups: list[_Group], removed: set[str], restarting: bool) -> list[Action]:
    """Unload what is about to be removed, and what the reconciler itself pinned for an earlier
    commit (its own record, `warmed`: a model that merely never expires — a person's, with a
    negative OLLAMA_KEEP_ALIVE — is not the reconciler's to unload)."""
    if restarting:
        return []
    keys = ctx.keys
    pinned = {g.key for g in groups}
    warmed = {keys.get(n, f"name:{n}") for n in ctx.observed.warmed}
    actions: list[Action] = []
    for loaded in ctx.observed.loaded:
        key = keys.get(loaded.name, f"name:{loaded.name}")
        if loaded.name in removed:
            actions.append(UnloadModel(model=loaded.name, reason="it is about to be removed"))
        elif key in warmed and key not in pinned:
            actions.append(
                UnloadModel(model=loaded.name, reason="pinned by an earlier commit, no longer keep_loaded")
            )
    return actions


def _load_actions(
    ctx: _Ctx,
    groups: list[_Group],
    estimates: dict[str, VramEstimate],
    restarting: bool,
    unloading: set[str],
    notes: list[Note],
) -> list[Action]:
    """Loads for pinned copies not loaded as wanted. A copy about to be unloaded (its name is
    being removed: `/api/ps` would go on listing it under the deleted name, which no longer
    says whose weights it holds) is loaded again under the pinned model's own name."""
    keys = ctx.keys
    wanted: list[tuple[_Group, str, bool]] = []
    staying = 0  # VRAM of pinned models that stay loaded as they are
    for g in groups:
        seen = None if restarting else ctx.observed.runner_of(g.source, keys)
        if seen is not None and seen.name in unloading:
            seen = None
        load = _why_load(ctx, g, seen, restarting, notes)
        if seen is not None and (load is None or not load[1]):
            staying += seen.size_vram
        if load is not None:
            wanted.append((g, *load))
    on_gpu = ctx.desired.ollama.container.gpus != "none"  # else Ollama runs on the CPU by choice
    room = vram.gpu_room(ctx.observed.gpus, ctx.observed.loaded) if on_gpu else None
    if room is not None and not restarting:
        notes.extend(_offloaded(ctx, groups, room))
    left = room.left_for(staying) if room is not None else 0
    actions: list[Action] = []
    for g, why, fresh in wanted:
        estimate = estimates[g.key].total
        need = estimate if fresh else 0
        margin = estimates[g.key].margin if fresh else 0  # left free beside it, not taken
        if room is not None:  # no GPU observed: only the budget check stands
            if need + margin > left:
                notes.append(_no_room(g.label, need + margin, left, room))
                continue
            left -= need
        actions.append(
            LoadModel(
                model=g.lead.name,
                canonical=canonical(g.lead.name),
                num_ctx=g.num_ctx,
                vram_estimate=estimate,
                embedding=g.embedding,
                shared_with=tuple(m.name for m in g.members[1:]),
                reason=f"{ctx.since}, {why}",
            )
        )
    return actions


def _why_load(
    ctx: _Ctx, g: _Group, seen: LoadedObs | None, restarting: bool, notes: list[Note]
) -> tuple[str, bool] | None:
    """Why pinned group `g` needs a load request and whether that takes fresh VRAM (a first
    load or a reload with another num_ctx); None when it is loaded as wanted or left alone."""
    evicted = next((e for e in ctx.observed.evictions if e.model in g.names), None)
    if seen is None and not restarting and evicted and evicted.count >= EVICTION_LIMIT:
        by = ", ".join(evicted.suspects) or "an unknown model"
        notes.append(
            note(
                "eviction_loop",
                f"{g.label} was evicted {evicted.count} times in the last hour (pushed out by {by}); "
                "not re-warming it to avoid a load/unload loop — unpin it, lower num_ctx, or pin "
                "fewer models so they fit beside what people use",
            )
        )
        return None
    if seen is None:
        why = "the container is being (re)started" if restarting else "pinned but not loaded"
        if evicted and not restarting:
            why += f" (evicted; {', '.join(evicted.suspects) or 'another model'} was loaded instead)"
        return why, True
    if seen.context_length is not None and seen.context_length != g.num_ctx:
        return f"loaded with num_ctx {seen.context_length}, want {g.num_ctx}", True
    if not seen.pinned:
        return "loaded but not pinned (it would expire)", False
    return None


def _holders(room: vram.GpuRoom) -> str:
    shown = ", ".join(f"pid {pid} {format_bytes(used)}" for pid, used in room.holders)
    return f" ({shown})" if shown else ""


def _no_room(model: str, need: int, left: int, room: vram.GpuRoom) -> Note:
    return note(
        "no_room",
        f"not warming {model}: it needs ~{format_bytes(need)} of VRAM and only {format_bytes(left)} "
        f"of the GPU's {format_bytes(room.total)} is left for Ollama; other processes hold "
        f"{format_bytes(room.others)}{_holders(room)} — it is warmed once they free the memory",
    )


def _offloaded(ctx: _Ctx, groups: list[_Group], room: vram.GpuRoom) -> list[Note]:
    """Pinned models Ollama could only partly fit on the GPU: reported, never reloaded
    (a reload into the same shortage would only churn)."""
    keys = ctx.keys
    notes = []
    for g in groups:
        m = ctx.observed.runner_of(g.source, keys)
        if m is None or not m.pinned or m.size <= 0 or m.size_vram >= m.size:
            continue
        notes.append(
            note(
                "offloaded",
                f"{g.label} runs {'partly ' if m.size_vram else ''}on the CPU: "
                f"{format_bytes(m.size_vram)} of {format_bytes(m.size)} is in VRAM; other processes hold "
                f"{format_bytes(room.others)} of the GPU's {format_bytes(room.total)}{_holders(room)} "
                f"— once they free memory, unload it "
                f"(`ollama stop {g.lead.name}`) and the reconciler warms it fully",
            )
        )
    return notes


BENCH_RETRY = timedelta(minutes=30)  # a benchmark deferred because people used Ollama: tried again after


def _bench_action(ctx: _Ctx, notes: list[Note]) -> RunBenchmark | None:
    """`benchmarks.on_change`: measure the listed models pulled or changed since their last
    benchmark, once the server has converged, inside the owner's window; then load the pinned
    set again (the loads are planned here, so the executor decides nothing)."""
    bench, seen = ctx.desired.ollama.benchmarks, ctx.observed.bench
    if not bench.on_change or seen is None or seen.clock is None:
        return None
    clock = seen.clock
    due = bench_plan.due(ctx.desired, ctx.observed, set(seen.benchmarked))
    deferred = {name: at for name, at in seen.deferred if clock - at < BENCH_RETRY}
    for t in (t for t in due if t.canonical in deferred):
        again = (deferred[t.canonical] + BENCH_RETRY).astimezone(clock.tzinfo)
        notes.append(note("benchmark_deferred", f"benchmark of {t.model} deferred: Ollama was in use; "
                          f"tried again after {again:%H:%M}"))  # fmt: skip
    due = [t for t in due if t.canonical not in deferred]
    if not due:
        return None
    names = ", ".join(t.model for t in due)
    if not bench_plan.window_open(bench.window, clock):
        why = f"benchmark of {names} is due (pulled or changed since it was last measured)"
        notes.append(note("benchmark_waiting", f"{why}: it runs in {bench_plan.window_label(bench.window)}"))
        return None
    return RunBenchmark(
        targets=tuple(due),
        restore=_restore_loads(ctx),
        reason=f"{ctx.since}, {names} not measured at {due[0].setting.label()} on this server "
        f"(benchmarks.on_change, {bench_plan.window_label(bench.window)})",
    )


def _restore_loads(ctx: _Ctx) -> tuple[LoadModel, ...]:
    """The pinned set's warm loads, as planned from nothing loaded (the benchmark unloads it)."""
    groups = _groups(ctx, {}, [])
    estimates, _ = _vram_check(replace(ctx, advise=False), groups, [], [])
    return tuple(
        LoadModel(
            model=g.lead.name,
            canonical=canonical(g.lead.name),
            num_ctx=g.num_ctx,
            vram_estimate=estimates[g.key].total,
            embedding=g.embedding,
            shared_with=tuple(m.name for m in g.members[1:]),
            reason=f"{ctx.since}, pinned: loaded again after the benchmark",
        )
        for g in groups
    )


def _openwebui(
    ctx: _Ctx, container: EnsureContainer | None, kamal: list[Action]
) -> tuple[list[Action], list[Note]]:
    """OpenWebUI's settings, unless this pass deploys it or (re)starts Ollama."""
    waiting = None
    if kamal:
        waiting = "once the new version answers"
    elif container is not None or not ctx.observed.ollama_reachable:
        waiting = "once Ollama answers (its files are embedded through Ollama)"
    return plan_openwebui(ctx.desired, ctx.observed, ctx.since, waiting=waiting)
