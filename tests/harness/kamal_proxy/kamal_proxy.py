#!/usr/bin/python3
"""A stand-in for kamal-proxy v0.9.2 (stdlib only), for the commands Kamal 2.11 sends it.

No image registry is reachable here, so `basecamp/kamal-proxy:v0.9.2` (the image Kamal 2.11
boots: lib/kamal/configuration/proxy/run.rb `MINIMUM_VERSION`, `repository`) is built offline
from this file. It behaves as kamal-proxy's source at tag v0.9.2 for what Kamal uses:

- `kamal-proxy run [--http-port N] [--https-port N] [--debug] [--metrics-port N]`
  (internal/cmd/run.go): HTTP on 80, HTTPS on 443, the command socket at
  `$XDG_RUNTIME_DIR|/tmp/kamal-proxy.sock`, state in `~/.config/kamal-proxy/kamal-proxy.state`
  (internal/server/config.go), restored at start (router.go `RestoreLastSavedState`).
- `kamal-proxy deploy <service> --target=HOST:PORT ...` (internal/cmd/deploy.go flags and
  `preRun` checks; router.go `DeployService`): a new target is health-checked (GET
  `http://<target><--health-check-path>` every `--health-check-interval`, each within
  `--health-check-timeout`, User-Agent `kamal-proxy`, 2xx = healthy: health_check.go) and is
  installed only once healthy; not healthy within `--deploy-timeout`: the error
  `target failed to become healthy within configured timeout (<d>)` (load_balancer.go
  `WaitUntilHealthy`) and the old target keeps serving. Hosts another service serves on the
  same path: `host settings conflict with another service` (service_map.go `CheckAvailability`).
- `--tls` with `--tls-certificate-path`/`--tls-private-key-path` (service.go
  `createCertManager`, cert.go `StaticCertManager`: the files are read at deploy time; a pair
  that cannot be loaded is `unable to load certificate`). The certificate is chosen by SNI among
  the services' hosts; a client without SNI (a browser opening an IP address) gets the first TLS
  service's first host (router.go `GetCertificate`, service_map.go `updateDefaultTLSHostname`).
- Requests (service_map.go `ServiceForRequest`/`bindingsForHost`: exact host, then `*.domain`,
  then the wildcard service; longest path prefix first): none found = 404; a non-TLS service
  asked over TLS = 503; a TLS service asked over plain HTTP = 301 to `https://<host><uri>`
  unless `--tls-redirect=false` (service.go `redirectURLIfNeeded`; the port is dropped as
  there); proxied with X-Forwarded-For/Host/Proto set from this request (target.go
  `forwardHeaders`: `--forward-headers` defaults to `!tls` and keeps the client's);
  `--target-timeout` bounds the wait for the target's response headers (504; target.go
  `ResponseHeaderTimeout`), not a streamed body. WebSocket upgrades are
  tunnelled (target.go hijacks the connection the same way).
- `remove <service>` (router.go `RemoveService`, `service not found`), `list`
  (internal/cmd/list.go: Service, Host, Path, Target, State, TLS), `stop [--message]` /
  `resume` (Kamal's `app maintenance` / `app live`: 503 while stopped).
- Errors: the command prints `Error: <message>` on stderr and exits 1 (cobra, root.go).

Simplified on purpose: one target per service (Kamal deploys one per role and host); no
draining (the old target is dropped once the new one is installed); health checks run only
until a deploy's target is first healthy; no ACME, buffering limits, rollouts, pauses with
timeouts, metrics or HTTP/3 (flags accepted and ignored); the command socket speaks JSON, not
Go's net/rpc (only this file's client talks to it).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import select
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

VERSION = "v0.9.2"
DEFAULTS = {  # internal/server/service.go at v0.9.2
    "deploy_timeout": 30.0,
    "drain_timeout": 30.0,
    "health_check_interval": 1.0,
    "health_check_timeout": 5.0,
    "health_check_path": "/up",
    "target_timeout": 30.0,
}
HOP_HEADERS = {
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
}  # fmt: skip
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ProxyError(Exception):
    """An error the command reports as kamal-proxy does (`Error: <message>`)."""


# ── Go's durations ───────────────────────────────────────────────────────────────────────────


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration for the forms Kamal sends ("30s", "1m30s", "500ms")."""
    if text == "0":
        return 0.0
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f'time: invalid duration "{text}"')
    return sum(float(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """Go's Duration.String for whole seconds and minutes ("30s", "3m0s", "1h0m0s")."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s"
    return f"{s // 3600}h{s % 3600 // 60}m{s % 60}s"


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f'invalid boolean "{text}"')


# ── paths (internal/server/config.go) ────────────────────────────────────────────────────────


def socket_path() -> str:
    return os.path.join(os.environ.get("XDG_RUNTIME_DIR") or "/tmp", "kamal-proxy.sock")


def state_path() -> Path:
    directory = Path.home() / ".config" / "kamal-proxy"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / "kamal-proxy.state"


def log(msg: str, **fields: Any) -> None:
    """slog's JSON handler on stdout (internal/cmd/run.go `setLogger`)."""
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": "INFO", "msg": msg}
    print(json.dumps({**record, **fields}), flush=True)


# ── services ─────────────────────────────────────────────────────────────────────────────────


class Service:
    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        self.options = options
        self.target: str = options["target"]
        self.stopped_message: str | None = None
        self.tls_context: ssl.SSLContext | None = None
        if options["tls"]:
            self.tls_context = _load_certificate(options)

    @property
    def hosts(self) -> list[str]:
        return list(self.options["hosts"]) or [""]  # NormalizeHosts: no host = the wildcard

    @property
    def paths(self) -> list[str]:
        prefixes = self.options["path_prefixes"] or ["/"]
        return ["/" + p.strip("/") for p in prefixes]  # NormalizePathPrefixes

    def describe(self) -> dict[str, Any]:
        return {
            "host": ",".join(self.options["hosts"]) or "*",
            "path": ",".join(self.paths),
            "target": self.target,
            "state": "stopped" if self.stopped_message is not None else "running",
            "tls": bool(self.options["tls"]),
        }


def _load_certificate(options: dict[str, Any]) -> ssl.SSLContext:
    """cert.go `NewStaticCertManager` (tls.LoadX509KeyPair at deploy time)."""
    cert, key = options.get("tls_certificate_path"), options.get("tls_private_key_path")
    if not cert or not key:
        raise ProxyError("automatic TLS (ACME) is not available in this stand-in")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        log("Error loading TLS certificate", error=str(exc))
        raise ProxyError("unable to load certificate") from exc
    return context


class Router:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.lock = threading.RLock()
        self.services: dict[str, Service] = {}

    # service_map.go
    def service_for(self, host: str, path: str) -> tuple[Service | None, str]:
        with self.lock:
            table: dict[str, list[tuple[str, Service]]] = {}
            for service in self.services.values():
                for h in service.hosts:
                    for p in service.paths:
                        table.setdefault(h, []).append((p, service))
            bindings = table.get(host)
            if bindings is None and "." in host[1:]:
                bindings = table.get("*" + host[host.index(".", 1) :])
            if bindings is None:
                bindings = table.get("")
            for prefix, service in sorted(bindings or [], key=lambda b: -len(b[0])):
                if (path.rstrip("/") + "/").startswith(prefix.rstrip("/") + "/"):
                    return service, prefix
            return None, ""

    def default_tls_host(self) -> str:
        with self.lock:
            for service in self.services.values():
                if service.options["tls"] and service.options["hosts"]:
                    return str(service.options["hosts"][0])
        return ""

    def deploy(self, name: str, options: dict[str, Any]) -> None:
        log(
            "Deploying", service=name, targets=[options["target"]], hosts=options["hosts"], tls=options["tls"]
        )
        service = Service(name, options)
        if not options["force"]:
            wait_until_healthy(options)
        with self.lock:
            for other in self.services.values():
                if other.name == name:
                    continue
                if set(other.hosts) & set(service.hosts) and set(other.paths) & set(service.paths):
                    log("Host settings conflict with another service", service=other.name)
                    raise ProxyError("host settings conflict with another service")
            self.services[name] = service
            self.save()
        log("Deployed", service=name, targets=[options["target"]], hosts=options["hosts"], tls=options["tls"])

    def remove(self, name: str) -> None:
        with self.lock:
            if self.services.pop(name, None) is None:
                raise ProxyError("service not found")
            self.save()

    def set_stopped(self, name: str, message: str | None) -> None:
        with self.lock:
            service = self.services.get(name)
            if service is None:
                raise ProxyError("service not found")
            service.stopped_message = message
            self.save()

    def save(self) -> None:
        data = [
            {"name": s.name, "options": s.options, "stopped": s.stopped_message}
            for s in self.services.values()
        ]
        self.state.write_text(json.dumps(data))

    def restore(self) -> None:
        try:
            data = json.loads(self.state.read_text())
        except (OSError, ValueError):
            return
        for entry in data:
            try:
                service = Service(entry["name"], entry["options"])
            except ProxyError:
                continue
            service.stopped_message = entry.get("stopped")
            self.services[service.name] = service


def wait_until_healthy(options: dict[str, Any]) -> None:
    """health_check.go: check at once, then every interval; load_balancer.go `WaitUntilHealthy`."""
    url_host = options["target"]
    path = options["health_check_path"]
    deadline = time.monotonic() + options["deploy_timeout"]
    while True:
        started = time.monotonic()
        if _health_check(url_host, path, options["health_check_timeout"], options.get("health_check_host")):
            return
        if time.monotonic() >= deadline:
            break
        pause = options["health_check_interval"] - (time.monotonic() - started)
        time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
        if time.monotonic() >= deadline:
            break
    timeout = format_duration(options["deploy_timeout"])
    raise ProxyError(f"target failed to become healthy within configured timeout ({timeout})")


def _health_check(target: str, path: str, timeout: float, host: str | None) -> bool:
    hostname, _, port = target.rpartition(":")
    try:
        conn = http.client.HTTPConnection(hostname, int(port), timeout=timeout)
        conn.request("GET", path, headers={"User-Agent": "kamal-proxy", **({"Host": host} if host else {})})
        status = conn.getresponse().status
        conn.close()
    except (OSError, http.client.HTTPException) as exc:
        log("Healthcheck failed", url=f"http://{target}{path}", error=str(exc))
        return False
    if not 200 <= status <= 299:
        log("Healthcheck failed", url=f"http://{target}{path}", error=f"unexpected status ({status})")
        return False
    return True


# ── the HTTP(S) front ────────────────────────────────────────────────────────────────────────


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    router: Router
    tls = False

    def log_message(self, format: str, *args: Any) -> None:
        log("Request", line=format % args)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, ssl.SSLError, TimeoutError):
            self.close_connection = True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self.forward
        raise AttributeError(name)

    def _error(self, status: int, body: str = "") -> None:
        data = (body or f"{status} {http.client.responses.get(status, '')}").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def forward(self) -> None:
        host = (self.headers.get("Host") or "").strip()
        bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host.strip("[]")
        service, _prefix = self.router.service_for(bare, self.path.split("?", 1)[0])
        if service is None:
            return self._error(404)
        if not service.options["tls"] and self.tls:
            return self._error(503)
        if service.options["tls"] and service.options["tls_redirect"] and not self.tls:
            self.send_response(301)
            self.send_header("Location", f"https://{bare}{self.path}")
            self.send_header("Connection", "close")
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.close_connection = True
            return None
        if service.stopped_message is not None:
            return self._error(503, service.stopped_message)
        headers = self._outgoing_headers(service, host)
        if (self.headers.get("Upgrade") or "").lower() == "websocket":
            return self._tunnel(service, headers)
        return self._proxy(service, headers)

    def _outgoing_headers(self, service: Service, host: str) -> list[tuple[str, str]]:
        """target.go `forwardHeaders` (httputil.ProxyRequest.SetXForwarded)."""
        keep = service.options["forward_headers"]
        client = self.client_address[0]
        out = [
            (k, v)
            for k, v in self.headers.items()
            if k.lower() not in HOP_HEADERS and not (k.lower().startswith("x-forwarded-") and not keep)
        ]
        if keep and self.headers.get("X-Forwarded-For"):
            out = [(k, v) for k, v in out if k.lower() != "x-forwarded-for"]
            client = f"{self.headers['X-Forwarded-For']}, {client}"
        given_host = self.headers.get("X-Forwarded-Host") if keep else None
        given_proto = self.headers.get("X-Forwarded-Proto") if keep else None
        out = [(k, v) for k, v in out if k.lower() not in ("x-forwarded-host", "x-forwarded-proto")]
        out.append(("X-Forwarded-For", client))
        out.append(("X-Forwarded-Host", given_host or host))
        out.append(("X-Forwarded-Proto", given_proto or ("https" if self.tls else "http")))
        return out

    def _body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _proxy(self, service: Service, headers: list[tuple[str, str]]) -> None:
        hostname, _, port = service.target.rpartition(":")
        body = self._body()
        conn = http.client.HTTPConnection(hostname, int(port), timeout=service.options["target_timeout"])
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                if k.lower() != "content-length":
                    conn.putheader(k, v)
            if body or self.command in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            answer = conn.getresponse()
            if conn.sock is not None:
                conn.sock.settimeout(None)  # --target-timeout bounds the headers only (ResponseHeaderTimeout)
        except TimeoutError:
            conn.close()
            return self._error(504)
        except (OSError, http.client.HTTPException):
            conn.close()
            return self._error(502)
        try:
            self._relay(answer)
        finally:
            conn.close()

    def _relay(self, answer: http.client.HTTPResponse) -> None:
        self.send_response_only(answer.status, answer.reason)
        length = answer.getheader("Content-Length")
        for k, v in answer.getheaders():
            if k.lower() not in HOP_HEADERS:
                self.send_header(k, v)
        chunked = length is None and self.command != "HEAD" and answer.status not in (204, 304)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while True:
            data = answer.read1(65536) if not answer.closed else b""
            if not data:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            self.wfile.flush()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _tunnel(self, service: Service, headers: list[tuple[str, str]]) -> None:
        hostname, _, port = service.target.rpartition(":")
        try:
            upstream = socket.create_connection(
                (hostname, int(port)), timeout=service.options["target_timeout"]
            )
        except OSError:
            return self._error(502)
        head = f"{self.command} {self.path} HTTP/1.1\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers)
        head += f"Connection: Upgrade\r\nUpgrade: {self.headers['Upgrade']}\r\n\r\n"
        upstream.sendall(head.encode("latin-1"))
        upstream.settimeout(None)
        client = self.connection  # the client sends no frame before the 101: nothing is buffered
        self.close_connection = True
        pipes = {client: upstream, upstream: client}
        try:
            while True:
                ready, _, _ = select.select(list(pipes), [], [], 300)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pipes[sock].sendall(data)
        except OSError:
            return
        finally:
            upstream.close()


class TLSFront(ThreadingHTTPServer):
    """The HTTPS listener: the certificate by SNI (router.go `GetCertificate`)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[ProxyHandler], router: Router) -> None:
        super().__init__(address, handler)
        self.router = router
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.set_alpn_protocols(["http/1.1"])
        self.context.sni_callback = self._sni

    def _sni(
        self, sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _ctx: ssl.SSLContext
    ) -> int | None:
        name = server_name or self.router.default_tls_host()
        if not name:
            return int(ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE)  # no server name provided
        service, _ = self.router.service_for(name, "/")
        if service is None or service.tls_context is None:
            return int(ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME)  # unknown server name
        sock.context = service.tls_context
        return None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(30)
            request.do_handshake()
        except (OSError, ssl.SSLError):
            return
        super().finish_request(request, client_address)


class CommandServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def serve(http_port: int, https_port: int) -> None:
    router = Router(state_path())
    router.restore()
    plain = type("PlainHandler", (ProxyHandler,), {"router": router, "tls": False})
    secure = type("SecureHandler", (ProxyHandler,), {"router": router, "tls": True})
    fronts: list[socketserver.BaseServer] = [
        ThreadingHTTPServer(("", http_port), plain),
        TLSFront(("", https_port), secure, router),
    ]

    class Commands(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            request = json.loads(self.rfile.readline())
            answer: dict[str, Any] = {"ok": True}
            try:
                answer["result"] = _command(router, request)
            except ProxyError as exc:
                answer = {"ok": False, "error": str(exc)}
            self.wfile.write(json.dumps(answer).encode() + b"\n")

    path = socket_path()
    if os.path.exists(path):
        os.remove(path)
    fronts.append(CommandServer(path, Commands))
    for front in fronts:
        threading.Thread(target=front.serve_forever, daemon=True).start()
    log("Server started", http=http_port, https=https_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # run.go: SIGTERM/SIGINT stop the server
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    log("Server stopped")


def _command(router: Router, request: dict[str, Any]) -> Any:
    kind, name = request["command"], request.get("service", "")
    if kind == "deploy":
        router.deploy(name, request["options"])
    elif kind == "remove":
        router.remove(name)
    elif kind == "stop":
        router.set_stopped(name, request.get("message") or "")
    elif kind == "resume":
        router.set_stopped(name, None)
    elif kind == "list":
        with router.lock:
            return {n: s.describe() for n, s in router.services.items()}
    return True


# ── the command line (internal/cmd/) ─────────────────────────────────────────────────────────


def _call(request: dict[str, Any]) -> Any:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(socket_path())
        except OSError as exc:
            raise ProxyError(f"dial unix {socket_path()}: connect: {exc.strerror}") from exc
        sock.sendall(json.dumps(request).encode() + b"\n")
        answer = json.loads(sock.makefile().readline())
    if not answer["ok"]:
        raise ProxyError(answer["error"])
    return answer.get("result")


def _slice(values: list[str] | None) -> list[str]:
    """pflag's StringSlice: repeated flags, each split on commas."""
    return [part for value in values or [] for part in value.split(",") if part != ""]


def _deploy_parser(sub: Any) -> None:
    p = sub.add_parser("deploy")
    p.add_argument("service")
    for flag in ("target", "read-target", "host", "path-prefix", "log-request-header", "log-response-header"):
        p.add_argument(f"--{flag}", action="append")
    flags = {"tls": False, "tls-staging": False, "tls-redirect": True, "strip-path-prefix": True,
             "force": False, "buffer-requests": False, "buffer-responses": False, "forward-headers": None,
             "scope-cookie-paths": False, "read-target-websockets": False}  # fmt: skip
    for flag, default in flags.items():
        p.add_argument(f"--{flag}", nargs="?", const=True, default=default, type=_bool)
    for flag in ("deploy-timeout", "drain-timeout", "health-check-interval", "health-check-timeout",
                 "target-timeout", "writer-affinity-timeout"):  # fmt: skip
        p.add_argument(f"--{flag}", type=parse_duration)
    for flag in ("tls-certificate-path", "tls-private-key-path", "tls-acme-cache-path", "canonical-host",
                 "health-check-path", "health-check-host", "error-pages"):  # fmt: skip
        p.add_argument(f"--{flag}")
    for flag in ("health-check-port", "buffer-memory", "max-request-body", "max-response-body"):
        p.add_argument(f"--{flag}", type=int)


def deploy_options(args: argparse.Namespace) -> dict[str, Any]:
    """deploy.go's flags with their defaults, checked as `preRun` does."""
    targets = _slice(args.target)
    if not targets:
        raise ProxyError('required flag(s) "target" not set')
    if bool(args.tls_certificate_path) != bool(args.tls_private_key_path):
        raise ProxyError(
            "if any flags in the group [tls-certificate-path tls-private-key-path] are set "
            "they must all be set"
        )
    hosts, prefixes = _slice(args.host), _slice(args.path_prefix)
    if args.tls:
        if not hosts:
            raise ProxyError("host must be set when using TLS")
        if "/" not in (["/" + p.strip("/") for p in prefixes] or ["/"]):
            raise ProxyError("TLS settings must be specified on the root path service")
    if args.max_request_body is not None and not args.buffer_requests:
        raise ProxyError("max-request-body can only be set when request buffering is enabled")
    options: dict[str, Any] = {
        "target": targets[0],
        "hosts": hosts,
        "path_prefixes": prefixes,
        "tls": args.tls,
        "tls_certificate_path": args.tls_certificate_path,
        "tls_private_key_path": args.tls_private_key_path,
        "tls_redirect": args.tls_redirect,
        "force": args.force,
        "forward_headers": (not args.tls) if args.forward_headers is None else args.forward_headers,
        "health_check_path": args.health_check_path or DEFAULTS["health_check_path"],
        "health_check_host": args.health_check_host,
    }
    for key in (
        "deploy_timeout",
        "drain_timeout",
        "health_check_interval",
        "health_check_timeout",
        "target_timeout",
    ):
        value = getattr(args, key)
        options[key] = DEFAULTS[key] if value is None else value
    return options


def _print_table(services: dict[str, dict[str, Any]]) -> None:
    """internal/cmd/list.go + formatting.go: padded columns, ANSI-styled."""
    rows = [["Service", "Host", "Path", "Target", "State", "TLS"]]
    for name in sorted(services):
        s = services[name]
        rows.append([name, s["host"], s["path"], s["target"], s["state"], "yes" if s["tls"] else "no"])
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for n, row in enumerate(rows):
        cells = []
        for i, cell in enumerate(row):
            style = "3;94" if n == 0 else "1;34" if i == 0 else ""
            cells.append(f"\033[{style}m{cell}\033[0m{' ' * (widths[i] - len(cell))}  ")
        print("".join(cells))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kamal-proxy")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--http-port", type=int, default=int(os.environ.get("HTTP_PORT", 80)))
    run.add_argument("--https-port", type=int, default=int(os.environ.get("HTTPS_PORT", 443)))
    run.add_argument("--debug", nargs="?", const=True, default=False, type=_bool)
    run.add_argument("--metrics-port", type=int, default=0)
    run.add_argument("--http3", nargs="?", const=True, default=False, type=_bool)
    _deploy_parser(sub)
    for name in ("remove", "rm", "resume"):
        sub.add_parser(name).add_argument("service")
    stop = sub.add_parser("stop")
    stop.add_argument("service")
    stop.add_argument("--drain-timeout", type=parse_duration)
    stop.add_argument("--message", default="")
    sub.add_parser("list")
    sub.add_parser("ls")
    sub.add_parser("version")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            serve(args.http_port, args.https_port)
        elif args.command == "deploy":
            _call({"command": "deploy", "service": args.service, "options": deploy_options(args)})
        elif args.command in ("remove", "rm"):
            _call({"command": "remove", "service": args.service})
        elif args.command in ("stop", "resume"):
            _call({"command": args.command, "service": args.service, "message": getattr(args, "message", "")})
        elif args.command in ("list", "ls"):
            _print_table(_call({"command": "list"}))
        elif args.command == "version":
            print(VERSION)
    except ProxyError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
