"""HTTP clients, made once and reused.

Building an SSL context loads the system CA bundle (40-75 ms here), and httpx does it for
every new client even for plain-HTTP addresses; one shared context and long-lived clients
keep a no-op reconcile cheap.
"""

from __future__ import annotations

import functools
import ssl

import httpx
import ollama


@functools.cache
def ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def http_client(timeout: float, **kwargs: object) -> httpx.Client:
    return httpx.Client(timeout=timeout, verify=ssl_context(), **kwargs)  # type: ignore[arg-type]


def ollama_client(url: str, timeout: float | None) -> ollama.Client:
    return ollama.Client(host=url, timeout=timeout, verify=ssl_context())
