"""The estimator against real `ollama ps` rows from public issues (tests/fixtures/ollama_ps_rows.yaml).

Targets (issue 11): mean absolute error ≤ 10 % against the rows real Ollama ran wholly on the
GPU, each estimated with the memory model of the Ollama version it came from; and not one
row real Ollama split onto the CPU that the planner would call a fit. The figures the README
quotes are printed by bench/vram_accuracy.py from the same rows.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.observed import GpuObs, ModelObs
from reconciler.plan.actions import LoadModel
from reconciler.plan.planner import plan
from tests.ps_rows import FIXTURE, Row, load_rows, parse_size, relative_error, score
from tests.unit.factories import blobs, desired, observed

ROWS = load_rows()


def test_every_row_and_model_cites_its_source() -> None:
    data = yaml.safe_load(FIXTURE.read_text())
    assert all(str(r["source"]).startswith("https://") for r in data["rows"])
    assert all(
        m["sources"] and all(str(s).startswith("https://") for s in m["sources"])
        for m in data["models"].values()
    )
    assert {r["model"] for r in data["rows"]} <= set(data["models"])


def test_the_rows_cover_old_and_split_cases() -> None:
    assert len(ROWS) >= 12
    assert sum(r.on_gpu for r in ROWS) >= 6 and sum(not r.on_gpu for r in ROWS) >= 5
    assert any(r.gpu_total <= 8 * 2**30 and not r.on_gpu for r in ROWS)  # 8 GB cards that split


def test_mean_absolute_error_on_rows_wholly_on_the_gpu_is_at_most_10_percent() -> None:
    result = score(ROWS, lambda r: r.estimate().reported, lambda r: 0)
    worst = max((relative_error(r.estimate().reported, r.real), r.id) for r in ROWS if r.on_gpu)
    assert result.mean_abs_error <= 0.10, f"MAE {result.mean_abs_error:.1%}, worst {worst}"


def _pinned_plan(row: Row) -> Any:
    env: dict[str, Any] = {"OLLAMA_NUM_PARALLEL": row.num_parallel}
    if row.flash_attention is not None:
        env["OLLAMA_FLASH_ATTENTION"] = row.flash_attention
    state = desired(
        [{"name": "pinned:model", "keep_loaded": True, "num_ctx": row.num_ctx}], container={"env": env}
    )
    present = ModelObs(
        name="registry.ollama.ai/library/pinned:model",
        blobs=blobs(("w", row.blobs[0].size)),
        architecture=row.arch,
    )
    used = row.gpu_total - row.room if row.room < row.gpu_total - 512 * 2**20 else 0
    gpu = GpuObs(index=0, total=row.gpu_total, used=used, free=row.gpu_total - used)
    return plan(state, observed(state, models=[present], gpus=(gpu,), ollama_version=row.version))


def _says_it_fits(p: Any) -> bool:
    return not p.violations and any(isinstance(a, LoadModel) for a in p.actions)


@pytest.mark.parametrize("row", [r for r in ROWS if not r.on_gpu], ids=lambda r: r.id)
def test_the_planner_never_calls_a_fit_what_real_ollama_split_onto_the_cpu(row: Row) -> None:
    assert not _says_it_fits(_pinned_plan(row))


@pytest.mark.parametrize("row", [r for r in ROWS if r.on_gpu], ids=lambda r: r.id)
def test_the_planner_does_not_refuse_what_real_ollama_ran_wholly_on_the_gpu(row: Row) -> None:
    assert _says_it_fits(_pinned_plan(row))


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("5.4 GB", 5.4e9),
        ("22 GB", 22.5e9),
        ("809.9 MiB", 809.9 * 2**20),
        ("3.7 GiB", 3.7 * 2**30),
        ("14 GiB", 14 * 2**30),
    ],
)
def test_printed_sizes(text: str, size: float) -> None:
    assert parse_size(text) == pytest.approx(size)


def _bench() -> Any:
    path = Path(__file__).resolve().parents[3] / "bench" / "vram_accuracy.py"
    spec = importlib.util.spec_from_file_location("vram_accuracy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_figures_and_worked_example_are_the_code_s_numbers() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    start, end = readme.index("<!-- vram-figures:start"), readme.index("<!-- vram-figures:end -->")
    shown = readme[readme.index("\n", start) + 1 : end].rstrip("\n")
    assert shown == _bench().readme_block(), "regenerate: .venv/bin/python bench/vram_accuracy.py --readme"


def test_the_old_estimator_misses_the_target_the_new_one_meets() -> None:
    old, new = _bench().scores()
    assert old.mean_abs_error > 0.10 >= new.mean_abs_error
    assert new.false_fits == ()
