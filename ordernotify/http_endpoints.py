"""One small HTTP port per process: ``/metrics``, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 as long as the process serves HTTP at all (the
liveness probe: restart only a hung or dead process). ``/readyz`` asks the
supplied readiness callable (joined the group, broker and SMTP reachable) and
answers 503 with the failing checks as JSON otherwise, so that Kubernetes
stops routing to -- and operators can see -- a consumer that cannot work.

The server runs in daemon threads next to the asyncio consumer; the
readiness callable is called from those threads, so it should read state the
consumer keeps up to date rather than do slow network work on every probe.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from ordernotify.config import Settings
from ordernotify.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadinessReport:
    """Named checks (True = passing) and, for failing ones, a short why (no personal data)."""

    checks: Mapping[str, bool]
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(self.checks.values())

    @property
    def failing(self) -> list[str]:
        return sorted(name for name, ok in self.checks.items() if not ok)

    def as_json(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "checks": dict(self.checks),
            "failing": [{"check": name, "detail": self.details.get(name, "")} for name in self.failing],
        }


Readiness = Callable[[], ReadinessReport]


def always_ready() -> ReadinessReport:
    """For processes without dependencies worth probing (e.g. a producer service)."""
    return ReadinessReport({})


def tcp_reachable(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether a TCP connection to ``host:port`` opens: a cheap broker/SMTP reachability check."""
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return True
    except OSError:
        return False


class EndpointServer:
    """A running endpoint server; :attr:`port` is the bound port (useful when asked for port 0)."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.host = str(httpd.server_address[0])
        self.port = int(httpd.server_address[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout_s: float = 5.0) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout_s)

    def __enter__(self) -> EndpointServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_class(registry: CollectorRegistry, readiness: Readiness) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ordernotify"

        def do_GET(self) -> None:  # noqa: N802 -- the stdlib's naming
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._reply(200, encoder(registry), content_type)
            elif path == "/healthz":
                self._reply(200, b"ok\n", "text/plain; charset=utf-8")
            elif path == "/readyz":
                self._readyz()
            else:
                self._reply(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain; charset=utf-8")

        def _readyz(self) -> None:
            try:
                report = readiness()
            except Exception as exc:  # a broken check means not ready, never a crashed probe
                log.warning("readiness check failed: %r", exc)
                report = ReadinessReport({"readiness_check": False}, {"readiness_check": type(exc).__name__})
            body = json.dumps(report.as_json()).encode() + b"\n"
            self._reply(200 if report.ready else 503, body, "application/json")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: not INFO noise
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


def start_endpoints(host: str, port: int, registry: CollectorRegistry,
                    readiness: Readiness = always_ready) -> EndpointServer:
    """Serve the endpoints in a daemon thread; ``port=0`` binds a free port (read it from ``.port``). A port that
    cannot be bound (another service has it) is a :class:`ConfigError` naming it, not a traceback."""
    try:
        httpd = ThreadingHTTPServer((host, port), _handler_class(registry, readiness))
    except OSError as exc:
        raise ConfigError(f"cannot serve /metrics, /healthz and /readyz on {host}:{port}: {exc.strerror}; "
                          f"choose another --metrics-port (0: none)") from exc
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name=f"ordernotify-http-{port}", daemon=True)
    thread.start()
    server = EndpointServer(httpd, thread)
    log.info("serving /metrics, /healthz and /readyz on %s:%d", server.host, server.port)
    return server


def start_configured_endpoints(settings: Settings, registry: CollectorRegistry,
                               readiness: Readiness = always_ready) -> EndpointServer | None:
    """The consumer's entry: ``--metrics-port 0`` means no endpoint at all (None), unlike ``start_endpoints``."""
    if settings.metrics_port == 0:
        log.debug("metrics endpoint off (--metrics-port 0)")
        return None
    return start_endpoints(settings.metrics_host, settings.metrics_port, registry, readiness)


__all__ = [
    "EndpointServer", "Readiness", "ReadinessReport", "always_ready", "start_configured_endpoints",
    "start_endpoints", "tcp_reachable",
]
