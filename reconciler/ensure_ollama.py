"""`reconciler ensure-ollama`, what the Kamal hooks run: make sure the Ollama container is up
on the hosts being deployed, and that OpenWebUI can reach it by the name `ollama`.

Kamal runs hooks on the machine that runs kamal (reference kamal.md §1), with the hosts in
`KAMAL_HOSTS`. For a host that is this machine the reconciler's own layers do the work: observe
the containers, plan what the hook makes sure of (the container action the planner would
choose, the network links, in pre-app-boot the published port freed) and run each action
through the one executor table; for another host the same command runs there over SSH, the
desired state on its stdin. It also runs as `python -m reconciler.ensure_ollama`, which is
what the hook scripts call.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import docker
import docker.errors

from reconciler.apply.context import ExecContext
from reconciler.apply.table import execute
from reconciler.desired.load import load_desired
from reconciler.desired.schema import DesiredState, KamalSpec
from reconciler.desired.source import DirSource, GitCommitSource
from reconciler.errors import ReconcilerError, TemporaryError
from reconciler.observe.docker import observe_container
from reconciler.observe.kamal import observe_kamal
from reconciler.observed import Observed
from reconciler.plan.container import container_action
from reconciler.plan.kamal import Hook, hook_actions
from reconciler.report.events import EventBus
from reconciler.state.store import StateStore

Event = Callable[[str, dict[str, Any]], None]
SNAPSHOT = Path(".kamal") / "reconciler-desired.json"
SSH_TIMEOUT_S = 300


class HookFailed(TemporaryError):
    """Ensuring the Ollama container on a host failed."""


@dataclass(frozen=True)
class SshConfig:
    """How to reach another host. `remote_command` is the reconciler there."""

    user: str = "root"
    port: int = 22
    keys: tuple[str, ...] = ()
    options: tuple[str, ...] = ("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new")
    remote_command: tuple[str, ...] = ("reconciler", "ensure-ollama")

    @classmethod
    def from_spec(cls, spec: KamalSpec, **overrides: Any) -> SshConfig:
        return cls(user=spec.ssh_user, port=spec.ssh_port, keys=tuple(spec.ssh_keys), **overrides)

    def argv(self, host: str, *args: str) -> list[str]:
        """`ssh` as an argument list. ssh hands the remote part to the remote login shell as
        one string, so each remote argument is quoted."""
        argv = ["ssh", "-p", str(self.port), *self.options]
        for key in self.keys:
            argv += ["-i", key]
        argv += ["-l", self.user, host.strip("[]"), shlex.join([*self.remote_command, *args])]
        return argv


@dataclass(frozen=True)
class HostResult:
    host: str
    remote: bool
    did: tuple[str, ...]


def is_local(host: str) -> bool:
    """Loopback, this machine's name, or an address bound on this machine."""
    name = host.strip("[]")
    if name in {"localhost", socket.gethostname(), socket.getfqdn()}:
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(ip), 0))
        except OSError:
            return False
    return True


def ensure_ollama_local(
    desired: DesiredState,
    client: docker.DockerClient,
    *,
    hook: Hook = "",
    ready_timeout: float = 60.0,
    on_event: Event | None = None,
    state_dir: Path | None = None,
) -> list[str]:
    """Observe this host's Ollama container and OpenWebUI's, plan what the hook makes sure of
    (plan/kamal.py hook_actions) and run it through the same executors a reconcile uses."""
    seen = observe_container(client, desired.ollama.container.name)
    kamal = observe_kamal(client, desired, (state_dir or Path.cwd()) / "tls")
    observed = Observed(container=seen, ollama_reachable=False, kamal=kamal)
    actions = hook_actions(desired, observed, container_action(desired, seen), hook)
    if not actions:
        return [f"container {desired.ollama.container.name} is running as desired"]
    events = EventBus(*([lambda e: on_event(str(e["event"]), e)] if on_event else []))
    with tempfile.TemporaryDirectory(prefix="rcl-hook-") as scratch:
        state = StateStore(state_dir or Path(scratch))
        ctx = ExecContext(
            desired, client, state, events, lambda: datetime.now(UTC), ready_timeout=ready_timeout
        )
        for action in actions:
            execute(action, ctx)
    return [f"{action.title()}: {action.reason}" for action in actions]


