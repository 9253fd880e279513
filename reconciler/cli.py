"""The `reconciler` command line.

Exit codes: 0 ok (and, for `plan`, nothing to change) · 1 `plan` has changes ·
2 the desired state is invalid · 3 the plan is refused (a budget would break) ·
4 observing or changing the server failed · 64 usage error.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from reconciler import DISTRIBUTION
from reconciler.errors import (
    EXIT_CHANGES,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_RUNTIME,
    EXIT_USAGE,
    InvalidDesiredState,
    ObservationFailed,
    ReconcilerError,
)

# Commands import what they use when they run: the git hooks start this CLI on every
# push, and the Docker SDK, the ollama client and the pydantic models cost ~0.8 s to import.
if TYPE_CHECKING:
    from reconciler.desired.schema import DesiredState
    from reconciler.desired.source import Source
    from reconciler.observed import Observed
    from reconciler.reconcile import ReconcileReport
    from reconciler.report.events import EventBus
    from reconciler.runtime import Runtime

_REPO_HELP = "Desired-state repo: a directory, or a git repo (bare or not) read at --rev."
_STATE_HELP = "State directory (default $RECONCILER_STATE_DIR or /var/lib/reconciler)."
_URL_HELP = "Ollama API URL (default: the container's first published address)."


def _source(path: Path, rev: str | None) -> Source:
    from reconciler.desired.source import DirSource, GitCommitSource

    if rev is not None or ((path / "HEAD").is_file() and (path / "objects").is_dir()):
        return GitCommitSource(path, rev or "HEAD")
    return DirSource(path)


def _load(path: Path, rev: str | None, *, on_server: bool = False, note: bool = False) -> DesiredState:
    """Load with the one loader. Secret references are checked against this server's
    reconciler.toml when it exists, or always (`on_server`: apply, which resolves them, where
    a missing file allows none); on a laptop without it, only their form is checked."""
    from reconciler import serverconfig
    from reconciler.desired.load import load_desired

    policy = serverconfig.load_policy() if on_server or serverconfig.exists() else None
    if policy is None and note:
        click.echo(
            f"note: {serverconfig.config_path()} does not exist here: secret references were checked "
            "for their form only (the server checks them against its own)",
            err=True,
        )
    return load_desired(_source(path, rev), secrets=policy)


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)


def default_state_dir() -> Path:
    return Path(os.environ.get("RECONCILER_STATE_DIR", "/var/lib/reconciler"))


def _fail(exc: ReconcilerError, as_json: bool) -> NoReturn:
    if as_json and isinstance(exc, InvalidDesiredState):
        problems = [p.__dict__ for p in exc.problems]
        click.echo(dumps({"valid": False, "problems": problems}))
    else:
        click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


# Commands defined in their own modules, imported only when run (or listed by --help).
LAZY_COMMANDS = {
    "ensure-ollama": "reconciler.ensure_ollama:ensure_ollama",  # the Kamal hooks' command
    "wait": "reconciler.commands.wait:wait",
    "suspend": "reconciler.commands.suspend:suspend",
    "resume": "reconciler.commands.suspend:resume",
    "history": "reconciler.commands.history:history",
    "status": "reconciler.commands.status:status",
    "logs": "reconciler.commands.logs:logs",
    "completion": "reconciler.commands.completion:completion",
    "observe": "reconciler.commands.observe:observe",
}


class _Group(click.Group):
    """Adds the LAZY_COMMANDS without importing them up front."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS:
            import importlib

            module, _, attr = LAZY_COMMANDS[name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, name)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=DISTRIBUTION)
