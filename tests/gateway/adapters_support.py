"""Reading the platform fixtures and signing them as the platforms do."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from gateway.adapters.base import adapters_from_settings
from gateway.app import gateway_app
from ordernotify.config import Settings
from ordernotify.metrics import Metrics
from producers.event_producer import DeliveryReport
from schemas.events import OrderEvent

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture(platform: str, name: str) -> bytes:
    return (FIXTURES / platform / name).read_bytes()


def hmac_base64(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class Publisher:
    """The broker's side of the gateway: acknowledges every event at once and keeps them."""

    topic_known = True

    def __init__(self) -> None:
        self.events: list[OrderEvent] = []

    async def publish(self, events: list[OrderEvent], within_s: float | None = None) -> list[DeliveryReport]:
        self.events.extend(events)
        return [DeliveryReport("orders.events", 0, len(self.events) + i, e.event_id) for i, e in enumerate(events)]


async def served_gateway(settings: Settings) -> tuple[TestClient[Any, Any], Publisher, Metrics]:
    """The gateway's app with these settings' adapters on a loopback port, publishing to a :class:`Publisher`."""
    publisher, metrics = Publisher(), Metrics()
    app = gateway_app(settings, publisher, adapters_from_settings(settings), metrics)  # type: ignore[arg-type]
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client, publisher, metrics


def requests_counted(metrics: Metrics, source: str, outcome: str) -> float:
    """``ordernotify_gateway_requests_total`` for one platform and outcome (0 before the first)."""
    value = metrics.registry.get_sample_value("ordernotify_gateway_requests_total",
                                              {"source": source, "outcome": outcome})
    return value or 0.0
