"""/metrics (Prometheus) and /healthz for container health checks and scrapers."""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, dict[str, str]]]


class HealthServer:
    """A small threaded HTTP server; `health()` returns (ok, reasons by pipeline)."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, health: HealthCheck, token: str | None = None
    ) -> None:
        if token is None and not _is_loopback(host):
            logger.warning("/metrics on %s answers anyone on the network: set http.token_file", host)
        handler = _handler_class(registry, health, token)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()
        logger.info("serving /metrics and /healthz on port %d", self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def read_token(path: Path) -> str:
    """The bearer token in `path` (one line); a missing or empty file is a config error."""
    from edge_agent.errors import ConfigError, ConfigIssue

    hint = "write the token Prometheus sends (authorization.credentials_file) into that file"
    try:
        token = path.read_text().strip()
    except OSError as exc:
        issue = ConfigIssue("http.token_file", f"cannot read it ({exc.strerror})", None, hint)
        raise ConfigError(str(path), [issue]) from exc
    if not token:
        raise ConfigError(str(path), [ConfigIssue("http.token_file", "the file is empty", None, hint)])
    return token


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _handler_class(registry: CollectorRegistry, health: HealthCheck, token: str | None) -> type[BaseHTTPRequestHandler]:
    expected = f"Bearer {token}".encode() if token else None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                given = self.headers.get("Authorization", "").encode()
                if expected is not None and not hmac.compare_digest(given, expected):
                    self._send(401, b"/metrics needs the bearer token in http.token_file\n", "text/plain")
                    return
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok, reasons = health()
                body = json.dumps({"status": "ok" if ok else "unhealthy", "pipelines": reasons}).encode()
                self._send(200 if ok else 503, body, "application/json")
            else:
                self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            logger.debug("http %s", format % args)

    return Handler
