"""HTTP clients, made once and reused.

Building an SSL context loads the system CA bundle (40-75 ms here), and httpx does it for
every new client even for plain-HTTP addresses; one shared context and long-lived clients
keep a no-op reconcile cheap. A client for a plain-HTTP address (Ollama on loopback) gets a
context that trusts no certificate instead, which costs nothing to build: it never does TLS,
and if it ever were sent to an HTTPS address it would fail closed.
"""

from __future__ import annotations

import functools
import ssl

import httpx
import ollama


@functools.cache
def ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


@functools.cache
def _trusts_nothing() -> ssl.SSLContext:
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, with no CA loaded


def http_client(timeout: float, **kwargs: object) -> httpx.Client:
    return httpx.Client(timeout=timeout, verify=ssl_context(), **kwargs)  # type: ignore[arg-type]


def ollama_client(url: str, timeout: float | None) -> ollama.Client:
    plain = url.lower().startswith("http://")
    return ollama.Client(host=url, timeout=timeout, verify=_trusts_nothing() if plain else ssl_context())
