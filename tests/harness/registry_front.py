"""A registry that demands a token: the front of the harness's login registry (stdlib only).

Runs inside the registry container, on the port the tests use, next to Debian's
docker-registry (distribution 2.8) configured with ``auth: token`` (it listens on
127.0.0.1:5000 in the container and verifies tokens against ``/auth/root.crt``). It does two
things on one host:port — the realm must be on the registry's own host for Ollama 0.14.3+
(server/auth.go ``getAuthorizationToken``):

* ``GET /token?service=…&scope=repository:<ns>/<model>:pull[,push]`` — the standard Docker
  token server (distribution ``docs/spec/auth/token.md``): a JWT signed RS256 with the key in
  ``/auth/signer.json`` (x5c: the root certificate). Who gets what, from ``/auth/access.json``:
  anyone may pull the ``public`` namespaces; HTTP Basic with a listed user may pull and push
  everywhere; an Ollama server may pull everywhere when its ed25519 key (the
  ``<pubkey>:<signature>`` header ollama signs with, auth/auth.go) is listed, as ollama.com
  lets the keys a user added to their account in. Anyone else gets a token without that
  access (the registry then answers 401 ``insufficient_scope``), bad credentials a 401.
* everything else is passed to the registry unchanged (method, path, headers, body).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import sys
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ed25519  # copied next to this file

AUTH = Path(os.environ.get("FRONT_AUTH_DIR", "/auth"))
UPSTREAM = ("127.0.0.1", 5000)
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
_SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def rs256(message: bytes, n: int, d: int) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2), the JWS ``RS256`` algorithm."""
    k = (n.bit_length() + 7) // 8
    t = _SHA256_PREFIX + hashlib.sha256(message).digest()
    em = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return pow(int.from_bytes(em, "big"), d, n).to_bytes(k, "big")


class Front(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    signer: ClassVar[dict[str, Any]] = {}

    @property
    def access(self) -> dict[str, Any]:
        """Read at every request: the tests add users and Ollama keys while it runs."""
        data: dict[str, Any] = json.loads((AUTH / "access.json").read_text())
        return data

    def log_message(self, format: str, *args: Any) -> None:
        sys.stdout.write(f"[registry-front] {self.address_string()} {format % args}\n")
        sys.stdout.flush()

    # -- token server ------------------------------------------------------------------------
    def _who(self, url: str, access: dict[str, Any]) -> tuple[str, set[str]] | None:
        """(subject, what it may do) from the Authorization header; None = bad credentials."""
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return None
            if access.get("users", {}).get(user) != password:
                return None
            return user, {"pull", "push"}
        if header and not header.startswith("Bearer "):
            # The Ollama signature covers "GET,<url>,<base64(hex(sha256 of the empty body))>".
            empty = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
            host = self.headers.get("Host", "")
            public = ed25519.verify_ollama_signature(header, f"GET,http://{host}{url},{empty}".encode())
            if public is not None and ed25519.authorized_key(public) in access.get("ollama_keys", []):
                return ed25519.authorized_key(public), {"pull"}
        return "", set()

    def _token(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parsed.query)
        access = self.access
        who = self._who(self.path, access)
        if who is None:
            body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
            self._send(401, body.encode(), {"WWW-Authenticate": 'Basic realm="registry"'})
            return
        subject, allowed = who
        public = set(access.get("public", []))
        granted = []
        for scope in " ".join(query.get("scope", [])).split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            namespace = name.split("/", 1)[0]
            ok = [a for a in actions.split(",") if a in allowed or (a == "pull" and namespace in public)]
            granted.append({"type": "repository", "name": name, "actions": ok})
        now = int(time.time())
        claims = {
            "iss": self.signer["issuer"],
            "sub": subject,
            "aud": query.get("service", [""])[0],
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": granted,
        }
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.signer["x5c"]]}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = rs256(signing_input.encode(), int(self.signer["n"]), int(self.signer["d"]))
        token = f"{signing_input}.{b64url(signature)}"
        self._send(200, json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode())

    # -- proxy -------------------------------------------------------------------------------
    def _proxy(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        conn = http.client.HTTPConnection(*UPSTREAM, timeout=60)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            self.send_response(resp.status)
            out = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP]
            known = resp.getheader("Content-Length")
            data = b"" if known is not None or self.command == "HEAD" else resp.read()
            for k, v in out:
                self.send_header(k, v)
            if known is None and self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command == "HEAD":
                return
            if known is None:
                self.wfile.write(data)
                return
            while chunk := resp.read(64 * 1024):
                self.wfile.write(chunk)
        finally:
            conn.close()

    def _send(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _dispatch(self) -> None:
        if self.command == "GET" and urllib.parse.urlsplit(self.path).path == "/token":
            self._token()
        else:
            self._proxy()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


def main() -> None:
    Front.signer = json.loads((AUTH / "signer.json").read_text())
    port = int(os.environ["FRONT_PORT"])
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("0.0.0.0", port), Front)
    print(f"[registry-front] listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
