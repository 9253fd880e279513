"""`reconciler status` for people."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from reconciler.desired.refs import InvalidReference, parse_ref
from reconciler.report.console import esc, say
from reconciler.report.status import ModelStatus, Status
from reconciler.units import format_bytes


def _b(value: int | None) -> str:
    return "—" if value is None else format_bytes(value)


def _short(name: str) -> str:
    try:
        return parse_ref(name).short
    except InvalidReference:
        return name


def _version(status: Status) -> str:
    if status.ollama_version is None:
        return "—"
    if status.ollama_supported is False:
        return f"{status.ollama_version} — NOT supported (oldest supported: {status.oldest_supported})"
    return f"{status.ollama_version} (supported; oldest supported: {status.oldest_supported})"


def _model_state(m: ModelStatus) -> str:
    state = []
    if m.pulling_percent is not None and not m.present:
        state.append(f"pulling {m.pulling_percent:.0f}%")
    state.append("present" if m.present else "missing")
    if m.unusable:
        state.append(f"unusable ({m.unusable})")
    if m.loading_seconds is not None and not m.loaded:
        state.append(f"loading {m.loading_seconds:.0f} s")
    if m.loaded:
        state.append(f"loaded as {_short(m.loaded_as)}" if m.loaded_as else "loaded")
    if m.pinned:
        state.append("pinned")
    if m.cached:
        state.append("cached for rollback")
    elif not m.desired:
        state.append("not managed")
    return ", ".join(state)


def _conditions(status: Status, console: Console) -> None:
    for c in status.conditions:
        mark = "[green]True[/]" if c.status else "False"
        text = f"  {esc(c.type):<12} {mark:<5} {esc(c.reason)}"
        say(
            console,
            text + (f": {esc(c.message)}" if c.message else "") + f"  (since {c.last_transition:%H:%M:%S})",
        )


def _digests(m: ModelStatus) -> str:
    """`sha256:1a2b3c4d5e6f (upstream same, 03:00)` — what runs and what the registry served."""
    if not m.digest:
        return "—"
    text = f"sha256:{m.digest[:12]}"
    if m.upstream_digest is None or m.upstream_checked_at is None:
        return text + (f" ({m.update_policy})" if m.update_policy else "")
    same = "same" if m.upstream_digest == m.digest else f"sha256:{m.upstream_digest[:12]}"
    return f"{text} (upstream {same}, {m.upstream_checked_at:%Y-%m-%d %H:%M})"


def _models(status: Status, console: Console) -> None:
    if not status.models:
        return
    table = Table("model", "state", "size", "VRAM", "digest (upstream, checked)")
    table.columns[0].overflow = "fold"
    for m in status.models:
        table.add_row(
            esc(_short(m.name)), esc(_model_state(m)), _b(m.size or None), _b(m.vram), esc(_digests(m))
        )
    say(console, table)
    for m in status.models:
        if m.update:
            say(console, f"  [cyan]{esc(_short(m.name))}[/]: {esc(m.update)}")


def _images(status: Status, console: Console) -> None:
    for image in status.images:
        seen = f"checked {image.checked_at:%Y-%m-%d %H:%M}" if image.checked_at else "not checked yet"
        what = image.update or (f"check failed: {image.error}" if image.error else "no newer release")
        say(console, f"image {esc(image.image)}: {esc(what)} ({seen})")


def _budgets(status: Status, console: Console) -> None:
    d, v = status.disk, status.vram
    say(
        console,
        f"disk: models {_b(d.get('models_bytes'))} of {_b(d.get('models_budget'))}, free {_b(d.get('free'))}",
    )
    say(
        console,
        f"vram: pinned ~{_b(v.get('pinned_estimate'))} of {_b(v.get('budget'))}, "
        f"in use {_b(v.get('gpu_used'))}"
        + (f", other processes {_b(v['other_processes'])}" if v.get("other_processes") else ""),
    )


def _openwebui(status: Status, console: Console) -> None:
    webui = status.openwebui
    if webui is None:
        return
    health = "healthy" if webui.get("healthy") else f"NOT answering ({webui.get('error')})"
    say(
        console,
        esc(
            f"openwebui: {health}, version {webui.get('version') or '?'}, "
            f"settings {str(webui.get('applied_settings_hash') or '—')[:12]}"
        ),
    )
    bases = ", ".join(f"{n} ({c} files)" for n, c in (webui.get("knowledge") or {}).items())
    say(console, f"  knowledge: {esc(bases or '—')}")
    say(console, f"  presets: {esc(', '.join(webui.get('presets') or []) or '—')}")


def print_status(status: Status, serve_pid: int | None, console: Console) -> None:
    running = f"serve running (pid {serve_pid})" if serve_pid else "serve is NOT running"
    say(console, f"[bold]reconciler[/] — {running}")
    if status.suspended is not None:
        resume = "`reconciler resume` ends it"
        say(console, f"[bold yellow]SUSPENDED[/] {esc(status.suspended.describe())} — {resume}")
    say(console, f"desired commit:      {esc((status.desired_revision or '—')[:12])}")
    say(console, f"last applied commit: {esc((status.last_applied_revision or '—')[:12])}")
    if status.updated_at:
        say(console, f"updated:             {status.updated_at:%Y-%m-%d %H:%M:%S %Z}")
    say(console, f"ollama:              {esc(_version(status))}")
    _conditions(status, console)
    _models(status, console)
    _budgets(status, console)
    _openwebui(status, console)
    _images(status, console)
    for note in status.notes:
        say(console, f"[yellow]note[/]: {esc(note)}")
    if status.last_error:
        say(console, f"[red]last error[/]: {esc(status.last_error)}")
    wrong = [c for c in status.conditions if c.type in ("Ready", "Stalled", "Degraded")]
    if status.last_error or any(c.status != (c.type == "Ready") for c in wrong):
        say(console, "check this server's prerequisites, each with its fix: [bold]reconciler doctor[/]")
