"""Run the real gateway (``gateway.service.run_gateway``) in a background thread during a test, and talk to it
over HTTP on loopback the way a platform does: signed requests, JSON answers."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from gateway.service import RunningGateway, run_gateway
from gateway.standard_webhooks import signature
from ordernotify.config import Settings, gateway_secret_keys
from schemas.events import OrderEvent
from schemas.records import to_json_record

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks test vector's


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


class GatewayRunner:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._running: RunningGateway | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(run_gateway(self._settings, self._stop, on_start=self._started))
        except BaseException as exc:  # surfaced in start() and stop()
            self._error = exc

    def _started(self, running: RunningGateway) -> None:
        self._running = running

    @property
    def running(self) -> RunningGateway:
        assert self._running is not None, "gateway not started"
        return self._running

    def start(self, timeout_s: float = 30.0) -> GatewayRunner:
        """Start, and return once it serves and /readyz says ready."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while self._running is None or not self._running.publisher.topic_known:
            if self._error is not None:
                raise self._error
            if time.monotonic() > deadline:
                raise TimeoutError("gateway not ready")
            time.sleep(0.02)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError("gateway did not stop in time")
        self._loop.close()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> GatewayRunner:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- the platform's side ------------------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                timeout_s: float = 10.0) -> Answer:
        """One request on a connection of its own; an answer later than ``timeout_s`` raises TimeoutError."""
        connection = http.client.HTTPConnection("127.0.0.1", self.running.port, timeout=timeout_s)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            raw = response.read()
            answer_headers = {k.lower(): v for k, v in response.getheaders()}
            parsed = json.loads(raw) if answer_headers.get("content-type", "").startswith("application/json") else {
                "text": raw.decode("utf-8", "replace")}
            return Answer(response.status, answer_headers, parsed)
        finally:
            connection.close()

    def post_event(self, event: OrderEvent, **kwargs: Any) -> Answer:
        return self.post_signed(event_body(event), **kwargs)

    def post_signed(self, body: bytes, webhook_id: str | None = None, timestamp: int | None = None,
                    secret: str = SECRET, content_type: str = "application/json",
                    timeout_s: float = 10.0) -> Answer:
        return self.request("POST", "/v1/events", body, signed_headers(body, webhook_id, timestamp, secret,
                                                                       content_type), timeout_s)


def event_body(event: OrderEvent) -> bytes:
    return json.dumps(to_json_record(event)).encode("utf-8")


def signed_headers(body: bytes, webhook_id: str | None = None, timestamp: int | None = None, secret: str = SECRET,
                   content_type: str = "application/json") -> dict[str, str]:
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    (key,) = gateway_secret_keys(secret)
    return {"Content-Type": content_type, "webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(key, webhook_id, timestamp, body)}