@click.option("-v", "--verbose", is_flag=True, help="More detail (`logs` shows progress ticks too).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings, errors and results.")
@click.option("--no-color", is_flag=True, help="No colours (as does the NO_COLOR environment variable).")
@click.pass_context
def main(ctx: click.Context, verbose: bool, quiet: bool, no_color: bool) -> None:
    """GitOps for a self-hosted LLM server: Ollama, its models and OpenWebUI, from a git repo.

    Exit codes: 0 ok/no changes, 1 plan has changes, 2 invalid desired state,
    3 plan refused (budget), 4 runtime failure (each command's --help lists its own).
    """
    ctx.obj = {"verbosity": -1 if quiet else (1 if verbose else 0)}
    if no_color:
        os.environ["NO_COLOR"] = "1"  # rich, in every console made after this, reads it


@main.command()
@click.argument("path", type=click.Path(path_type=Path, exists=True), default=".")
@click.option("--rev", help="Validate this commit of a git repo instead of the files on disk.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def validate(path: Path, rev: str | None, as_json: bool) -> None:
    """Check a desired state; print every problem with file:line:column, field and hint."""
    try:
        desired = _load(path, rev, note=not as_json)
    except ReconcilerError as exc:
        _fail(exc, as_json)
        return
    from reconciler.desired.advice import advice

    models = len(desired.ollama.all_models())
    warnings = advice(desired)
    if as_json:
        shown = [
            {"kind": w.kind, "file": w.file, "field": w.field, "message": w.message, "fix": w.fix}
            for w in warnings
        ]
        click.echo(dumps({"valid": True, "revision": desired.revision, "models": models, "warnings": shown}))
        return
    click.echo(f"ok: {path} is a valid desired state ({models} models)")
    for w in warnings:
        click.echo(f"warning: {w.file}: {w.field}: {w.message}\n    fix: {w.fix}", err=True)


@main.command()
@click.argument("file", required=False, type=click.Choice(["server.yaml", "ollama.yaml", "openwebui.yaml"]))
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write <file>.schema.json files into this directory instead of printing.",
)
def schema(file: str | None, out: Path | None) -> None:
    """Print the JSON Schema of FILE (all three, as one JSON object, without FILE).

    Editors that speak the YAML language server pick it up from the first line of each
    file: `# yaml-language-server: $schema=schema/ollama.schema.json`."""
    from reconciler.desired.docs import schemas

    texts = schemas()
    chosen = {file: texts[file]} if file else texts
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in chosen.items():
            target = out / name.replace(".yaml", ".schema.json")
            target.write_text(text)
            click.echo(f"wrote {target}")
    elif file:
        click.echo(texts[file], nl=False)
    else:
        click.echo(dumps({name: json.loads(text) for name, text in texts.items()}))


@main.command()
@click.option("--repo", type=click.Path(path_type=Path, exists=True), default=".", help=_REPO_HELP)
@click.option("--rev", help="Plan this commit of a git repo.")
@click.option(
    "--observed",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Plan against a recorded observation (JSON) instead of observing this server.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--state-dir", type=click.Path(path_type=Path), envvar="RECONCILER_STATE_DIR", help=_STATE_HELP)
@click.option("--ollama-url", envvar="RECONCILER_OLLAMA_URL", help=_URL_HELP)
def plan(
    repo: Path,
    rev: str | None,
    observed: Path | None,
    as_json: bool,
    state_dir: Path | None,
    ollama_url: str | None,
) -> None:
    """Show what apply would change, and why. Exit 0: nothing; 1: changes; 3: refused."""
    try:
        desired = _load(repo, rev)
        seen = _observe(desired, observed, state_dir, ollama_url)
    except ReconcilerError as exc:
        _fail(exc, as_json)
        return
    from reconciler.plan.planner import plan as make_plan
    from reconciler.report.console import make_console
    from reconciler.report.render import plan_to_json, print_plan

    result = make_plan(desired, seen)
    if as_json:
        click.echo(dumps(plan_to_json(result)))
    else:
        print_plan(result, make_console())
    if result.refused:
        sys.exit(EXIT_REFUSED)
    sys.exit(EXIT_CHANGES if result.actions else EXIT_OK)


def _runtime(state_dir: Path | None, ollama_url: str | None) -> Runtime:
    import docker

    from reconciler.runtime import Runtime
    from reconciler.state.store import StateStore

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as exc:
        raise ObservationFailed(f"cannot reach the Docker engine ({exc}); is dockerd running?") from None
    return Runtime(docker=client, state=StateStore(state_dir or default_state_dir()), ollama_url=ollama_url)


def _observe(
    desired: DesiredState, recorded: Path | None, state_dir: Path | None, url: str | None
) -> Observed:
    from pydantic import ValidationError

    from reconciler.observed import Observed

    if recorded is not None:
        try:
            return Observed.model_validate_json(recorded.read_text())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top)"
            raise ObservationFailed(
                f"{recorded}: not a recorded observation ({where}: {first['msg']})"
            ) from None
    from reconciler.analytics.history import with_benchmarks
    from reconciler.memory import with_memory
    from reconciler.reconcile import observe
    from reconciler.state.upstream import record_lookups

    at = datetime.now(UTC)
    runtime = _runtime(state_dir, url)
    memory, seen = observe(desired, runtime, at)
    # The look-ups just made are what `plan` reports (not saved: a plan changes nothing), and a
    # due benchmark is shown.
    observed = with_memory(seen, record_lookups(memory, seen, at), at)
    return with_benchmarks(observed, desired, runtime.state.root, at)


