"""Each platform's documented webhook, signed the platform's way, through the gateway over real HTTP, onto the real
broker and out as an e-mail; a retried delivery is still one e-mail, a bad signature publishes nothing."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Secret, Settings
from tests.consumer_runner import ConsumerRunner
from tests.gateway.adapters_support import fixture, hmac_base64
from tests.gateway.test_saleor_adapter import Jwks, sign
from tests.gateway_runner import GatewayRunner
from tests.kafka_reading import read_topic

pytestmark = pytest.mark.integration

SHOPIFY_SECRET = "shpss_integration_secret"
WOO_SECRET = "woo integration secret"
# The documentation's samples are dated years back: the consumers take them as news here.
TWENTY_YEARS_H = 20 * 365 * 24.0


@pytest.fixture
def platform_settings(settings: Settings) -> Iterator[Settings]:
    keys = Jwks()  # the Saleor shop's JWKS, over loopback
    thread = threading.Thread(target=keys.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield dataclasses.replace(settings, gateway_host="127.0.0.1", gateway_port=0,
                                  shopify_secret=Secret(SHOPIFY_SECRET), woocommerce_secret=Secret(WOO_SECRET),
                                  saleor_jwks_url=keys.url, max_event_age_h=TWENTY_YEARS_H)
    finally:
        keys.server.shutdown()
        keys.server.server_close()


def _shopify(topic: str, name: str, event_id: str) -> tuple[bytes, dict[str, str]]:
    body = fixture("shopify", name)
    return body, {"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": hmac_base64(SHOPIFY_SECRET, body),
                  "X-Shopify-Event-Id": event_id, "Content-Type": "application/json"}


def _woo(topic: str, name: str, delivery: str) -> tuple[bytes, dict[str, str]]:
    body = fixture("woocommerce", name)
    return body, {"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Signature": hmac_base64(WOO_SECRET, body),
                  "X-WC-Webhook-Delivery-ID": delivery, "X-WC-Webhook-Resource": "order",
                  "Content-Type": "application/json"}


def _saleor(event: str, name: str) -> tuple[bytes, dict[str, str]]:
    body = fixture("saleor", name)
    return body, {"Saleor-Event": event, "Saleor-Signature": sign(body), "Saleor-Domain": "shop.example.org",
                  "Content-Type": "application/json"}


def test_each_platforms_order_is_acknowledged_then_e_mailed_once_however_often_it_is_delivered(
        platform_settings: Settings, smtp_server: SmtpCapture) -> None:
    deliveries = [
        ("shopify", *_shopify("orders/create", "orders_create.json", "e7c1a1d0-shopify-1")),
        ("shopify", *_shopify("orders/create", "orders_create.json", "e7c1a1d0-shopify-1")),  # Shopify's retry
        ("woocommerce", *_woo("order.created", "order_created.json", "woo-delivery-1")),
        ("woocommerce", *_woo("order.created", "order_created.json", "woo-delivery-2")),  # a new id each retry
        ("saleor", *_saleor("order_created", "order_created.json")),
        ("saleor", *_saleor("order_created", "order_created.json")),
    ]
    with GatewayRunner(platform_settings) as gateway:
        answers = [gateway.request("POST", f"/v1/platforms/{name}", body, headers)
                   for name, body, headers in deliveries]
        forged = gateway.request("POST", "/v1/platforms/shopify", deliveries[0][1],
                                 {**deliveries[0][2], "X-Shopify-Hmac-Sha256": hmac_base64("wrong", b"x")})
        # signed, but a topic with nothing for the customer: 200 (no retries), counted, nothing produced
        unknown_topics = [gateway.request("POST", "/v1/platforms/shopify", *_shopify("products/update",
                                                                                     "orders_create.json", "p-1")),
                          gateway.request("POST", "/v1/platforms/woocommerce", *_woo("product.updated",
                                                                                     "order_created.json", "p-2"))]
        metrics = gateway.request("GET", "/metrics").body["text"]
    assert [a.status for a in answers] == [202] * 6, [a.body for a in answers]
    assert [a.status for a in unknown_topics] == [200, 200], [a.body for a in unknown_topics]
    for source in ("shopify", "woocommerce"):
        assert f'ordernotify_gateway_requests_total{{outcome="unmapped",source="{source}"}} 1.0' in metrics
    for first, retry in zip(answers[::2], answers[1::2], strict=True):
        assert first.body["event_ids"] == retry.body["event_ids"]  # the same delivery: the same event
    assert forged.status == 401
    records = read_topic(platform_settings, platform_settings.events_topic, expected=6)
    assert len(records) == 6  # acknowledged before the answer; the forged one is not there
    with ConsumerRunner(platform_settings) as consumer:
        consumer.wait_handled(6)
        consumer.wait_idle()
    messages = smtp_server.wait_for(3)
    assert len(smtp_server.messages) == 3  # one order confirmation per platform
    assert len({m.rcpt_tos for m in messages}) == 3


class ShopifyAdminApi:
    """The shop's GraphQL Admin API over loopback: the order the refund belongs to, counting the lookups."""

    def __init__(self) -> None:
        self.lookups = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.lookups += 1
                known = self.headers.get("X-Shopify-Access-Token") == "shpat_integration_token"
                data = fixture("shopify", "admin_graphql_order.json") if known else b"{}"
                self.send_response(200 if known else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/{{shop}}/admin/api/{{version}}/graphql.json"


def test_a_shopify_refund_is_looked_up_acknowledged_and_e_mailed_once(platform_settings: Settings,
                                                                      smtp_server: SmtpCapture) -> None:
    admin = ShopifyAdminApi()
    thread = threading.Thread(target=admin.server.serve_forever, daemon=True)
    thread.start()
    settings = dataclasses.replace(platform_settings, shopify_admin_token=Secret("shpat_integration_token"),
                                   shopify_admin_api_url=admin.url)
    body, headers = _shopify("refunds/create", "refunds_create.json", "e7c1a1d0-shopify-refund-1")
    headers["X-Shopify-Shop-Domain"] = "jsmith.myshopify.com"
    try:
        with GatewayRunner(settings) as gateway:
            answers = [gateway.request("POST", "/v1/platforms/shopify", body, headers) for _ in range(2)]
    finally:
        admin.server.shutdown()
        admin.server.server_close()
    assert [a.status for a in answers] == [202, 202], [a.body for a in answers]
    assert answers[0].body["event_ids"] == answers[1].body["event_ids"]  # Shopify's retry: the same event
    assert admin.lookups == 2  # nothing of the customer kept between requests
    assert len(read_topic(settings, settings.events_topic, expected=2)) == 2
    with ConsumerRunner(settings) as consumer:
        consumer.wait_handled(2)
        consumer.wait_idle()
    (message,) = smtp_server.wait_for(1)
    assert message.rcpt_tos == ("jon@example.org",)  # the address the Admin API gave
    assert "199" in message.message.get_body(("plain",)).get_content()  # the refunded amount
