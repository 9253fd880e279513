"""Prometheus gauges of the latest benchmark of each model, read from the history at each scrape."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from reconciler.analytics.history import History, history_path
from reconciler.analytics.results import BenchRun, Machine, ModelResult, Sample, Setting
from reconciler.report.bench_metrics import BenchCollector

AT = datetime(2026, 12, 1, 3, 10, tzinfo=UTC)


def _run(tps: float, simulated: str | None) -> BenchRun:
    sample = Sample(case="chat", run=1, eval_count=int(tps * 2), eval_duration=2_000_000_000)
    result = ModelResult(model="registry.ollama.ai/library/phi3:mini", quantization="Q4_0",
                         setting=Setting(num_ctx=4096, kv_type="q8_0"), samples=(sample,))  # fmt: skip
    return BenchRun(started_at=AT, machine=Machine(simulated=simulated), results=(result,))


def test_the_latest_rate_of_each_model_with_its_setting_and_whether_simulated(tmp_path: Path) -> None:
    history = History(history_path(tmp_path))
    registry = CollectorRegistry()
    registry.register(BenchCollector(history))
    assert b"phi3" not in generate_latest(registry)  # nothing benchmarked yet, and no file made
    assert not history.path.exists()
    history.record(_run(40.0, None))
    history.record(_run(90.0, "fake-ollama performance model"))
    text = generate_latest(registry).decode()
    line = next(
        x for x in text.splitlines() if x.startswith("reconciler_model_generation_tokens_per_second{")
    )
    assert 'model="registry.ollama.ai/library/phi3:mini"' in line and 'quantization="Q4_0"' in line
    assert 'num_ctx="4096"' in line and 'kv_type="q8_0"' in line and 'simulated="true"' in line
    assert line.endswith(" 90.0")  # the newest run
    assert "reconciler_model_benchmark_timestamp_seconds{" in text
