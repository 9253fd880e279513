"""What a message may show of a value (pure).

The rule for every message (errors, hints, notes, `--json`): a value that was refused is
never echoed — the file:line:column points at it. A value is shown only when it is a name
that passed its check (a model reference, a field name, a knowledge base), through `shown`,
which truncates it and hides anything shaped like a secret. `secret_shape` is also what the
loader uses to refuse a secret written into any field of the desired state.
"""

from __future__ import annotations

import re

SHOWN_LIMIT = 60

_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("an API key (sk-…)", r"\bsk-[A-Za-z0-9_-]{16,}"),
        ("a GitHub token", r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
        ("a Hugging Face token", r"\bhf_[A-Za-z0-9]{20,}"),
        ("an AWS access key", r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
        ("a Slack token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
        ("a GitLab token", r"\bglpat-[A-Za-z0-9_-]{20,}"),
        ("a Google API key", r"\bAIza[0-9A-Za-z_-]{35}"),
        ("a JSON web token", r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\."),
        ("a bearer token", r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}"),
        ("a private key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
        ("credentials in a URL (user:password@)", r"\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s?#@:]*:[^/\s?#@]+@"),
        ("a token in a URL (token@)", r"\b[A-Za-z][A-Za-z0-9+.-]*://[A-Za-z0-9_.~-]{20,}@"),
    )
)


def secret_shape(text: str) -> str | None:
    """What kind of secret `text` contains, or None. Known token formats and credentials in
    URLs only: no entropy guesses, so names and prose are never mistaken for keys."""
    for kind, pattern in _SHAPES:
        if pattern.search(text):
            return kind
    return None


def printable(text: str) -> str:
    """Control characters as escapes (`\\n`, `\\x1b`), so a value cannot move the cursor."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def shown(value: object, limit: int = SHOWN_LIMIT) -> str:
    """`value` quoted for a message: printable, at most `limit` characters, or a placeholder
    when it is shaped like a secret."""
    text = str(value)
    if secret_shape(text) is not None:
        return "(a value shaped like a secret, not shown)"
    text = printable(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"'{text}'"
