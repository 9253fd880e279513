"""How close the VRAM estimate comes to real `ollama ps` figures, old estimator vs new.

    .venv/bin/python bench/vram_accuracy.py            # the table and the summary
    .venv/bin/python bench/vram_accuracy.py --readme   # the README block (tests check it matches)

Rows: tests/fixtures/ollama_ps_rows.yaml (real servers, from public issues, each cited).
The new estimator is scored with the memory model of each row's Ollama version; the old one
is the formula this project used before (weights + KV + a llama-only graph without
parallel or vocabulary + 457 MiB, the same for every version). A "false fit" is a row real
Ollama split onto the CPU that the estimator would have let the planner call a fit.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.observed import Blob
from reconciler.plan import vram
from reconciler.units import format_bytes
from tests.architectures import LLAMA3_8B, LLAMA3_VOCAB
from tests.ps_rows import Row, Score, load_rows, relative_error, score

OLD_MINIMUM = 457 * 2**20


def old_estimate(row: Row) -> float:
    """The estimator before issue 11 (reconciler/plan/vram.py at main de38f4d)."""
    arch = row.arch
    weights = vram.weights_bytes(row.blobs)
    head_dim = arch.embedding_length // arch.head_count
    key, value = arch.key_length or head_dim, arch.value_length or head_dim
    per_element = {"f16": 2.0, "q8_0": 1.0, "q4_0": 0.5}[row.kv_type] if row.flash_attention else 2.0
    kv = row.num_ctx * row.num_parallel * arch.block_count * arch.head_count_kv * (key + value) * per_element
    batch = min(row.num_ctx, 512)
    graph = 4 * batch * (1 + 4 * arch.embedding_length + row.num_ctx * (1 + arch.head_count))
    return weights + kv + graph + OLD_MINIMUM


def new_reported(row: Row) -> float:
    return float(row.estimate().reported)


def new_needed(row: Row) -> float:
    e = row.estimate()
    return float(e.total + e.margin)


def scores() -> tuple[Score, Score]:
    rows = load_rows()
    return score(rows, old_estimate, old_estimate), score(rows, new_reported, new_needed)


def _line(s: Score) -> str:
    return (
        f"{s.mean_abs_error:.1%} mean absolute error, {s.within_10} of {s.gpu_rows} within 10 %, "
        f"{len(s.false_fits)} false fits of {s.split_rows} split rows"
    )


def readme_block() -> str:
    """The README's measured figures and worked example, generated from the code."""
    old, new = scores()
    rows = load_rows()
    lines = [
        f"Measured by `bench/vram_accuracy.py` on {len(rows)} real rows from public issues "
        f"({old.gpu_rows} wholly on the GPU, {old.split_rows} split onto the CPU; "
        "`tests/fixtures/ollama_ps_rows.yaml`, checked by `tests/unit/plan/test_vram_real_rows.py`):",
        "",
        "| estimator | mean abs. error (100 % GPU rows) | within 10 % | false fits (split rows) |",
        "|---|---|---|---|",
        f"| before (one formula for every version) | {old.mean_abs_error:.1%} | {old.within_10} of "
        f"{old.gpu_rows} | {len(old.false_fits)} of {old.split_rows} |",
        f"| now (the row's Ollama version) | {new.mean_abs_error:.1%} | {new.within_10} of "
        f"{new.gpu_rows} | {len(new.false_fits)} of {new.split_rows} |",
        "",
        *worked_example(),
    ]
    return "\n".join(lines)


EXAMPLE = LLAMA3_8B.model_copy(  # llama3:8b-instruct-q4_K_M, the example's pinned model
    update={
        "vocab_size": LLAMA3_VOCAB,
        "tied_embeddings": False,
        "token_embd_bytes": LLAMA3_VOCAB * 4096 * 144 // 256,  # q4_K
        "output_bytes": LLAMA3_VOCAB * 4096 * 210 // 256 + 4096 * 4,  # q6_K + output_norm
    }
)
EXAMPLE_FILE = 4_920_734_016  # 4.9 GB


def worked_example() -> list[str]:
    blobs = (
        Blob(digest="sha256:example", size=EXAMPLE_FILE, media_type="application/vnd.ollama.image.model"),
    )
    lines = [
        "Worked example — the example's pinned `llama3:8b-instruct-q4_K_M` (4.9 GB, 32 layers, "
        "8 KV heads of 128, vocabulary 128256, untied) at `num_ctx: 8192` with flash attention "
        "and a q8_0 KV cache:",
        "",
        "| Ollama | weights on GPU | KV cache | graph | runtime | `ollama ps` SIZE | needs free |",
        "|---|---|---|---|---|---|---|",
    ]
    for version in ("0.32.15", "0.6.8"):
        e = vram.estimate(
            "example", blobs, EXAMPLE, num_ctx=8192, kv_type="q8_0", flash_attention=True, version=version
        )
        lines.append(
            f"| {version} ({e.memory_model}) | {format_bytes(e.weights)} | {format_bytes(e.kv_cache)} | "
            f"{format_bytes(e.graph)} | {format_bytes(e.overhead)} | {format_bytes(e.reported)} | "
            f"{format_bytes(e.total + e.margin)} |"
        )
    return lines


def main() -> None:
    if "--readme" in sys.argv:
        print(readme_block())
        return
    rows = load_rows()
    print(f"{'row':46} {'real':>9} {'old':>9} {'new':>9} {'model':13} processor")
    for r in rows:
        new = r.estimate()
        print(
            f"{r.id:46} {format_bytes(int(r.real)):>9} {format_bytes(int(old_estimate(r))):>9} "
            f"{format_bytes(new.reported):>9} {new.memory_model:13} "
            f"{'100% GPU' if r.on_gpu else 'split'}"
            + (f" (new error {relative_error(new.reported, r.real):.1%})" if r.on_gpu else "")
        )
    old, new = scores()
    print(f"\nold: {_line(old)}  {list(old.false_fits)}")
    print(f"new: {_line(new)}  {list(new.false_fits)}")


if __name__ == "__main__":
    main()
