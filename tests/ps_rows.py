"""The real `ollama ps` rows of tests/fixtures/ollama_ps_rows.yaml, and how an estimator
scores against them (shared by tests/unit/plan/test_vram_real_rows.py and bench/vram_accuracy.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconciler.observed import Architecture, Blob
from reconciler.plan import vram

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "ollama_ps_rows.yaml"
GiB = 2**30
HEADROOM = 512 * 2**20  # budgets.vram.headroom's default
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
_SIZE = re.compile(r"^([\d.]+) (B|KB|MB|GB|KiB|MiB|GiB)$")


def parse_size(text: str) -> float:
    """Bytes a printed size stands for. Ollama's HumanBytes prints values of 10 and more as a
    truncated integer ("22 GB" is 22.0-22.99 GB): take the middle of that interval."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    number, unit = match.groups()
    value = float(number)
    if "." not in number and value >= 10 and unit in ("KB", "MB", "GB"):
        value += 0.5
    return value * _UNITS[unit]


@dataclass(frozen=True)
class Row:
    id: str
    name: str
    blobs: tuple[Blob, ...]
    arch: Architecture
    version: str
    library: str
    num_ctx: int
    num_parallel: int
    flash_attention: bool | None
    kv_type: str
    real: float  # bytes
    on_gpu: bool  # 100% GPU
    room: int  # what the planner would see as room for it: observed free memory, else the budget
    gpu_total: int
    source: str

    def estimate(self, version: str | None = "row") -> Any:
        return vram.estimate(
            self.name,
            self.blobs,
            self.arch,
            num_ctx=self.num_ctx,
            num_parallel=self.num_parallel,
            kv_type=self.kv_type,
            flash_attention=self.flash_attention,
            version=self.version if version == "row" else version,
            library=self.library,
        )


def load_rows(path: Path = FIXTURE) -> list[Row]:
    data = yaml.safe_load(path.read_text())
    models = data["models"]
    rows = []
    for r in data["rows"]:
        m = models[r["model"]]
        gpu_total = int(r["gpu_total_gib"] * GiB)
        free = r.get("free_gib")
        rows.append(
            Row(
                id=r["id"],
                name=r["name"],
                blobs=(
                    Blob(
                        digest=f"sha256:{r['model']}",
                        size=m["file_bytes"],
                        media_type="application/vnd.ollama.image.model",
                    ),
                ),
                arch=Architecture.model_validate(m["architecture"]),
                version=str(r["version"]),
                library=r.get("library", "cuda"),
                num_ctx=r["num_ctx"],
                num_parallel=r["num_parallel"],
                flash_attention=r.get("flash_attention"),
                kv_type=r.get("kv_type", "f16"),
                real=parse_size(r["size"]),
                on_gpu=r["processor"] == "100% GPU",
                room=int(free * GiB) if free is not None else gpu_total - HEADROOM,
                gpu_total=gpu_total,
                source=r["source"],
            )
        )
    return rows


def relative_error(estimated: float, real: float) -> float:
    return abs(estimated - real) / real


@dataclass(frozen=True)
class Score:
    mean_abs_error: float
    within_10: int
    gpu_rows: int
    false_fits: tuple[str, ...]  # split rows the estimator would have called a fit
    split_rows: int


def score(rows: list[Row], reported: Callable[[Row], float], needed: Callable[[Row], float]) -> Score:
    """`reported(row)`: the estimate of what `ollama ps` shows; `needed(row)`: the VRAM the
    planner requires free before it calls the model a fit."""
    gpu = [r for r in rows if r.on_gpu]
    errors = [relative_error(reported(r), r.real) for r in gpu]
    split = [r for r in rows if not r.on_gpu]
    false_fits = tuple(r.id for r in split if needed(r) <= r.room)
    return Score(
        mean_abs_error=sum(errors) / len(errors) if errors else 0.0,
        within_10=sum(e <= 0.10 for e in errors),
        gpu_rows=len(gpu),
        false_fits=false_fits,
        split_rows=len(split),
    )
