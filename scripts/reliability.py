"""The README's Reliability figures, from the fault suite's and the fuzzer's own results.

    .venv/bin/python scripts/reliability.py            # run tests/faults and tests/fuzz, then write
    .venv/bin/python scripts/reliability.py --runs 3   # three runs in a row (the figures: the last)
    .venv/bin/python scripts/reliability.py --read     # only read build/reliability/*.json

Prints the figures and rewrites the README between `<!-- reliability:start -->` and
`<!-- reliability:end -->`, so the numbers are produced, not typed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "build" / "reliability"
START, END = "<!-- reliability:start -->", "<!-- reliability:end -->"


def run(suite: str) -> int:
    return subprocess.run([sys.executable, "-m", "pytest", suite, "-q", "-m", "", "-p", "no:cacheprovider"],
                          cwd=ROOT, check=False).returncode  # fmt: skip


def section(faults: dict[str, Any], fuzz: dict[str, Any], streak: list[dict[str, Any]] | None = None) -> str:
    cases = faults.get("cases", {})
    passed = [c for c in cases.values() if c.get("outcome") == "passed"]
    skipped = [c for c in cases.values() if c.get("outcome") == "skipped"]
    ran = len(cases) - len(skipped)
    injected = sum(int(c.get("faults", 0)) for c in cases.values())
    survived = sum(int(c.get("faults", 0)) for c in passed)
    rows = [
        "| figure | value |",
        "|---|---|",
        f"| fault cases run / passed | {ran} / {len(passed)}"
        + (
            f" ({len(skipped)} skipped: the Docker engine is shared, not this run's to restart)"
            if skipped
            else ""
        )
        + " |",
        f"| faults injected / survived | {injected} / {survived} |",
        f"| fault suite wall time | {faults.get('wall_seconds', '?')} s |",
        *(
            [
                f"| runs in a row (faults + fuzz) green | {sum(r['green'] for r in streak)} of {len(streak)} "
                f"(fault suite {', '.join(str(r['wall']) for r in streak)} s) |"
            ]
            if streak
            else []
        ),
        f"| fuzzed desired states (loader + planner + pre-receive) | {fuzz.get('inputs', 0)} |",
        "| … rejected with file:line / accepted and planned | "
        f"{fuzz.get('rejected', 0)} / {fuzz.get('planned', 0)} |",
        f"| crashes | {fuzz.get('crashes', '?')} |",
        "| models or volumes lost | 0 (every case ends converged with its models and volume checked) |"
        if len(passed) == ran and cases
        else "| models or volumes lost | see the failing cases |",
    ]
    kills: Counter[str] = Counter()
    for name, case in cases.items():
        if "kill_9" in name:
            kills.update(case.get("detail") or {})
    intro = [
        "Produced by `scripts/reliability.py` from `tests/faults/` (real engine, registry,",
        "git and `serve`) and `tests/fuzz/` (hypothesis):",
    ]
    lines = ["## Reliability", "", *intro, "", *rows]
    if kills:
        lines += [
            "",
            f"kill -9 points ({kills.total()}) by phase: "
            + ", ".join(f"{k}: {v}" for k, v in sorted(kills.items())),
        ]
    return "\n".join(lines)


def _read(name: str) -> dict[str, Any]:
    path = RESULTS / name
    return dict(json.loads(path.read_text())) if path.exists() else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--read", action="store_true", help="do not run the suites; read their results")
    parser.add_argument("--runs", type=int, default=1, help="run both suites this many times in a row")
    args = parser.parse_args()
    code = 0
    streak: list[dict[str, Any]] = []
    for _ in range(0 if args.read else args.runs):
        rc = run("tests/faults") | run("tests/fuzz")
        code |= rc
        streak.append({"green": rc == 0, "wall": _read("faults.json").get("wall_seconds", "?")})
    text = section(_read("faults.json"), _read("fuzz.json"), streak if len(streak) > 1 else None)
    print(text)
    readme = ROOT / "README.md"
    body = readme.read_text()
    if START in body and END in body:
        head, rest = body.split(START, 1)
        readme.write_text(f"{head}{START}\n{text}\n{END}{rest.split(END, 1)[1]}")
    return code


if __name__ == "__main__":
    sys.exit(main())
