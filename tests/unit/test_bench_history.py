"""The benchmark statistics and the SQLite history under the state directory."""

from __future__ import annotations

import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.analytics.history import History, history_path
from reconciler.analytics.results import (
    BenchRun,
    CaseResult,
    Machine,
    ModelResult,
    Sample,
    Setting,
    settings_key,
)
from reconciler.analytics.stats import Stat, rate, summarize

AT = datetime(2026, 12, 1, 3, 10, tzinfo=UTC)


def _sample(case: str, run: int, eval_ns: int, tokens: int = 128) -> Sample:
    return Sample(case=case, run=run, ttft_s=0.12, prompt_eval_count=40, prompt_eval_duration=20_000_000,
                  eval_count=tokens, eval_duration=eval_ns, load_duration=2_500_000_000)  # fmt: skip


def _result(
    model: str = "registry.ollama.ai/library/llama3:8b-instruct-q4_k_m", tps: float = 60.0
) -> ModelResult:
    samples = [_sample("chat", r, int(128 / (tps + r) * 1e9)) for r in (1, 2, 3)]
    samples += [Sample(case="load", run=r, load_duration=int((2.4 + r / 10) * 1e9)) for r in (1, 2, 3)]
    return ModelResult(
        model=model,
        digest="365c0bd3c000",
        quantization="Q4_K_M",
        setting=Setting(num_ctx=8192, kv_type="q8_0", flash_attention=True),
        load_s=summarize(s.load_duration / 1e9 for s in samples if s.case == "load" and s.load_duration),
        size=5_800_000_000,
        size_vram=5_800_000_000,
        cases=(CaseResult.of("chat", samples),),
        samples=tuple(samples),
    )


def test_median_and_spread() -> None:
    stat_ = summarize([58.0, 61.0, 60.0, None])
    assert stat_ == Stat(median=60.0, low=58.0, high=61.0, n=3)
    assert stat_.spread == pytest.approx(3 / 60) and stat_.shown() == "60.0 ±2%"
    assert summarize([None]) is None and summarize([5.0]).shown() == "5.0"  # type: ignore[union-attr]
    assert rate(128, 2_000_000_000) == 64.0 and rate(0, 5) is None and rate(5, 0) is None


def test_a_case_summarizes_its_runs() -> None:
    r = _result()
    chat = r.case("chat")
    assert chat is not None and chat.eval_tps is not None and chat.eval_tps.n == 3
    assert chat.eval_tps.median == pytest.approx(62.0)  # 61, 62, 63 tokens/s
    assert chat.prompt_tps is not None and chat.prompt_tps.median == pytest.approx(2000.0)
    assert r.load_s is not None and r.load_s.median == pytest.approx(2.6)


def test_runs_round_trip_with_the_machine_and_newest_result_per_model(tmp_path: Path) -> None:
    history = History(history_path(tmp_path))
    machine = Machine(ollama_version="0.32.15", gpu_name="NVIDIA GeForce RTX 3070", gpu_driver="580.159.04",
                      gpu_total=8 * 2**30)  # fmt: skip
    first = BenchRun(
        started_at=AT, finished_at=AT, revision="abc1234", machine=machine, results=(_result(tps=50),)
    )
    newer = machine.model_copy(update={"ollama_version": "0.33.0"})
    second = BenchRun(started_at=AT, revision="def5678", machine=newer, results=(_result(tps=70),))
    assert history.record(first) == 1 and history.record(second) == 2
    runs = history.runs()
    assert [r.revision for r in runs] == ["abc1234", "def5678"]
    assert runs[0].machine == machine and runs[0].results[0] == first.results[0]
    (newest,) = history.latest().values()
    assert newest[0].machine.ollama_version == "0.33.0"
    key = settings_key(first.results[0].model, "365c0bd3c000", first.results[0].setting, "0.32.15")
    assert key in history.benchmarked()
    assert stat.S_IMODE(history.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(history.path.parent.stat().st_mode) == 0o700
    columns = sqlite3.connect(history.path).execute(
        "SELECT model, quantization, num_ctx, kv_type, eval_tps FROM results"
    )
    assert [row[:4] for row in columns] == [(first.results[0].model, "Q4_K_M", 8192, "q8_0")] * 2


def test_a_damaged_history_is_moved_aside_and_a_new_one_started(tmp_path: Path) -> None:
    path = history_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not an sqlite database" * 100)
    warnings: list[str] = []
    history = History(path, warn=warnings.append)
    assert history.record(BenchRun(started_at=AT)) == 1
    assert len(history.runs()) == 1
    (aside,) = [p for p in path.parent.iterdir() if ".unreadable-" in p.name]
    assert aside.read_bytes().startswith(b"this is not") and "moved to" in warnings[0]


def test_no_history_yet_reads_as_empty(tmp_path: Path) -> None:
    history = History(history_path(tmp_path))
    assert history.runs() == [] and history.latest() == {} and history.benchmarked() == set()
    assert not history.path.exists()


def test_a_history_of_schema_1_gains_the_models_column_and_keeps_its_runs(tmp_path: Path) -> None:
    path = history_path(tmp_path)
    path.parent.mkdir(parents=True)
    old = sqlite3.connect(path)
    v1 = (
        "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, finished_at TEXT,"
        " revision TEXT, ollama_version TEXT, simulated TEXT, gpu_name TEXT, gpu_driver TEXT,"
        " gpu_total INTEGER, gpu_note TEXT, status TEXT NOT NULL, note TEXT NOT NULL DEFAULT '')"
    )
    old.execute(v1)
    old.execute("INSERT INTO runs (started_at, status) VALUES (?, 'completed')", (AT.isoformat(),))
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    history = History(path)
    history.record(BenchRun(started_at=AT, status="busy", models=("phi3",)))
    assert [(r.status, r.models) for r in history.runs()] == [("completed", ()), ("busy", ("phi3",))]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone() == (2,)
