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
    steps: list[tuple[str, str, Callable[[], Check]]] = [
        ("docker", "Docker engine", lambda: check_docker(ctx, docker_error)),
        ("gpu", "NVIDIA GPU (NVML)", lambda: check_gpu(ctx)),
        ("gpu-runtime", "GPU in containers", lambda: check_gpu_runtime(ctx)),
        ("disk", "free disk for the models", lambda: check_disk(ctx)),
        ("lan", "LAN addresses on this host", lambda: check_lan(ctx)),
        ("ports", "published ports free", lambda: check_ports(ctx)),
        ("config", "server settings", lambda: check_config(config_path)),
        ("kamal", "Kamal", lambda: check_kamal(ctx)),
        ("ssh", "SSH to the Kamal hosts", lambda: check_ssh(ctx)),
        ("registry", "image registry", lambda: check_registry(ctx)),
        ("ollama", "Ollama", lambda: check_ollama(ctx)),
        ("openwebui", "OpenWebUI", lambda: check_openwebui(ctx)),
    ]
    checks = [desired_check, *(_guarded(*step) for step in steps)]
    if client is not None:
        client.close()
    return checks


def _guarded(id_: str, title: str, run: Callable[[], Check]) -> Check:
    """A check that itself fails (the engine went away mid-check, say) is a failed check with
    the reason, never a traceback."""
    try:
        return run()
    except Exception as exc:  # doctor reports; it must never crash on the server it diagnoses
        why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        return failed(id_, title, f"the check itself failed ({why})", "run `reconciler doctor` again")


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
