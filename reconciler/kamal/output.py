"""What Kamal says, read in one place (pure): its output is text, so this is the one module
that matches it; everything else asks these functions."""

from __future__ import annotations

import re

ERROR_LINES = 20
LOCK_MARKER = "Deploy lock found"
ROLLBACK_UNAVAILABLE = "is not available as a container"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_LOCK_VERSION = re.compile(r"^\s*Version:\s*(\S+)\s*$")


def clean(raw: str) -> str:
    """One output line without its newline and terminal colours."""
    return ANSI.sub("", raw.rstrip("\n"))


def lock_held(lines: list[str]) -> bool:
    """Kamal found someone's deploy lock and stopped."""
    return any(LOCK_MARKER in line for line in lines)


def lock_version(lines: list[str]) -> str | None:
    """The version in the lock details Kamal prints with "Deploy lock found"."""
    for line in lines:
        found = _LOCK_VERSION.match(line)
        if found:
            return found.group(1)
    return None


def rollback_unavailable(lines: list[str]) -> bool:
    """`kamal rollback` found no container of the version (Kamal pruned it meanwhile)."""
    return any(ROLLBACK_UNAVAILABLE in line for line in lines)


def error_lines(lines: list[str]) -> list[str]:
    """Kamal's own explanation: its final `ERROR (<exception>)` line and what follows, after
    the earlier ERROR lines (container logs, health log); else the last lines."""
    final = max((i for i, line in enumerate(lines) if "ERROR (" in line), default=None)
    if final is None:
        return lines[-ERROR_LINES:]
    tail = [line for line in lines[final:] if line.strip()][:ERROR_LINES]
    room = ERROR_LINES - len(tail)
    earlier = [line.strip() for line in lines[:final] if "ERROR" in line and line.strip() != "ERROR"]
    return (earlier[-room:] if room > 0 else []) + tail
