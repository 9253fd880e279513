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
