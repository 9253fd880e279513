"""The harness outside pytest (see tests/harness/standalone.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.standalone import MiB, harness_stack

bench_stack = harness_stack
__all__ = ["MiB", "bench_stack"]
