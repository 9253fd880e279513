"""Ollama model references, parsed and validated like Ollama's `types/model/name.go`.

A reference is `[host/][namespace/]model[:tag]`: three slash-separated parts are
host/namespace/model, two are namespace/model, one is the model. Defaults are
`registry.ollama.ai`, `library` and `latest`. Ollama compares names case-insensitively.
We are stricter than Ollama where that only rules out hostile input: no scheme,
no `..`, no whitespace or control characters, no shell metacharacters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_PART = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}(?::[0-9]{1,5})?$")
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")  # Ollama: no '.' in a namespace
_MODEL_RE = re.compile(rf"^{_PART}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_MAX_PART = 80
_MAX_HOST = 350


class InvalidReference(ValueError):
    """A string that Ollama would not accept as a model name."""


@dataclass(frozen=True, order=True)
class ModelRef:
    host: str
    namespace: str
    model: str
    tag: str

    @property
    def canonical(self) -> str:
        """Fully qualified, lower-cased: the identity used to compare models."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}".lower()

    @property
    def short(self) -> str:
        """How `ollama list` prints it: defaults left out."""
        name = f"{self.model}:{self.tag}"
        if self.namespace != DEFAULT_NAMESPACE or self.host != DEFAULT_HOST:
            name = f"{self.namespace}/{name}"
        if self.host != DEFAULT_HOST:
            name = f"{self.host}/{name}"
        return name

    @property
    def repository(self) -> str:
        return f"{self.namespace}/{self.model}"


def _check(kind: str, value: str, pattern: re.Pattern[str], limit: int) -> None:
    if not value:
        raise InvalidReference(f"the {kind} part is empty")
    if len(value) > limit:
        raise InvalidReference(f"the {kind} part is longer than {limit} characters")
    if ".." in value:
        raise InvalidReference(f"the {kind} part contains '..'")
    if not pattern.fullmatch(value):
        raise InvalidReference(
            f"the {kind} part may only contain letters, digits, '_', '-'"
            + (" and '.'" if kind != "namespace" else "")
            + (" (and ':port')" if kind == "host" else "")
            + ", starting with a letter or digit"
        )


def valid_port(port: str, host: str) -> bool:
    """True when `host` has no `:port`, or its port is 1-65535."""
    return ":" not in host or (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535)


def parse_ref(text: str) -> ModelRef:
    """Parse a model reference or raise InvalidReference saying what is wrong."""
    if not isinstance(text, str):
        raise InvalidReference("a model reference must be a string")
    if text != text.strip() or any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise InvalidReference("a model reference cannot contain spaces or control characters")
    if "://" in text:
        raise InvalidReference(
            "write the registry host without a scheme (e.g. myregistry:5000/library/phi3:mini);"
            " plain-HTTP registries are declared under ollama.yaml `registries` with insecure: true"
        )
    name, tag = text, DEFAULT_TAG
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        head, tag = text.rsplit(":", 1)
        name = head
    parts = name.split("/")
    if len(parts) > 3:
        raise InvalidReference("too many '/': the form is [host/][namespace/]model[:tag]")
    host, namespace = DEFAULT_HOST, DEFAULT_NAMESPACE
    if len(parts) == 3:
        host, namespace, model = parts
    elif len(parts) == 2:
        namespace, model = parts
    else:
        (model,) = parts
    _check("host", host, _HOST_RE, _MAX_HOST)
    if not valid_port(host.rpartition(":")[2], host):
        raise InvalidReference("the host's port must be 1-65535")
    _check("namespace", namespace, _NAMESPACE_RE, _MAX_PART)
    _check("model", model, _MODEL_RE, _MAX_PART)
    _check("tag", tag, _TAG_RE, _MAX_PART)
    return ModelRef(host=host, namespace=namespace, model=model, tag=tag)


def canonical(text: str) -> str:
    return parse_ref(text).canonical
