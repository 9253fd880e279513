"""Headless Chromium (Debian's package) looking at a page as a person would: the DOM after
the page's scripts ran, and a screenshot saved as evidence."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.harness.dockerd import apt_install

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ERROR_PAGE_BYTES = 10_000  # a blank page or "500: Internal Error" is a smaller PNG than any real one


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        apt_install("chromium")
        found = shutil.which("chromium")
    if found is None:
        raise RuntimeError("Debian's chromium could not be installed")
    return found


def open_page(
    url: str,
    screenshot: Path,
    profile: Path,
    budget_ms: int = 15000,
    ready: Callable[[str], bool] = lambda _dom: True,
    attempts: int = 3,
) -> str:
    """The rendered DOM of `url`; a 1280x800 screenshot of it written to `screenshot`.

    Chromium runs the page on virtual time, so on a loaded machine a slow answer can make the
    app's own timeouts fire and render its error page: until `ready(dom)` holds and the
    screenshot is not that page, it looks again (at most `attempts` times)."""
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
    dom = ""
    for _ in range(attempts):
        screenshot.unlink(missing_ok=True)
        dom = subprocess.run(
            [chromium(), *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120
        ).stdout
        subprocess.run(
            [chromium(), *flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=120
        )
        if ready(dom) and screenshot.is_file() and screenshot.stat().st_size > ERROR_PAGE_BYTES:
            break
        time.sleep(5)
    return dom


_SELECTOR = re.compile(r'id="model-selector-[^"]*-button"[^>]*>(?:\s|<[^>]*>)*([^<]+)')


def selected_model(dom: str) -> str | None:
    """The model OpenWebUI's chat page shows as selected (its model selector button)."""
    found = _SELECTOR.search(dom)
    return html.unescape(found.group(1)).strip() if found else None