@main.command()
@click.option("--repo", type=click.Path(path_type=Path, exists=True), default=".", help=_REPO_HELP)
@click.option("--rev", help="Apply this commit of a git repo.")
@click.option("--dry-run", is_flag=True, help="Observe and plan, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Events as JSON lines on stdout.")
@click.option("--state-dir", type=click.Path(path_type=Path), envvar="RECONCILER_STATE_DIR", help=_STATE_HELP)
@click.option("--ollama-url", envvar="RECONCILER_OLLAMA_URL", help=_URL_HELP)
def apply(
    repo: Path, rev: str | None, dry_run: bool, as_json: bool, state_dir: Path | None, ollama_url: str | None
) -> None:
    """Converge the server once: load → observe → plan → execute → report.

    Writes the status `reconciler status` shows. Refuses while `serve` runs on the same
    state directory (push instead). Exit 0: converged (or, with --dry-run, nothing to do);
    1: --dry-run found changes; 2: invalid; 3: refused; 4: an action failed or serve runs.
    """
    from reconciler.desired.source import knowledge_reader
    from reconciler.reconcile import reconcile
    from reconciler.report.console import human, json_lines, make_console, structured
    from reconciler.report.events import EventBus

    try:
        desired = _load(repo, rev, on_server=True)
    except ReconcilerError as exc:
        _fail(exc, as_json)
    try:
        runtime = _runtime(state_dir, ollama_url)
    except ReconcilerError as exc:  # the engine does not answer: nothing observed, a failure
        if not dry_run:
            _record_failure(_state_dir(state_dir), desired, exc)
        _fail(exc, as_json)
    runtime.read_knowledge = knowledge_reader(lambda: _source(repo, desired.revision if rev else None))
    from reconciler.report.levels import quiet_filter

    quiet = (click.get_current_context().find_root().obj or {}).get("verbosity", 0) < 0
    if as_json:
        bus = EventBus(quiet_filter(json_lines(), quiet))
    elif sys.stdout.isatty():
        bus = EventBus(quiet_filter(human(make_console()), quiet))
    else:
        bus = EventBus(quiet_filter(structured(sys.stdout), quiet))
    _refuse_while_suspended(runtime.state.root, dry_run, as_json)
    if dry_run:
        report = reconcile(desired, runtime, bus, dry_run=True)
    else:
        report = _apply_locked(desired, runtime, bus, as_json)
    if report.result == "converged" and report.actions_run == 0 and not as_json:
        click.echo("no changes: the server already matches the desired state (0 mutating calls)")
    codes = {"converged": EXIT_OK, "degraded": EXIT_OK, "planned": EXIT_CHANGES, "refused": EXIT_REFUSED,
             "failed": EXIT_RUNTIME, "preempted": EXIT_RUNTIME}  # fmt: skip
    sys.exit(codes[report.result])


