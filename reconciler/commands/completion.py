"""`reconciler completion bash|zsh|fish`: the shell completion script (click's)."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL. Install it with, for bash:
    `reconciler completion bash > /etc/bash_completion.d/reconciler`; zsh: into a directory
    of your $fpath as `_reconciler`; fish: `~/.config/fish/completions/reconciler.fish`."""
    root = ctx.find_root()
    cls = get_completion_class(shell)
    assert cls is not None and root.command is not None
    click.echo(cls(root.command, {}, "reconciler", "_RECONCILER_COMPLETE").source())
