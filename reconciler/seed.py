"""What bootstrap changes in the example before it seeds a new desired-state repo: this server's
LAN addresses, `gpus: none` on a server without a GPU, and the SSH key (and port) Kamal uses to
reach the server itself. Line edits of the example's own files, so its comments stay; the result
is validated before it is committed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.desired.load import OLLAMA_FILE, OPENWEBUI_FILE, SERVER_FILE
from reconciler.errors import PermanentError


class SeedEditFailed(PermanentError):
    """The seed does not have the shape bootstrap edits (a hand-made seed, say)."""


@dataclass(frozen=True)
class SeedSettings:
    lan_addresses: tuple[str, ...] | None = None  # None: leave the seed's
    gpus_none: bool = False
    kamal_ssh_keys: tuple[str, ...] = ()
    kamal_ssh_port: int | None = None
    notes: list[str] = field(default_factory=list, compare=False)


def set_lan_addresses(text: str, addresses: tuple[str, ...]) -> str:
    lines = text.splitlines()
    block = [
        "lan_addresses:" + (" []  # none found: services bind to 127.0.0.1 only" if not addresses else "")
    ]
    block += [f"  - {a}   # detected on this server by bootstrap" for a in addresses]
    for i, line in enumerate(lines):
        if re.match(r"^lan_addresses\s*:", line):
            end = i + 1
            while end < len(lines) and re.match(r"^\s+(-|#)", lines[end]):
                end += 1
            return "\n".join([*lines[:i], *block, *lines[end:]]) + "\n"
    return text.rstrip("\n") + "\n" + "\n".join(block) + "\n"


def set_gpus_none(text: str) -> str:
    new, count = re.subn(
        r"(?m)^(\s+)gpus:\s*\S+.*$",
        r"\1gpus: none                     # no NVIDIA GPU here: Ollama on the CPU",
        text,
        count=1,
    )
    if count != 1:
        raise SeedEditFailed(f"{OLLAMA_FILE} has no container.gpus line to set to none")
    return new


def add_kamal_ssh(text: str, keys: tuple[str, ...], port: int | None) -> str:
    """Add ssh_keys (and ssh_port unless 22) to the kamal: section, making one when absent."""
    wanted = ([f"  ssh_keys: [{', '.join(keys)}]"] if keys else []) + (
        [f"  ssh_port: {port}"] if port is not None and port != 22 else []
    )
    lines = text.rstrip("\n").splitlines()
    header = next((i for i, line in enumerate(lines) if re.match(r"^kamal\s*:", line)), None)
    if header is None:
        head = "kamal:                      # how Kamal reaches this server (set up by bootstrap)"
        return "\n".join([*lines, head, *wanted]) + "\n"
    if lines[header].split(":", 1)[1].split("#")[0].strip():
        raise SeedEditFailed(
            f"{OPENWEBUI_FILE}: write its kamal: section as a block to let bootstrap add ssh_keys"
        )
    end = header + 1
    while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
        if re.match(r"^\s+ssh_(keys|port)\s*:", lines[end]):
            raise SeedEditFailed(f"{OPENWEBUI_FILE}: kamal.ssh_keys/ssh_port are set already; leave them out")
        end += 1
    return "\n".join([*lines[: header + 1], *wanted, *lines[header + 1 :]]) + "\n"


def customize(seed: Path, settings: SeedSettings) -> None:
    """Edit the copied seed in place."""
    if settings.lan_addresses is not None:
        path = seed / SERVER_FILE
        path.write_text(set_lan_addresses(path.read_text(), settings.lan_addresses))
    if settings.gpus_none:
        path = seed / OLLAMA_FILE
        path.write_text(set_gpus_none(path.read_text()))
    webui = seed / OPENWEBUI_FILE
    if webui.exists() and (settings.kamal_ssh_keys or settings.kamal_ssh_port not in (None, 22)):
        webui.write_text(add_kamal_ssh(webui.read_text(), settings.kamal_ssh_keys, settings.kamal_ssh_port))
