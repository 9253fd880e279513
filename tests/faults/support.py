"""What every fault case checks at its end: converged to the newest commit, nothing lost."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from typing import Any

import docker.errors
import httpx

from reconciler.report.eventlog import log_path
from reconciler.report.status import load_status
from tests.e2e.gitops import GitOps
from tests.e2e.stack import Stack

KiB = 1024


def volume_containers(stack: Stack) -> list[Any]:
    """Every container (running or not) that mounts the stack's models volume."""
    return list(stack.client.containers.list(all=True, filters={"volume": stack.volume}))


def full_downloads(stack: Stack, digests: list[str]) -> Counter[str]:
    """Registry GETs answered 200 (a whole blob) per digest; ranged resumes answer 206."""
    return Counter(
        {d: sum(1 for r in stack.registry.blob_requests(d) if r["status"] == 200) for d in digests}
    )


def read_status(ops: GitOps) -> dict[str, Any]:
    """status.json as `reconciler status --json` prints it (read in-process: polling the CLI
    costs a Python start each time)."""
    return dict(load_status(ops.state_dir).model_dump(mode="json"))


def wait_status(ops: GitOps, predicate: Any, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = read_status(ops)
        if predicate(last):
            return last
        time.sleep(0.05)
    raise AssertionError(f"status never matched; last: {last}")


def tags(stack: Stack) -> set[str]:
    try:
        return stack.tags()
    except (httpx.HTTPError, OSError, ValueError, KeyError):
        return set()


def assert_converged(ops: GitOps, sha: str, models: list[str], timeout: float = 60.0) -> dict[str, Any]:
    """The status says `sha` is applied and Ready, the models are there, the volume is intact
    and exactly one container uses it."""
    status = wait_status(
        ops,
        lambda s: (
            s.get("last_applied_revision") == sha
            and any(c["type"] == "Ready" and c["status"] for c in s.get("conditions", []))
        ),
        timeout,
    )
    present = tags(ops.stack)
    assert set(models) <= present, (models, present)
    try:
        ops.stack.client.volumes.get(ops.stack.volume)
    except docker.errors.NotFound:
        raise AssertionError("the models volume is gone") from None
    users = volume_containers(ops.stack)
    assert [c.name for c in users] == [ops.stack.name], [c.name for c in users]
    return status


def fake_events(stack: Stack) -> list[dict[str, Any]]:
    try:
        return stack.fake_events()
    except (httpx.HTTPError, ValueError, KeyError):
        return []


def clear_fake_events(stack: Stack) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.delete(f"{stack.url}/__fake/events", timeout=5)


def fault(stack: Stack, **spec: Any) -> None:
    httpx.post(f"{stack.url}/__fake/fault", json=spec, timeout=5).raise_for_status()


def clear_faults(stack: Stack) -> None:
    httpx.delete(f"{stack.url}/__fake/fault", timeout=5).raise_for_status()


class Tail:
    """Counts and reads the event log incrementally (the whole file is re-read only once)."""

    def __init__(self, ops: GitOps) -> None:
        self.path = log_path(ops.state_dir)
        self.offset = 0
        self.events: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return self.events
        cut = data.rfind(b"\n") + 1
        self.offset += cut
        for line in data[:cut].splitlines():
            try:
                self.events.append(json.loads(line))
            except ValueError:
                continue
        return self.events


def kill_when(
    ops: GitOps,
    tail: Tail,
    start: int,
    hit: Any,
    then: float = 0.0,
    timeout: float = 30.0,
    group: bool = False,
) -> None:
    """SIGKILL `serve` once an event after the `start`-th matches `hit` (or the reconcile
    converged first), `then` seconds later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = tail.poll()
        if any(hit(e) for e in events[start:]) or any(
            e["event"] == "reconcile.done" and e.get("result") == "converged" for e in events[start:]
        ):
            break
        time.sleep(0.01)
    time.sleep(then)
    ops.kill_serve(group=group)