def _refuse_while_suspended(root: Path, dry_run: bool, as_json: bool) -> None:
    from reconciler.state.suspend import Suspended, load_suspension

    suspension = load_suspension(root)
    if suspension is not None and not dry_run:
        _fail(Suspended(f"the reconciler is {suspension.describe()}; `reconciler resume` first"), as_json)


def _apply_locked(desired: DesiredState, runtime: Runtime, bus: EventBus, as_json: bool) -> ReconcileReport:
    """Converge holding the state directory (never beside a `serve`), then write the status
    `reconciler status` shows."""
    from reconciler.loop.lock import ServeLock
    from reconciler.reconcile import reconcile, result_of, write_status
    from reconciler.state.reconciles import Recorder, history_path

    lock = ServeLock(runtime.state.root, role="apply")
    try:
        lock.acquire()
    except ReconcilerError as exc:
        _fail(exc, as_json)
    try:
        bus.subscribe(Recorder(history_path(runtime.state.root), default_trigger="apply"))
        report = reconcile(desired, runtime, bus)
        write_status(
            runtime.state.root,
            result=result_of(report),
            head=desired.revision,
            desired=desired,
            report=report,
            memory=runtime.state.load(),
            at=runtime.clock.now(),
        )
    finally:
        lock.release()
    return report


def _record_failure(state_dir: Path, desired: DesiredState, exc: ReconcilerError) -> None:
    """An `apply` that could not even observe the server still says so in its status (unless
    a `serve` or another `apply` holds the state directory: theirs is the status)."""
    from reconciler.loop.lock import ServeLock
    from reconciler.reconcile import write_status
    from reconciler.report.status import StatusResult
    from reconciler.state.store import StateStore

    lock = ServeLock(state_dir, role="apply")
    try:
        lock.acquire()
    except ReconcilerError:
        return
    try:
        result: StatusResult = "stalled" if exc.permanent else "failed"
        memory = StateStore(state_dir).load()
        write_status(
            state_dir, result=result, head=desired.revision, desired=desired, errors=[str(exc)], memory=memory
        )
    finally:
        lock.release()


# ─────────────────────────── the GitOps loop ───────────────────────────


def _state_dir(value: Path | None) -> Path:
    return value or default_state_dir()


@main.command()
@click.argument("repo", type=click.Path(path_type=Path), default="/srv/desired-state.git")
@click.option("--state-dir", type=click.Path(path_type=Path), envvar="RECONCILER_STATE_DIR", help=_STATE_HELP)
@click.option(
    "--seed",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Desired state to seed a new repo with (default: the example shipped with the package).",
)
@click.option("--branch", default="main", show_default=True)
@click.option(
    "--allowed-signers",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Only commits signed by a key in this SSH allowed_signers file are accepted and applied.",
)
@click.option("--lan-address", "lan", multiple=True, help="Seed server.yaml lan_addresses with these.")
@click.option("--no-lan", is_flag=True, help="Seed lan_addresses: [] (loopback only).")
@click.option(
    "--gpus-none", is_flag=True, help="Seed container.gpus: none (no NVIDIA GPU: Ollama on the CPU)."
)
@click.option("--kamal-ssh-key", "ssh_keys", multiple=True, help="Seed kamal.ssh_keys with this key file.")
@click.option("--kamal-ssh-port", "ssh_port", type=int, help="Seed kamal.ssh_port (when sshd is not on 22).")
def init(
    repo: Path,
    state_dir: Path | None,
    seed: Path | None,
    branch: str,
    allowed_signers: Path | None,
    lan: tuple[str, ...],
    no_lan: bool,
    gpus_none: bool,
    ssh_keys: tuple[str, ...],
    ssh_port: int | None,
) -> None:
    """Create (or adopt) the bare desired-state repo and install its git hooks.

    A new repo is seeded with the example (or --seed), edited for this server by the --lan-*,
    --gpus-none and --kamal-* options, and validated first. An existing repo is left as it is."""
    from reconciler.gitops import init_repo
    from reconciler.resources import example_desired_state
    from reconciler.seed import SeedSettings

    settings = SeedSettings(
        lan_addresses=() if no_lan else (tuple(lan) or None),
        gpus_none=gpus_none,
        kamal_ssh_keys=ssh_keys,
        kamal_ssh_port=ssh_port,
    )
    try:
        created = init_repo(
            repo,
            seed=seed or example_desired_state(),
            state_dir=_state_dir(state_dir),
            branch=branch,
            allowed_signers=allowed_signers,
            settings=settings,
        )
    except ReconcilerError as exc:
        _fail(exc, False)
        return
    verb = "created and seeded" if created else "adopted"
    click.echo(f"{verb} {repo}; hooks installed. Push to it: git remote add server <host>:{repo}")


