"""Reading the platform fixtures and signing them as the platforms do."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

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
