"""A notification sink on loopback: what Apprise's `json://127.0.0.1:PORT/…` posts, recorded.

Apprise's JSON plugin POSTs `{"version", "title", "message", "type", …}` to
`http://HOST:PORT/PATH` (apprise/plugins/custom_json.py); each body is kept with its path.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class NotifySink:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.received.append(
                    {"path": self.path, "raw": body.decode(errors="replace"), **json.loads(body)}
                )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def titles(self) -> list[str]:
        return [str(r.get("title")) for r in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