@main.command()
@click.option("--repo", type=click.Path(path_type=Path, exists=True), required=True, help="The bare repo.")
@click.option("--branch", default="main", show_default=True)
@click.option("--state-dir", type=click.Path(path_type=Path), envvar="RECONCILER_STATE_DIR", help=_STATE_HELP)
@click.option("--ollama-url", envvar="RECONCILER_OLLAMA_URL", help=_URL_HELP)
@click.option("--resync", default=300.0, show_default=True, help="Seconds between periodic resyncs.")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port.")
@click.option("--metrics-addr", default="127.0.0.1", show_default=True, help="Metrics bind address.")
@click.option(
    "--stuck-after",
    default=3600.0,
    show_default=True,
    help="Under systemd: stop feeding the watchdog after this many seconds with no progress.",
)
def serve(
    repo: Path,
    branch: str,
    state_dir: Path | None,
    ollama_url: str | None,
    resync: float,
    metrics_port: int | None,
    metrics_addr: str,
    stuck_after: float,
) -> None:
    """Run the reconciler: on push, Docker events, a periodic resync and SIGHUP.

    Under systemd (Type=notify) it reports READY once serving and feeds the watchdog while
    its loop makes progress."""
    from reconciler.loop.serve import ServeConfig, Server
    from reconciler.report.console import structured
    from reconciler.report.eventlog import EventLog, log_path
    from reconciler.report.events import EventBus
    from reconciler.state.reconciles import Recorder, history_path

    try:
        runtime = _runtime(state_dir, ollama_url)
        journald = "JOURNAL_STREAM" in os.environ  # systemd: stderr goes to the journal
        bus = EventBus(EventLog(log_path(runtime.state.root)), structured(sys.stderr, priorities=journald))
        bus.subscribe(Recorder(history_path(runtime.state.root), default_trigger="serve"))
        server = Server(
            ServeConfig(
                repo=repo.resolve(),
                branch=branch,
                resync_seconds=resync,
                metrics_port=metrics_port,
                metrics_addr=metrics_addr,
                stuck_after=stuck_after,
            ),
            runtime,
            bus,
        )
        server.run()
    except ReconcilerError as exc:
        _fail(exc, False)


