"""`reconciler doctor`: is this server ready for its desired state? (see checks.py)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from reconciler.doctor.checks import (
    CONFIG_DEFAULT,
    Check,
    Context,
    check_config,
    check_disk,
    check_docker,
    check_gpu,
    check_gpu_runtime,
    check_kamal,
    check_lan,
    check_ollama,
    check_openwebui,
    check_ports,
    check_registry,
    check_ssh,
    failed,
    passed,
)
from reconciler.errors import ReconcilerError

MARKS = {"pass": "[green]✔[/]", "fail": "[red]✘[/]", "skip": "[dim]–[/]"}


def _docker() -> tuple[Any, str | None]:
    import docker

    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except docker.errors.DockerException as exc:
        return None, str(exc).splitlines()[0][:300]
    return client, None


def run_doctor(
    load: Callable[[], Any],
    state_dir: Path,
    *,
    config_path: Path = CONFIG_DEFAULT,
    kamal: Callable[[], str] | None = None,
) -> list[Check]:
    """Every check, in order. `load` returns the DesiredState (or raises ReconcilerError)."""
    client, docker_error = _docker()
    try:
        desired = load()
    except ReconcilerError as exc:
        desired_check = failed("desired", "desired state", str(exc).splitlines()[0],
                               "fix the desired state (`reconciler validate`), or pass --repo")  # fmt: skip
        ctx = None
    else:
        desired_check = passed(
            "desired", "desired state", f"valid (revision {(desired.revision or 'working tree')[:12]})"
        )
        ctx = Context(desired, state_dir, client, config_path, kamal)
    if ctx is None:
        return [
            desired_check,
            _docker_only(client, docker_error),
            check_config(config_path),
        ]
    ctx.info = client.info() if client is not None else {}
    checks = [
        desired_check,
        check_docker(ctx, docker_error),
        check_gpu(ctx),
        check_gpu_runtime(ctx),
        check_disk(ctx),
        check_lan(ctx),
        check_ports(ctx),
        check_config(config_path),
        check_kamal(ctx),
        check_ssh(ctx),
        check_registry(ctx),
        check_ollama(ctx),
        check_openwebui(ctx),
    ]
    if client is not None:
        client.close()
    return checks


def _docker_only(client: Any, error: str | None) -> Check:
    if client is None:
        return failed("docker", "Docker engine", f"not reachable ({error})", "install and start Docker")
    version = client.version()
    return passed("docker", "Docker engine", f"Docker {version.get('Version', '?')}")


def to_json(checks: list[Check]) -> dict[str, Any]:
    return {
        "ok": all(c.ok for c in checks),
        "checks": [
            {"id": c.id, "title": c.title, "status": c.status, "detail": c.detail, "fix": c.fix}
            for c in checks
        ],
    }


def print_checks(checks: list[Check], console: Console) -> None:
    for c in checks:
        console.print(f"{MARKS[c.status]} {escape(c.title)}: {escape(c.detail)}", highlight=False)
        if c.fix:
            console.print(f"    [bold]fix[/]: {escape(c.fix)}", highlight=False)
    bad = [c for c in checks if not c.ok]
    if bad:
        console.print(f"[red]{len(bad)} of {len(checks)} checks failed[/]: {', '.join(c.id for c in bad)}")
    else:
        console.print(f"[green]all {len(checks)} checks passed[/]")
