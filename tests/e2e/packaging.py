"""The wheel built from this checkout, and a wheelhouse of its dependencies (cached by their
list) so that installs in the tests need no index."""

from __future__ import annotations

import fcntl
import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path("/var/cache/reconciler-tests")


def build_wheel(out: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("reconciler_llm-*.whl")
    return wheel


def wheelhouse(wheel: Path) -> Path:
    """Every dependency of `wheel[server]` as wheels, downloaded once per dependency set."""
    with zipfile.ZipFile(wheel) as archive:
        deps = next(archive.read(n).decode() for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    key = hashlib.sha256(
        "\n".join(sorted(re.findall(r"^Requires-Dist: .*$", deps, re.M))).encode()
    ).hexdigest()
    house = CACHE / f"wheelhouse-{key[:16]}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "wheelhouse.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (house / ".complete").exists():
            _fill(house, wheel)
    return house


def _fill(house: Path, wheel: Path) -> None:
    house.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        # `pip wheel`: sdist-only dependencies (sdnotify) are built into wheels once
        [sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(house), f"{wheel}[server]"],
        check=True,
        timeout=900,
    )
    (house / wheel.name).unlink(missing_ok=True)  # the checkout's wheel is passed on its own
    (house / ".complete").touch()
