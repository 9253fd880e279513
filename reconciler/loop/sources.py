"""What makes `serve` reconcile: a push, a Docker event, a resync tick, SIGHUP.

Each source only puts a reason on the queue; the serve loop decides what to do.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from reconciler.clock import SYSTEM, Clock
from reconciler.labels import MANAGED
from reconciler.loop.queue import Trigger, TriggerQueue

_WRITES = {"created", "modified", "moved", "deleted", "closed"}


class _RefHandler(FileSystemEventHandler):
    def __init__(self, queue: TriggerQueue, branch: str) -> None:
        self.queue = queue
        self.names = {f"refs/heads/{branch}", "packed-refs"}

    def on_any_event(self, event: FileSystemEvent) -> None:
        # Reading a ref (git does, and so do we) fires open/close events: only writes count.
        if event.event_type not in _WRITES:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = raw.decode() if isinstance(raw, bytes) else str(raw)
            if any(path.endswith(name) for name in self.names):
                self.queue.put("push")
                return


def watch_refs(repo: Path, branch: str, queue: TriggerQueue) -> Any:
    """inotify (via watchdog) on the bare repo: a push is seen within milliseconds.

    Git updates a ref by writing `refs/heads/<branch>.lock` and renaming it, so the
    rename's destination is what we match."""
    observer = Observer()
    observer.schedule(_RefHandler(queue, branch), str(repo), recursive=True)
    observer.daemon = True
    observer.start()
    return observer


_HEAL_ON = {"die", "destroy", "stop", "kill", "oom", "health_status: unhealthy"}


def watch_docker(
    client: docker.DockerClient, queue: TriggerQueue, stop: threading.Event, watched: Callable[[], str | None]
) -> None:
    """Docker events of the managed Ollama container (`watched()` names it, as the newest
    desired state says) → an immediate reconcile (self-heal)."""

    def loop() -> None:
        delay = 1.0
        while not stop.is_set():
            try:
                stream = client.events(decode=True, filters={"type": "container", "label": f"{MANAGED}=1"})
                delay = 1.0
                for event in stream:
                    if stop.is_set():
                        break
                    name = (event.get("Actor") or {}).get("Attributes", {}).get("name")
                    if name == watched() and str(event.get("status") or event.get("Action")) in _HEAL_ON:
                        queue.put(Trigger("docker", str(event.get("status") or event.get("Action"))))
            except (docker.errors.DockerException, OSError, ValueError):
                queue.put(Trigger("docker", "reconnect"))
            stop.wait(delay)
            delay = min(delay * 2, 30.0)

    threading.Thread(target=loop, name="docker-events", daemon=True).start()


def resync_timer(
    queue: TriggerQueue, every: float, stop: threading.Event, jitter: float = 0.1, clock: Clock = SYSTEM
) -> None:
    """Periodic resync for drift nobody announced (a model deleted by hand)."""
    rng = random.Random()  # noqa: S311 - jitter, not security

    def loop() -> None:
        while not clock.wait(stop.wait, every * rng.uniform(1 - jitter, 1 + jitter)):
            queue.put("resync")

    threading.Thread(target=loop, name="resync", daemon=True).start()
