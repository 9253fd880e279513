"""What an executor is handed besides its action: the clients it acts through, where it
records what it did, and where it reports. Built by the reconcile (or the Kamal hooks) for one
pass; an executor never reaches past it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import docker
import ollama

from reconciler.desired.schema import DesiredState
from reconciler.errors import ReconcilerError
from reconciler.kamal.render import Timing
from reconciler.memory import Memory
from reconciler.openwebui.client import OpenWebUIClient, connect_desired
from reconciler.report.events import EventBus
from reconciler.state.store import StateStore

ReadFile = Callable[[str, str], bytes | None]  # (knowledge base, path in it) → bytes of the commit


class ExecutorUnavailable(ReconcilerError):
    """An action this installation cannot carry out: reported as a note (Degraded), not a failure."""


@dataclass(frozen=True)
class OllamaClients:
    """Ollama's API, with the read timeout each kind of call needs."""

    api: ollama.Client
    puller: ollama.Client  # the long per-read timeout of a streaming pull
    loader: ollama.Client  # waits as long as Ollama itself waits for a load
    load_timeout: float | None
    base_url: str = ""  # Ollama's API (the benchmark reads /api/version beside the client)


@dataclass
class ExecContext:
    desired: DesiredState
    docker: docker.DockerClient
    state: StateStore
    events: EventBus
    now: Callable[[], datetime]
    ollama: OllamaClients | None = None  # None where no Ollama action runs (the Kamal hooks)
    ready_timeout: float = 60.0
    api_timeout: float = 10.0
    kamal_timing: Timing | None = None
    read_knowledge: ReadFile | None = None
    openwebui_url: str | None = None
    container_id: str = ""  # where pinned models are warmed (eviction tracking); set by the container
    desired_repo: Path | None = None  # `record: commit`: the desired-state repo (serve's)
    desired_branch: str = "main"
    _openwebui: OpenWebUIClient | None = field(default=None, repr=False)

    @property
    def kamal_workdir(self) -> Path:
        return self.state.root / "kamal"

    def remember(self, change: Callable[[Memory], Memory]) -> None:
        self.state.update(change)

    def openwebui(self) -> OpenWebUIClient:
        """OpenWebUI's API, signed in as the desired state says (once per pass)."""
        if self._openwebui is None:
            self._openwebui = connect_desired(
                self.desired, self.openwebui_url, self.api_timeout, self.state.root / "tls"
            )
        return self._openwebui

    def clients(self) -> OllamaClients:
        if self.ollama is None:
            raise RuntimeError("an Ollama action was handed to a context without Ollama clients")
        return self.ollama