def ensure_ollama_remote(desired: DesiredState, host: str, ssh: SshConfig, hook: str = "") -> list[str]:
    argv = ssh.argv(host, "--state", "-", "--local", "--hosts", host, "--hook", hook)
    try:
        done = subprocess.run(
            argv,
            input=desired.model_dump_json(by_alias=True),
            capture_output=True,
            text=True,
            timeout=SSH_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HookFailed(f"{host}: ssh failed: {exc}") from exc
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0:
        err = (done.stderr.strip() or done.stdout.strip() or "(no output)").splitlines()[-5:]
        raise HookFailed(f"{host}: remote ensure-ollama exited {done.returncode}: " + " | ".join(err))
    return lines


def ensure_ollama_on_hosts(
    desired: DesiredState,
    hosts: Iterable[str],
    ssh: SshConfig,
    *,
    docker_client: docker.DockerClient | None = None,
    force_remote: bool = False,
    hook: Hook = "",
    ready_timeout: float = 60.0,
    on_event: Event | None = None,
) -> list[HostResult]:
    """Ensure the Ollama container on every host; stop at the first failure (HookFailed,
    or the container errors of ensure_container)."""
    results: list[HostResult] = []
    for host in dict.fromkeys(hosts):
        if not force_remote and is_local(host):
            client = docker_client or docker.from_env()
            try:
                did = ensure_ollama_local(
                    desired, client, hook=hook, ready_timeout=ready_timeout, on_event=on_event
                )
            finally:
                if docker_client is None:
                    client.close()
            results.append(HostResult(host, remote=False, did=tuple(did)))
        else:
            did = ensure_ollama_remote(desired, host, ssh, hook)
            results.append(HostResult(host, remote=True, did=tuple(did)))
    return results


def _load(state: str | None, repo: str | None, rev: str | None) -> DesiredState:
    state = state or os.environ.get("RECONCILER_STATE")
    repo = repo or os.environ.get("RECONCILER_REPO")
    rev = rev or os.environ.get("RECONCILER_REV")
    if state == "-":
        return DesiredState.model_validate_json(sys.stdin.read())
    if state:
        return DesiredState.model_validate_json(Path(state).read_text(encoding="utf-8"))
    if repo:
        source = GitCommitSource(Path(repo), rev) if rev else DirSource(Path(repo))
        return load_desired(source)
    if SNAPSHOT.is_file():  # kamal run by hand in the project directory
        return DesiredState.model_validate_json(SNAPSHOT.read_text(encoding="utf-8"))
    raise HookFailed(
        "no desired state: pass --repo/--state, set RECONCILER_REPO, or run in the Kamal project "
        f"directory the reconciler wrote (it holds {SNAPSHOT})"
    )


@click.command("ensure-ollama")
@click.option("--repo", help="Desired-state directory or git repo (default: $RECONCILER_REPO).")
@click.option("--rev", help="Commit of --repo to read (default: the working tree).")
@click.option("--state", help="Desired state as JSON: a file, or - for stdin.")
@click.option("--hosts", default="", help="Comma-separated hosts (Kamal's $KAMAL_HOSTS).")
@click.option("--local", "all_local", is_flag=True, help="Treat every host as this machine.")
@click.option(
    "--hook",
    type=click.Choice(["", "docker-setup", "pre-app-boot", "post-deploy"]),
    default="",
    help="The Kamal hook calling (pre-app-boot also frees a published port).",
)
@click.option("--ready-timeout", type=float, default=60.0, show_default=True)
def ensure_ollama(
    repo: str | None,
    rev: str | None,
    state: str | None,
    hosts: str,
    all_local: bool,
    hook: Hook,
    ready_timeout: float,
) -> None:
    """Make sure the Ollama container runs as desired on HOSTS (used by the Kamal hooks)."""
    prefix = f"[{hook}] " if hook else ""
    try:
        desired = _load(state, repo, rev)
        wanted = [h.strip() for h in hosts.split(",") if h.strip()]
        if not wanted:
            wanted = list(desired.openwebui.kamal.servers) if desired.openwebui else ["127.0.0.1"]
        ssh = SshConfig.from_spec(desired.openwebui.kamal) if desired.openwebui else SshConfig()
        if all_local:
            client = docker.from_env()
            try:
                did = ensure_ollama_local(desired, client, hook=hook, ready_timeout=ready_timeout)
            finally:
                client.close()
            results = [HostResult(h, False, tuple(did)) for h in wanted[:1]]
        else:
            results = ensure_ollama_on_hosts(desired, wanted, ssh, hook=hook, ready_timeout=ready_timeout)
    except (ReconcilerError, docker.errors.DockerException, ValueError, OSError) as exc:
        click.echo(f"{prefix}ensure-ollama failed: {exc}", err=True)
        raise SystemExit(1) from None
    for result in results:
        for line in result.did:
            click.echo(f"{prefix}{result.host}{' (ssh)' if result.remote else ''}: {line}")


if __name__ == "__main__":
    ensure_ollama()
