"""`reconciler observe [--json] [-o FILE]`: this server's observation, in the format
`plan --observed FILE` reads, so a laptop plans against the server's real state."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands.common import fail
from reconciler.errors import ReconcilerError


@click.command()
@click.option(
    "--repo",
    type=click.Path(path_type=Path, exists=True),
    envvar="RECONCILER_REPO",
    default="/srv/desired-state.git",
    show_default=True,
    help="The desired state that says what to observe (a bare repo's branch head, or a directory).",
)
@click.option("--rev", help="Observe for this commit of a git repo.")
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write it to this file."
)
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON (the default without -o).")
@click.option(
    "--state-dir", type=click.Path(path_type=Path), envvar="RECONCILER_STATE_DIR", help="State directory."
)
@click.option("--ollama-url", envvar="RECONCILER_OLLAMA_URL", help="Ollama API URL.")
def observe(
    repo: Path,
    rev: str | None,
    output: Path | None,
    as_json: bool,
    state_dir: Path | None,
    ollama_url: str | None,
) -> None:
    """Observe the server (the container, Ollama's models and what is loaded, GPUs, disk, the
    registry's manifests, OpenWebUI, the reconciler's memory) and changes nothing. Then, on any
    machine: `reconciler plan --repo DIR --observed FILE`. It holds names, sizes and hashes,
    never a secret."""
    from reconciler.cli import _load, _observe

    try:
        desired = _load(repo, rev)
        seen = _observe(desired, None, state_dir, ollama_url)
    except ReconcilerError as exc:
        fail(exc)
    text = seen.model_dump_json(indent=1)
    if output is not None:
        output.write_text(text + "\n")
        running = "running" if seen.container and seen.container.running else "not running"
        counts = f"{len(seen.models)} models, {len(seen.loaded)} loaded"
        click.echo(f"wrote {output}: container {running}, {counts}", err=as_json)
    if as_json or output is None:
        click.echo(text)