@main.command()
@click.option(
    "--repo",
    type=click.Path(path_type=Path),
    envvar="RECONCILER_REPO",
    default="/srv/desired-state.git",
    show_default=True,
    help="The desired state to check the server against (a bare repo's branch head, or a directory).",
)
@click.option("--rev", help="Check against this commit of a git repo.")
@click.option("--state-dir", type=click.Path(path_type=Path), envvar="RECONCILER_STATE_DIR", help=_STATE_HELP)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="RECONCILER_CONFIG",
    default="/etc/reconciler/reconciler.toml",
    show_default=True,
    help="The server's own settings file (never in git).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(repo: Path, rev: str | None, state_dir: Path | None, config_path: Path, as_json: bool) -> None:
    """Check every prerequisite of the desired state on this server, each with the fix.

    Docker, the GPU (NVML, driver, the NVIDIA runtime or CDI, the passthrough that works),
    free disk against the budgets, published ports, LAN addresses, Kamal, SSH to the Kamal
    hosts, the registry, Ollama's version, OpenWebUI. Changes nothing. Exit 0 only when every
    check passes (or is not needed); 1 when one fails."""
    from rich.console import Console

    from reconciler.doctor import print_checks, run_doctor, to_json
    from reconciler.errors import ObservationFailed as NoRepo

    def load() -> DesiredState:
        if not repo.exists():
            raise NoRepo(f"{repo} does not exist (bootstrap creates it; or pass --repo)")
        return _load(repo, rev)

    checks = run_doctor(load, _state_dir(state_dir), config_path=config_path)
    if as_json:
        click.echo(dumps(to_json(checks)))
    else:
        print_checks(checks, Console())
    sys.exit(EXIT_OK if all(c.ok for c in checks) else 1)


@main.command()
@click.argument("commit", required=False)
@click.option("--repo", type=click.Path(path_type=Path, exists=True), required=True, help="The bare repo.")
@click.option("--branch", default="main", show_default=True)
@click.option(
    "--to", "to", metavar="COMMIT", help="Bring the desired state back to COMMIT's, in one new commit."
)
def rollback(commit: str | None, repo: Path, branch: str, to: str | None) -> None:
    """Revert COMMIT (default: the latest) with a new commit and push it (history stays true);
    with --to, one new commit that restores COMMIT's whole desired state."""
    from reconciler.gitops import rollback as do_rollback
    from reconciler.gitops import rollback_to

    if to is not None and commit is not None:
        raise click.UsageError("give COMMIT (revert it) or --to COMMIT (go back to it), not both")
    try:
        sha = do_rollback(repo, commit, branch) if to is None else rollback_to(repo, to, branch)
    except ReconcilerError as exc:
        _fail(exc, False)
        return
    click.echo(f"pushed {'revert' if to is None else 'rollback'} commit {sha[:12]}")


# ─────────────────────────── benchmarks and the advisor ───────────────────────────


