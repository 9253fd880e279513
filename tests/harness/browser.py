"""Headless Chromium (Debian's package) looking at a page as a person would: the DOM after
the page's scripts ran, and a screenshot saved as evidence."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

from tests.harness.dockerd import apt_install

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        apt_install("chromium")
        found = shutil.which("chromium")
    if found is None:
        raise RuntimeError("Debian's chromium could not be installed")
    return found


def open_page(url: str, screenshot: Path, profile: Path, budget_ms: int = 15000) -> str:
    """The rendered DOM of `url`; a 1280x800 screenshot of it written to `screenshot`."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1280,800",
        f"--virtual-time-budget={budget_ms}",
    ]
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    dom = subprocess.run([chromium(), *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    subprocess.run([chromium(), *flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=120)
    return dom.stdout


_SELECTOR = re.compile(r'id="model-selector-[^"]*-button"[^>]*>(?:\s|<[^>]*>)*([^<]+)')


def selected_model(dom: str) -> str | None:
    """The model OpenWebUI's chat page shows as selected (its model selector button)."""
    found = _SELECTOR.search(dom)
    return html.unescape(found.group(1)).strip() if found else None
