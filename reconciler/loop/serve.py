"""`reconciler serve`: decides when to run the same reconcile that `apply` runs once."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from reconciler.analytics.history import History, history_path
from reconciler.apply.runner import RunHooks
from reconciler.clock import Clock
from reconciler.desired.load import load_desired
from reconciler.desired.refs import canonical
from reconciler.desired.schema import DesiredState, NotifyTarget
from reconciler.desired.source import GitCommitSource, knowledge_reader
from reconciler.errors import InvalidDesiredState
from reconciler.loop.journal import Journal
from reconciler.loop.lock import ServeLock
from reconciler.loop.queue import Backoff, Trigger, TriggerKind, TriggerQueue
from reconciler.loop.sources import resync_timer, watch_docker, watch_refs
from reconciler.loop.systemd import Liveness, Systemd
from reconciler.notify.decide import decide
from reconciler.notify.outcomes import updates_done
from reconciler.notify.send import send
from reconciler.reconcile import ReconcileReport, reconcile, result_of, write_status
from reconciler.report import status as status_mod
from reconciler.report.bench_metrics import BenchCollector
from reconciler.report.events import Event, EventBus
from reconciler.report.metrics import Metrics
from reconciler.report.status import StatusResult
from reconciler.runtime import Runtime
from reconciler.serverconfig import ServerConfigInvalid, load_policy
from reconciler.signing import head_problem
from reconciler.state.suspend import Suspension, load_suspension


@dataclass
class ServeConfig:
    repo: Path
    branch: str = "main"
    resync_seconds: float = 300.0
    metrics_port: int | None = None
    metrics_addr: str = "127.0.0.1"
    # Leading edge + trailing edge: the first trigger reconciles at once; triggers within
    # this many seconds of the last start coalesce into one reconcile at the window's end.
    min_interval: float = 1.0
    # The systemd watchdog stops being fed after this long with no loop turn and no event.
    stuck_after: float = 3600.0


def branch_head(repo: Path, branch: str) -> str | None:
    import git

    try:
        with git.Repo(repo) as handle:
            return str(handle.commit(f"refs/heads/{branch}").hexsha)
    except (git.BadName, ValueError, git.GitCommandError):
        return None


class Server:
    def __init__(self, config: ServeConfig, runtime: Runtime, events: EventBus) -> None:
        self.config, self.runtime, self.events = config, runtime, events
        self.clock: Clock = runtime.clock
        runtime.desired_repo, runtime.desired_branch = config.repo, config.branch  # record: commit
        self.state_dir = runtime.state.root
        self.queue = TriggerQueue(self.clock)
        self.stop = threading.Event()
        self.journal = Journal(self.state_dir, self.clock)
        self.backoff = Backoff()
        self.metrics = Metrics()
        self.metrics.registry.register(BenchCollector(History(history_path(self.state_dir))))
        self.status = status_mod.load_status(self.state_dir)
        self._last_progress = 0.0
        self._last_start = -1e9
        self.container_name: str | None = None  # of the newest desired state, for Docker events
        self.liveness = Liveness(config.stuck_after, self.clock.monotonic)
        self.systemd = Systemd()
        self.notify_targets: list[NotifyTarget] = []
        events.subscribe(self._on_event)

    def run(self) -> None:
        lock = ServeLock(self.state_dir)
        lock.acquire()
        try:
            self._start_sources()
            self.queue.put("startup")
            self.systemd.ready(f"serving {self.config.repo} ({self.config.branch})")
            self.systemd.feed(self.liveness, self.stop, self._stuck)
            while not self.stop.is_set():
                self.liveness.beat()
                triggers = self.queue.get(timeout=1.0)
                if not triggers:
                    continue
                wait = self._last_start + self.config.min_interval - self.clock.monotonic()
                if wait > 0 and not self.clock.wait(self.stop.wait, wait):
                    triggers |= self.queue.drain()
                self._last_start = self.clock.monotonic()
                self.reconcile_once(triggers)
        finally:
            self.systemd.stopping()
            self.queue.close()
            lock.release()
            self.events.emit("serve.stopped")

    def _stuck(self, silent: float) -> None:
        self.events.emit("serve.stuck", silent_s=round(silent, 1), watchdog="no longer fed")

    def _start_sources(self) -> None:
        crashed = self.journal.recover()
        if crashed is not None:
            self.events.emit(
                "serve.recovered",
                action=crashed.action,
                kind=crashed.kind,
                revision=(crashed.revision or "")[:12],
                started_at=crashed.started_at.isoformat(),
            )
        watch_refs(self.config.repo, self.config.branch, self.queue)
        watch_docker(self.runtime.docker, self.queue, self.stop, lambda: self.container_name)
        resync_timer(self.queue, self.config.resync_seconds, self.stop, clock=self.clock)
        if self.config.metrics_port is not None:
            self.metrics.serve(self.config.metrics_port, self.config.metrics_addr)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, lambda *_: self.queue.put("sighup"))
            signal.signal(signal.SIGTERM, self._terminate)
            signal.signal(signal.SIGINT, self._terminate)
        self.events.emit("serve.started", repo=str(self.config.repo), branch=self.config.branch)

    def _terminate(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()
        self.queue.close()

    def reconcile_once(self, triggers: set[Trigger]) -> ReconcileReport | None:
        head = branch_head(self.config.repo, self.config.branch)
        self.events.emit("trigger", reasons=sorted(str(t) for t in triggers), head=(head or "")[:12])
        if head is None:
            self._reject(head, [f"branch {self.config.branch} has no commit yet"])
            return None
        unsigned = head_problem(self.config.repo, head)
        if unsigned is not None:
            self._reject(head, [unsigned])
            return None
        try:
            with GitCommitSource(self.config.repo, head) as source:
                desired = load_desired(source, secrets=load_policy())
        except InvalidDesiredState as exc:
            self._reject(head, [str(p) for p in exc.problems])
            return None
        except ServerConfigInvalid as exc:  # the owner's reconciler.toml, not the commit
            self._reject(head, [str(exc)])
            return None
        return self._reconcile(head, desired)

    def _reconcile(self, head: str, desired: DesiredState) -> ReconcileReport | None:
        self.container_name = desired.ollama.container.name
        self.runtime.read_knowledge = knowledge_reader(lambda: GitCommitSource(self.config.repo, head))
        suspension = load_suspension(self.state_dir)
        self.metrics.suspended(suspension)
        if suspension is not None:
            return self._suspended(head, desired, suspension)
        hooks = RunHooks(
            before=lambda a: self.journal.begin(head, a.title(), a.kind),
            after=lambda a: self.journal.end(),
            should_stop=lambda: self._newer_commit(head),
        )
        started = self.clock.monotonic()
        try:
            report = reconcile(desired, self.runtime, self.events, hooks=hooks)
        except Exception as exc:  # an unforeseen error must not end an unattended loop
            why = f"internal error: {type(exc).__name__}: {str(exc)[:300]}"
            self.events.emit("reconcile.done", revision=head[:12], result="failed", actions=0, notes=[why])
            delay = self._schedule(head, "retry", self.backoff.next_delay())
            self._save_status("failed", head, desired, None, [why], retry_in=delay)
            return None
        self.metrics.observe(
            report.result,
            self.clock.monotonic() - started,
            report.last_observed,
            self.clock.now().timestamp() if report.result == "converged" else None,
        )
        scheduled = next_run(report, self.backoff)
        after = self._schedule(head, *scheduled) if scheduled is not None else None
        self._save_status(result_of(report), head, desired, report, None, after if report.retrying else None)
        return report

    def _suspended(self, head: str, desired: DesiredState, suspension: Suspension) -> ReconcileReport | None:
        """Validated and recorded, observed and planned, never applied: the plan is the drift."""
        self.events.emit("reconcile.suspended", revision=head[:12], since=suspension.since.isoformat(),
                         reason=suspension.reason, by=suspension.by)  # fmt: skip
        try:
            report = reconcile(desired, self.runtime, self.events, dry_run=True)
        except Exception as exc:  # as in _reconcile: never end the loop
            why = f"internal error: {type(exc).__name__}: {str(exc)[:300]}"
            self.events.emit("reconcile.done", revision=head[:12], result="failed", actions=0, notes=[why])
            self._save_status("failed", head, desired, None, [why])
            return None
        self._save_status("failed" if report.result == "failed" else "suspended", head, desired, report, None)
        return report

    def _newer_commit(self, head: str) -> bool:
        pushed = any(t.kind == "push" for t in self.queue.pending())
        return pushed and branch_head(self.config.repo, self.config.branch) != head

    def _schedule(self, head: str, kind: TriggerKind, delay: float) -> float:
        """Come back in `delay` seconds: a retry (backoff, or the error's own time), a requeue
        the reconcile asked for, or at once after a preemption."""
        self.queue.put_later(kind, delay)
        if kind == "retry":
            self.events.emit("retry.scheduled", revision=head[:12], seconds=round(delay, 1))
        elif kind == "requeue":
            self.events.emit("requeue.scheduled", revision=head[:12], seconds=round(delay, 1))
        return delay

    def _reject(self, head: str | None, problems: list[str]) -> None:
        if head is not None:
            self.events.emit("reconcile.rejected", revision=head[:12], problems=problems)
        self._save_status("invalid", head, None, None, problems)

    def _save_status(
        self,
        result: StatusResult,
        head: str | None,
        desired: DesiredState | None,
        report: ReconcileReport | None,
        errors: list[str] | None,
        retry_in: float | None = None,
    ) -> None:
        self.status = write_status(
            self.state_dir,
            result=result,
            head=head,
            desired=desired,
            report=report,
            errors=errors,
            memory=self.runtime.state.load(),
            retry_in=retry_in,
            at=self.clock.now(),
        )
        self.metrics.conditions(self.status)
        if desired is not None:
            self.notify_targets = list(desired.server.notify)  # an invalid commit keeps the last ones
        self._notify(report)

    def _notify(self, report: ReconcileReport | None) -> None:
        """Tell the owner what changed (each state once); a notice that could not be sent is
        tried again after the next reconcile."""
        if not self.notify_targets:
            return
        memory = self.runtime.state.load()
        notices = decide(
            self.status, failures=self.backoff.failures, done=updates_done(report), sent=memory.notified
        )
        if not notices:
            return
        delivered = send(self.notify_targets, notices, lambda name, **data: self.events.emit(name, **data))
        told = {n.key: n.state for n in delivered}
        self.runtime.state.update(lambda m: m.model_copy(update={"notified": {**m.notified, **told}}))

    def _on_event(self, event: Event) -> None:
        """Keep status.json live while pulling (throttled) and while reconciling; every event
        of a reconcile is progress for the watchdog."""
        name = event["event"]
        if name != "serve.stuck":
            self.liveness.beat()
        if name == "reconcile.done":
            self.systemd.status(f"{event.get('result')} {str(event.get('revision', ''))[:12]}")
        if name in ("pull.progress", "pull.done", "action.failed") and event.get("model"):
            self.metrics.pulling(str(event["model"]), _ratio(event) if name == "pull.progress" else None)
        if name == "reconcile.start":
            self._mark_reconciling()
        elif name in ("pull.progress", "load.progress") and self._progress_due():
            self._progress(event)

    def _progress_due(self) -> bool:
        """Progress is written at most once a second."""
        if self.clock.monotonic() - self._last_progress <= 1.0:
            return False
        self._last_progress = self.clock.monotonic()
        return True

    def _progress(self, event: Event) -> None:
        pulling = event["event"] == "pull.progress"
        field = "pulling_percent" if pulling else "loading_seconds"
        value = event.get("percent") if pulling else event.get("elapsed_s")
        rows = [
            r.model_copy(update={field: value}) if r.name == canonical(str(event.get("model"))) else r
            for r in self.status.models
        ]
        self.status = self.status.model_copy(update={"models": rows, "updated_at": self.clock.now()})
        status_mod.save_status(self.state_dir, self.status)

    def _mark_reconciling(self) -> None:
        at = self.clock.now()
        conditions = [
            c.model_copy(update={"status": True, "reason": "Reconciling", "last_transition": at})
            if c.type == "Reconciling" and not c.status
            else c
            for c in self.status.conditions
        ]
        if not any(c.type == "Reconciling" for c in conditions):
            conditions.append(
                status_mod.Condition(
                    type="Reconciling", status=True, reason="Reconciling", last_transition=at
                )
            )
        self.status = self.status.model_copy(update={"conditions": conditions, "updated_at": at})
        status_mod.save_status(self.state_dir, self.status)


def next_run(report: ReconcileReport, backoff: Backoff) -> tuple[TriggerKind, float] | None:
    """When `serve` reconciles again after `report`, by its typed result alone: a failure a
    retry may fix is retried (after the error's own time, or the backoff's); a preempted run
    comes back at once; a run that asks to be requeued (a model waiting for memory others hold)
    comes back then; otherwise at the next trigger or resync (None)."""
    if report.retrying:
        return "retry", backoff.next_delay() if report.requeue_after is None else report.requeue_after
    backoff.reset()
    if report.requeue_after is None:
        return None
    return ("preempted" if report.result == "preempted" else "requeue"), report.requeue_after


def _ratio(event: Event) -> float | None:
    try:
        return float(event.get("percent", 0)) / 100
    except (TypeError, ValueError):
        return None