class _BenchGroup(click.Group):
    """`bench [MODEL…]` measures (the `run` subcommand); `bench report` shows the history."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@main.group(cls=_BenchGroup)
def bench() -> None:
    """Benchmark models on this server (`bench [MODEL…]`) and show the results (`bench report`)."""


def _bench_events(as_json: bool) -> EventBus:
    from reconciler.report.console import make_console, structured
    from reconciler.report.events import EventBus

    if as_json:
        return EventBus(structured(sys.stderr))
    from reconciler.report.bench_text import progress

    return EventBus(progress(make_console(stderr=True)))


@bench.command("run")
@click.argument("models", nargs=-1)
@click.option("--repo", type=click.Path(path_type=Path, exists=True), default=".", help=_REPO_HELP)
@click.option("--rev", help="Read the desired state at this commit.")
@click.option("--runs", type=click.IntRange(1, 20), help="Runs per model (default benchmarks.runs).")
@click.option(
    "--max-wait",
    type=click.FloatRange(0),
    help="Seconds to wait for nobody to use Ollama (default benchmarks.max_wait).",
)
@click.option("--json", "as_json", is_flag=True, help="The run as JSON on stdout (progress on stderr).")
@click.option("--state-dir", type=click.Path(path_type=Path), envvar="RECONCILER_STATE_DIR", help=_STATE_HELP)
@click.option("--ollama-url", envvar="RECONCILER_OLLAMA_URL", help=_URL_HELP)
def bench_run(
    models: tuple[str, ...],
    repo: Path,
    rev: str | None,
    runs: int | None,
    max_wait: float | None,
    as_json: bool,
    state_dir: Path | None,
    ollama_url: str | None,
) -> None:
    """Measure MODELs (default: benchmarks.models) one at a time, record the results and load
    the pinned models again. Waits while somebody uses Ollama; stops if a chat starts.
    Exit 0: measured; 4: busy, interrupted, or Ollama failed."""
    from reconciler.apply.bench import BenchOptions
    from reconciler.benchmark import bench as run_benchmark
    from reconciler.loop.lock import ServeLock

    try:
        desired = _load(repo, rev)
        runtime = _runtime(state_dir, ollama_url)
        lock = ServeLock(runtime.state.root, role="bench")
        lock.acquire()
    except ReconcilerError as exc:
        _fail(exc, False)
    try:
        options = BenchOptions.of(desired, runs=runs, max_wait_s=max_wait)
        report = run_benchmark(desired, runtime, list(models), _bench_events(as_json), options)
    except ReconcilerError as exc:
        _fail(exc, False)
    finally:
        lock.release()
    _bench_output(report, as_json)
    sys.exit(EXIT_OK if report.run.status == "completed" else EXIT_RUNTIME)


def _bench_output(report: Any, as_json: bool) -> None:
    if as_json:
        data = {
            "run": report.run.model_dump(mode="json"),
            "simulated": report.run.machine.simulated is not None,
            "skipped": report.skipped,
            "restored": report.restored,
            "restore_notes": report.restore_notes,
        }
        click.echo(dumps(data))
        return
    from reconciler.report.bench_text import print_run
    from reconciler.report.console import make_console

    console = make_console(width=None if sys.stdout.isatty() else 160)
    print_run(report.run, console)
    for why in report.skipped:
        click.echo(f"not measured: {why}", err=True)
    if report.restored:
        click.echo(f"pinned models loaded again: {', '.join(report.restored)}")
    for note in report.restore_notes:
        click.echo(f"pinned set not restored: {note}", err=True)


@bench.command("report")
@click.option(
    "--html",
    "html_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the HTML report here.",
)
@click.option("--json", "as_json", is_flag=True, help="Every run as JSON.")
@click.option("--state-dir", type=click.Path(path_type=Path), envvar="RECONCILER_STATE_DIR", help=_STATE_HELP)
def bench_report(html_file: Path | None, as_json: bool, state_dir: Path | None) -> None:
    """The latest result of each model as a table, and a self-contained HTML page with plots
    (tokens/s against VRAM per quantization, load times, history across commits and Ollama versions)."""
    from reconciler.analytics.history import History, history_path

    history = History(
        history_path(_state_dir(state_dir)), warn=lambda text: click.echo(f"warning: {text}", err=True)
    )
    runs = history.runs()
    if as_json:
        click.echo(dumps([run.model_dump(mode="json") for run in runs]))
    else:
        from reconciler.report.bench_html import latest_results
        from reconciler.report.bench_text import print_report
        from reconciler.report.console import make_console

        print_report(latest_results(runs), make_console(width=None if sys.stdout.isatty() else 160))
    if html_file is not None:
        from reconciler.report.bench_html import render_html

        html_file.write_text(render_html(runs))
        click.echo(f"wrote {html_file}", err=as_json)


@main.command()
@click.option("--repo", type=click.Path(path_type=Path, exists=True), default=".", help=_REPO_HELP)
@click.option("--rev", help="Advise on this commit of a git repo.")
@click.option("--gpu", "gpu_size", help="Plan as if the server had one GPU of this size (e.g. 8GiB, 12GB).")
@click.option(
    "--observed",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Advise against a recorded observation (JSON) instead of observing this server.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--state-dir", type=click.Path(path_type=Path), envvar="RECONCILER_STATE_DIR", help=_STATE_HELP)
@click.option("--ollama-url", envvar="RECONCILER_OLLAMA_URL", help=_URL_HELP)
def advise(
    repo: Path,
    rev: str | None,
    gpu_size: str | None,
    observed: Path | None,
    as_json: bool,
    state_dir: Path | None,
    ollama_url: str | None,
) -> None:
    """Which quantization, context and KV cache fit beside the pinned set, with the VRAM the
    planner estimates and the tokens/s benchmarked, and the best change as the exact YAML edit."""
    from reconciler.units import parse_bytes

    try:
        gpu = parse_bytes(gpu_size) if gpu_size else None
    except ValueError as exc:
        click.echo(f"error: --gpu {gpu_size!r}: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    try:
        desired = _load(repo, rev)
        seen = _observe(desired, observed, state_dir, ollama_url)
        source = _source(repo, desired.revision if rev else None)
        result = _advise(desired, seen, gpu, source, observed is None, state_dir)
    except ReconcilerError as exc:
        _fail(exc, as_json)
        return
    advice, diff, note = result
    if as_json:
        from reconciler.advisor import advice_json

        click.echo(dumps({**advice_json(advice), "diff": diff}))
        return
    from reconciler.report.advise_text import print_advice
    from reconciler.report.console import make_console

    print_advice(advice, diff, make_console(width=None if sys.stdout.isatty() else 160), note)


def _advise(
    desired: DesiredState,
    seen: Observed,
    gpu: int | None,
    source: Source,
    online: bool,
    state_dir: Path | None,
) -> tuple[Any, str | None, str]:
    from reconciler.advisor import gather, measured, proposal_diff
    from reconciler.analytics.history import History, history_path
    from reconciler.http import http_client
    from reconciler.plan.advise import advise as make_advice
    from reconciler.plan.advise import with_gpu
    from reconciler.plan.planner import plain_plan as check
    from reconciler.units import format_bytes

    note = ""
    if gpu is not None:
        seen = with_gpu(seen, gpu)
        note = f" (one GPU of {format_bytes(gpu)}, as asked)"
    http = http_client(20.0, follow_redirects=False) if online else None
    try:
        found, seen = gather(desired, seen, http=http, timeout=20.0)
    finally:
        if http is not None:
            http.close()
    history = History(history_path(_state_dir(state_dir)))
    advice = make_advice(
        desired, seen, check=check, candidates=found.candidates, measured=measured(history, seen)
    )
    advice = type(advice)(**{**vars(advice), "notes": (*advice.notes, *found.notes)})
    diff = proposal_diff(source, advice.best.changes, check, seen) if advice.best else None
    return advice, diff, note


@main.command(hidden=True)
@click.argument("which", type=click.Choice(["pre-receive", "post-receive"]))
@click.option("--repo", type=click.Path(path_type=Path), required=True)
@click.option("--state-dir", type=click.Path(path_type=Path), required=True)
@click.option("--branch", default="main")
@click.option(
    "--timeout",
    type=float,
    envvar="RECONCILER_PUSH_TIMEOUT",
    default=300.0,
    help="Most seconds the post-receive hook follows the reconcile.",
)
@click.option(
    "--budget",
    type=float,
    envvar="RECONCILER_HOOK_BUDGET",
    default=60.0,
    help="Most seconds the pre-receive hook spends validating one push.",
)
def hook(which: str, repo: Path, state_dir: Path, branch: str, timeout: float, budget: float) -> None:
    """Git hooks installed by `init` (not for direct use)."""
    from reconciler.gitops import post_receive, pre_receive

    if which == "pre-receive":
        sys.exit(pre_receive(repo, branch, sys.stdin, sys.stderr, budget_s=budget, state_dir=state_dir))
    sys.exit(post_receive(repo, state_dir, branch, sys.stdin, sys.stdout, timeout))


if __name__ == "__main__":
    main()
