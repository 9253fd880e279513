"""How the reconciler reaches the server: clients, timeouts, the state directory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import httpx
import ollama

from reconciler.clock import SYSTEM, Clock
from reconciler.desired.schema import DesiredState
from reconciler.http import http_client, ollama_client
from reconciler.kamal.render import Timing
from reconciler.observe.server import Readers
from reconciler.openwebui.client import connect_desired
from reconciler.plan.container import container_spec, ready_url
from reconciler.plan.ollama_version import load_timeout_s
from reconciler.state.store import StateStore


@dataclass
class Runtime:
    docker: docker.DockerClient
    state: StateStore
    ollama_url: str | None = None  # default: the container's first published address
    api_timeout: float = 10.0
    pull_timeout: float = 120.0  # per read while streaming a pull
    registry_timeout: float = 20.0
    ready_timeout: float = 60.0
    kamal_timing: Timing | None = None  # Kamal's readiness/deploy timeouts (tests shorten them)
    # OpenWebUI's settings executor: the bytes of knowledge/<name>/<path> of the desired commit
    # (the DesiredState holds only their hashes), and where OpenWebUI answers (default: from
    # the exposure: http://127.0.0.1:<port>).
    read_knowledge: Callable[[str, str], bytes | None] | None = None
    openwebui_url: str | None = None
    clock: Clock = SYSTEM  # what observe, the events' times, the journal and serve read
    # `record: commit`: the desired-state repo and branch updates are committed to (set by serve).
    desired_repo: Path | None = None
    desired_branch: str = "main"
    _clients: dict[tuple[str, float | None], ollama.Client] = field(default_factory=dict, repr=False)
    _registry_http: httpx.Client | None = field(default=None, repr=False)
    _http: httpx.Client | None = field(default=None, repr=False)

    def ollama(
        self, url: str, *, pulling: bool = False, loading: DesiredState | None = None
    ) -> ollama.Client:
        """A long-lived client per (URL, timeout); pulls get the long read timeout, loads the
        load timeout of `loading`'s Ollama settings."""
        timeout: float | None = self.pull_timeout if pulling else self.api_timeout
        if loading is not None:
            timeout = self.load_timeout(loading)
        key = (url, timeout)
        if key not in self._clients:
            self._clients[key] = ollama_client(url, timeout)
        return self._clients[key]

    @staticmethod
    def load_timeout(desired: DesiredState) -> float | None:
        """How long to wait for Ollama to load a model: twice its OLLAMA_LOAD_TIMEOUT plus a
        minute (11 min by default). Ollama gives up on a load that stalls that long itself, and
        aborts one whose client hangs up, so waiting less would fail loads Ollama would finish;
        None when OLLAMA_LOAD_TIMEOUT is 0 or negative (no limit in Ollama either)."""
        stall = load_timeout_s(desired.ollama.container.env)
        return None if stall is None else 2 * stall + 60

    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = http_client(self.api_timeout)
        return self._http

    def registry_http(self) -> httpx.Client:
        if self._registry_http is None:
            self._registry_http = http_client(self.registry_timeout, follow_redirects=False)
        return self._registry_http

    def readers(self, desired: DesiredState) -> Readers:
        """What the observers read the server through."""
        url = self.ollama_base(desired)
        return Readers(
            docker=self.docker,
            ollama_url=url,
            ollama=self.ollama(url),
            http=self.http(),
            registry_http=self.registry_http(),
            registry_timeout=self.registry_timeout,
            openwebui=lambda: connect_desired(
                desired, self.openwebui_url, self.api_timeout, self.state.root / "tls"
            ),
            tls_dir=self.state.root / "tls",
        )

    def ollama_base(self, desired: DesiredState) -> str:
        if self.ollama_url:
            return self.ollama_url.rstrip("/")
        return ready_url(container_spec(desired)).removesuffix("/api/version")
