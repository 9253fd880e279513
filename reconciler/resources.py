"""Files shipped inside the package, found with importlib.resources: the example desired
state (seeded into a new repo), the git and Kamal hooks and the systemd unit. A wheel installed
into any venv finds them; nothing is looked up relative to a checkout.

The example under `data/desired_state/` is a copy of the repo's top-level `desired_state/`,
written and checked by `python -m reconciler.desired.docs` (CI fails when they differ).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from reconciler.errors import PermanentError


class MissingPackageData(PermanentError):
    """A file the package ships is not where the installation should have put it."""


def data_path(*parts: str) -> Path:
    """A shipped file or directory as a real path (the package is always installed unzipped)."""
    resource = files("reconciler").joinpath("data", *parts)
    if not isinstance(resource, Path) or not resource.exists():
        raise MissingPackageData(
            f"{'/'.join(parts)} is missing from this installation of reconciler ({resource}); "
            "reinstall the package (pip install --force-reinstall reconciler-llm)"
        )
    return resource


def example_desired_state() -> Path:
    return data_path("desired_state")


def git_hooks() -> Path:
    return data_path("hooks", "git")


def kamal_hooks() -> Path:
    return data_path("hooks", "kamal")


def systemd_unit() -> Path:
    return data_path("systemd", "reconciler.service")
