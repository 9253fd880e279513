"""Prometheus gauges of the latest benchmark of each model, read from the history on every scrape.

`serve --metrics-port` exposes them beside the reconcile metrics. A collector (not gauges set
once) so a `reconciler bench` run in another process shows at the next scrape. Every series
carries `simulated="true"` when the server said its figures come from a performance model.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from reconciler.analytics.history import History

_LABELS = ["model", "quantization", "num_ctx", "kv_type", "simulated"]


class BenchCollector(Collector):
    def __init__(self, history: History) -> None:
        self.history = history

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # registering must not read the history

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            "eval": GaugeMetricFamily(
                "reconciler_model_generation_tokens_per_second",
                "Generation rate of the latest benchmark of each model (median over its runs)",
                labels=_LABELS,
            ),
            "prompt": GaugeMetricFamily(
                "reconciler_model_prompt_tokens_per_second",
                "Prompt evaluation rate of the latest benchmark of each model (median)",
                labels=_LABELS,
            ),
            "ttft": GaugeMetricFamily(
                "reconciler_model_first_token_seconds",
                "Time to the first streamed token (median)",
                labels=_LABELS,
            ),
            "load": GaugeMetricFamily(
                "reconciler_model_cold_load_seconds",
                "Cold load time, Ollama's load_duration (median)",
                labels=_LABELS,
            ),
            "when": GaugeMetricFamily(
                "reconciler_model_benchmark_timestamp_seconds",
                "When the latest benchmark of each model ran",
                labels=_LABELS,
            ),
        }
        for run, r in self.history.latest().values():
            labels = [r.model, r.quantization, str(r.setting.num_ctx), r.setting.kv_type,
                      "true" if run.machine.simulated else "false"]  # fmt: skip
            for key, stat in (
                ("eval", r.eval_tps),
                ("prompt", r.prompt_tps),
                ("ttft", r.ttft_s),
                ("load", r.load_s),
            ):
                if stat is not None:
                    families[key].add_metric(labels, stat.median)
            families["when"].add_metric(labels, run.started_at.timestamp())
        yield from families.values()
