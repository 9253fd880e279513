"""Prometheus metrics of `serve`, on loopback unless told otherwise."""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from reconciler.observed import Observed
from reconciler.state.suspend import Suspension

if TYPE_CHECKING:
    from reconciler.report.status import Status


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.duration = Histogram(
            "reconciler_reconcile_duration_seconds",
            "Time of one reconcile",
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
        )
        self.results = Counter(
            "reconciler_reconciles_total", "Reconciles by result", ["result"], registry=self.registry
        )
        self.last_success = Gauge(
            "reconciler_last_success_timestamp_seconds",
            "When the server last converged",
            registry=self.registry,
        )
        self.model_disk = Gauge(
            "reconciler_model_disk_bytes", "Bytes of a model on disk", ["model"], registry=self.registry
        )
        self.model_vram = Gauge(
            "reconciler_model_vram_bytes", "VRAM of a loaded model", ["model"], registry=self.registry
        )

        self.is_suspended = Gauge(
            "reconciler_suspended", "1 while suspended: commits recorded, not applied", registry=self.registry
        )
        self.suspended_since = Gauge(
            "reconciler_suspended_since_timestamp_seconds",
            "When the current suspension began (0: not suspended)",
            registry=self.registry,
        )

        self.condition = Gauge(
            "reconciler_condition",
            "1 when the status condition is true (Ready, Reconciling, Stalled, Degraded)",
            ["type"],
            registry=self.registry,
        )
        self.pull_progress = Gauge(
            "reconciler_pull_progress_ratio",
            "A pull in flight: done / total",
            ["model"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "reconciler_model_digest_info",
            "A present model's manifest digest and the one its registry served at the last check",
            ["model", "digest", "upstream_digest"],
            registry=self.registry,
        )
        self.upstream_checked = Gauge(
            "reconciler_model_upstream_checked_timestamp_seconds",
            "When a model's registry was last checked",
            ["model"],
            registry=self.registry,
        )
        self.update_available = Gauge(
            "reconciler_model_update_available",
            "1 while the registry serves another digest than the server has",
            ["model"],
            registry=self.registry,
        )

    def conditions(self, status: Status) -> None:
        for c in status.conditions:
            self.condition.labels(type=c.type).set(1 if c.status else 0)

    def pulling(self, model: str, ratio: float | None) -> None:
        """Progress of a pull; None once it ended (the series goes)."""
        if ratio is not None:
            self.pull_progress.labels(model=model).set(ratio)
            return
        with suppress(KeyError):  # never reported
            self.pull_progress.remove(model)

    def suspended(self, suspension: Suspension | None) -> None:
        self.is_suspended.set(0 if suspension is None else 1)
        self.suspended_since.set(0 if suspension is None else suspension.since.timestamp())

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        start_http_server(port, addr=addr, registry=self.registry)

    def observe(
        self, result: str, seconds: float, observed: Observed | None, converged_at: float | None
    ) -> None:
        self.results.labels(result=result).inc()
        self.duration.observe(seconds)
        if converged_at is not None:
            self.last_success.set(converged_at)
        if observed is None:
            return
        self.model_disk.clear()
        self.model_vram.clear()
        for m in observed.models:
            self.model_disk.labels(model=m.name).set(m.size)
        for run in observed.loaded:
            self.model_vram.labels(model=run.name).set(run.size_vram)
        self._digests(observed)

    def _digests(self, observed: Observed) -> None:
        for gauge in (self.model_info, self.upstream_checked, self.update_available):
            gauge.clear()
        upstream = {u.name: u for u in observed.upstream}
        for m in observed.models:
            last = upstream.get(m.name)
            far = last.digest if last and last.digest else ""
            self.model_info.labels(model=m.name, digest=m.digest, upstream_digest=far).set(1)
            if last is not None:
                self.upstream_checked.labels(model=m.name).set(last.checked_at.timestamp())
                self.update_available.labels(model=m.name).set(int(bool(far) and far != m.digest))
