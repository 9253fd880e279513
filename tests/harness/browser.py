"""Headless Chromium (Debian's package) looking at a page as a person would: the DOM after
the page's scripts ran, a screenshot saved as evidence, and scripts evaluated on a page's own
origin through the DevTools protocol (`evaluate`, over `--remote-debugging-pipe`: no WebSocket
library needed).

`trusting(ca, home)` is a HOME whose NSS database trusts one CA, the way a person makes
Chromium on Linux trust the reconciler's LAN CA (`certutil -A -t C,,` into
~/.pki/nssdb: Chromium verifies server certificates against the platform's trust store, which
on Linux is that database). Chosen over `--ignore-certificate-errors-spki-list`, which skips
verification for any chain that merely contains a certificate with a listed key, so it would
neither check the CA's signature nor the names the certificate covers."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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
    env: Mapping[str, str] | None = None,
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
            [chromium(), *flags, "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
            env=_env(env),
        ).stdout
        subprocess.run(
            [chromium(), *flags, f"--screenshot={screenshot}", url],
            capture_output=True,
            timeout=120,
            env=_env(env),
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


def _env(extra: Mapping[str, str] | None) -> dict[str, str] | None:
    return {**os.environ, **extra} if extra else None


def trusting(ca: Path, home: Path) -> dict[str, str]:
    """The environment of a Chromium that trusts `ca` and no other private CA: a fresh HOME
    with an NSS database holding it as a trusted issuer of server certificates."""
    if shutil.which("certutil") is None:
        apt_install("libnss3-tools")
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True, capture_output=True)
    subprocess.run(
        ["certutil", "-A", "-d", f"sql:{db}", "-n", "reconciler LAN CA", "-t", "C,,", "-i", str(ca)],
        check=True,
        capture_output=True,
    )
    return {"HOME": str(home)}


MEDIA_FLAGS = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
MICROPHONE = """(async () => {
  const found = {origin: location.origin, secure: window.isSecureContext,
                 mediaDevices: !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)};
  if (found.mediaDevices) {
    const stream = await navigator.mediaDevices.getUserMedia({audio: true});
    found.audioTracks = stream.getAudioTracks().length;
  }
  return found;
})()"""


class _Pipe:
    """The DevTools protocol over Chromium's --remote-debugging-pipe (fd 3 in, fd 4 out,
    messages ended by NUL)."""

    def __init__(self, proc: subprocess.Popen[bytes], to_browser: int, from_browser: int) -> None:
        self.proc, self.to_browser, self.reader = proc, to_browser, os.fdopen(from_browser, "rb")
        self.next_id = 0

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read()
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return dict(answer.get("result") or {})

    def _read(self) -> dict[str, Any]:
        data = bytearray()
        while (byte := self.reader.read(1)) not in (b"\0", b""):
            data += byte
        if not data:
            raise RuntimeError("Chromium closed the DevTools pipe")
        return dict(json.loads(data))


def evaluate(
    url: str,
    expression: str,
    profile: Path,
    *,
    env: Mapping[str, str] | None = None,
    flags: tuple[str, ...] = (),
    timeout: float = 60,
) -> dict[str, Any]:
    """Open `url` in headless Chromium, wait for the load, and evaluate `expression` (awaited)
    on the page: its `value`, the page's `location.href` as `href` and the navigation's
    `error` (Chromium's net error, e.g. a refused certificate; None when it loaded)."""
    to_read, to_browser = os.pipe()
    from_browser, to_write = os.pipe()
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--remote-debugging-pipe", *flags, "about:blank",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        pass_fds=(3, 4),
        preexec_fn=lambda: (os.dup2(to_read, 3), os.dup2(to_write, 4)),
        env=_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(to_read)
    os.close(to_write)
    pipe = _Pipe(proc, to_browser, from_browser)
    try:
        target = pipe.call("Target.createTarget", url="about:blank")["targetId"]
        session = pipe.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        navigated = pipe.call("Page.navigate", session, url=url)  # answers once committed
        deadline = time.monotonic() + timeout
        while True:
            state = pipe.call(
                "Runtime.evaluate", session, expression="document.readyState", returnByValue=True
            )
            if state["result"].get("value") == "complete" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        href = pipe.call("Runtime.evaluate", session, expression="location.href", returnByValue=True)
        done = pipe.call(
            "Runtime.evaluate", session, expression=expression, awaitPromise=True, returnByValue=True
        )
        value = done["result"].get("value")
        return {
            "error": navigated.get("errorText"),  # e.g. net::ERR_CERT_AUTHORITY_INVALID
            "href": href["result"].get("value"),
            "value": value,
            "exception": done.get("exceptionDetails"),
        }
    finally:
        os.close(to_browser)
        pipe.reader.close()
        proc.kill()
        proc.wait(timeout=30)
