"""Shopify's refunds/create and fulfillment_events/create, whose payloads name no customer: the adapter asks the
shop's GraphQL Admin API, here a double of it on loopback, and the gateway answers Shopify as it must (202, 200 for
nothing to tell, 503 with Retry-After while the Admin API does not answer, 401 for a bad signature). The broker is a
fake publisher: these tests are about the mapping and the answers, the integration tests about Kafka."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.adapters.base import PlatformRefused, ShopDefaults, adapter_events, adapters_from_settings
from gateway.adapters.shopify import ShopifyAdapter, adapter_from_settings
from gateway.app import gateway_app
from ordernotify.config import ConfigError, Secret, Settings, load_settings
from ordernotify.metrics import Metrics
from schemas.events import (
    DeliveryProblem,
    DeliveryProblemKind,
    EventType,
    OrderDelivered,
    OutForDelivery,
    RefundIssued,
)
from tests.gateway.adapters_support import Publisher, fixture, hmac_base64, requests_counted, served_gateway

SECRET = "shpss_test_client_secret"
TOKEN = "shpat_test_admin_token"
SHOP = "jsmith.myshopify.com"
ORDER_GID = "gid://shopify/Order/820982911946154508"
FULFILLMENT_GID = "gid://shopify/Fulfillment/123456"
DEFAULTS = ShopDefaults(locale="de", time_zone="Europe/Berlin")


class AdminApiDouble:
    """The shop's GraphQL Admin API: answers the order and fulfillment queries from the fixtures, or as a test says
    (``status``, ``answer``); keeps what each request asked."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.answer: bytes | None = None
        self.headers: dict[str, str] = {}
        self.delay_s = 0.0
        self.app = web.Application()
        self.app.router.add_post("/{shop}/admin/api/{version}/graphql.json", self._graphql)

    async def _graphql(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"shop": request.match_info["shop"], "version": request.match_info["version"],
                              "token": request.headers.get("X-Shopify-Access-Token"), **body})
        await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.Response(status=self.status, text="{}", headers=self.headers)
        if self.answer is not None:
            return web.Response(body=self.answer, content_type="application/json")
        name = "admin_graphql_fulfillment.json" if "fulfillment(id:" in body["query"] else "admin_graphql_order.json"
        return web.Response(body=fixture("shopify", name), content_type="application/json")



@dataclasses.dataclass
class Gateway:
    client: TestClient[web.Request, web.Application]
    admin: AdminApiDouble
    publisher: Publisher
    metrics: Metrics

    async def deliver(self, topic: str, body: bytes, event_id: str = "a1b2c3d4-refund-1",
                      signature: str | None = None, shop: str = SHOP) -> tuple[int, dict[str, str], dict[str, Any]]:
        headers = {"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": signature or hmac_base64(SECRET, body),
                   "X-Shopify-Event-Id": event_id, "X-Shopify-Shop-Domain": shop,
                   "Content-Type": "application/json"}
        answer = await self.client.post("/v1/platforms/shopify", data=body, headers=headers)
        return answer.status, dict(answer.headers), await answer.json()

    def counted(self, outcome: str) -> float:
        return requests_counted(self.metrics, "shopify", outcome)


def _settings(admin_url: str, token: str = TOKEN) -> Settings:
    return dataclasses.replace(Settings(), shopify_secret=Secret(SECRET), shopify_admin_token=Secret(token),
                               shopify_admin_api_url=admin_url, gateway_retry_after_s=7,
                               shop_default_time_zone="America/New_York")


@pytest.fixture
async def admin() -> AsyncIterator[tuple[AdminApiDouble, str]]:
    double = AdminApiDouble()
    async with TestServer(double.app, host="127.0.0.1") as server:
        yield double, f"http://127.0.0.1:{server.port}/{{shop}}/admin/api/{{version}}/graphql.json"


async def _gateway(admin_double: AdminApiDouble, admin_url: str, token: str = TOKEN) -> Gateway:
    client, publisher, metrics = await served_gateway(_settings(admin_url, token))
    return Gateway(client, admin_double, publisher, metrics)


@pytest.fixture
async def gateway(admin: tuple[AdminApiDouble, str]) -> AsyncIterator[Gateway]:
    served = await _gateway(*admin)
    yield served
    await served.client.close()


def _status(body: bytes, status: str) -> bytes:
    return body.replace(b'"status": "in_transit"', f'"status": "{status}"'.encode())


def _on(body: bytes, happened_at: str) -> bytes:
    return json.dumps({**json.loads(body), "happened_at": happened_at}).encode()


async def test_a_refund_is_accepted_with_the_customer_looked_up(gateway: Gateway) -> None:
    status, _, answer = await gateway.deliver("refunds/create", fixture("shopify", "refunds_create.json"))
    assert status == 202, answer
    (event,) = gateway.publisher.events
    assert answer["event_ids"] == [event.event_id]
    assert event.event_type is EventType.REFUND_ISSUED and event.order_id == "820982911946154508"
    refund = event.payload
    assert isinstance(refund, RefundIssued)
    assert (refund.refund_id, refund.amount.amount_minor, refund.amount.currency) == ("509562969", 19900, "USD")
    assert [(i.sku, i.name, i.quantity) for i in refund.items] == [("IPOD2008PINK", "IPod Nano - 8GB", 1)]
    assert refund.shipping_refunded is False
    assert (event.customer.customer_id, event.customer.email, event.customer.display_name) == (
        "115310627314723954", "jon@example.org", "John Smith")  # as orders/create gives them
    assert (event.customer.locale, event.customer.time_zone) == ("en", "America/New_York")
    assert event.order_url is not None and event.order_url.startswith("https://jsmith.myshopify.com/")
    (asked,) = gateway.admin.requests
    assert (asked["shop"], asked["version"], asked["token"]) == (SHOP, "2026-07", TOKEN)
    assert asked["variables"] == {"id": ORDER_GID} and "order(id: $id)" in asked["query"]


async def test_a_shipping_refund_says_so(gateway: Gateway) -> None:
    status, _, answer = await gateway.deliver("refunds/create", fixture("shopify", "refunds_create_shipping.json"))
    assert status == 202, answer
    refund = gateway.publisher.events[0].payload
    assert isinstance(refund, RefundIssued)
    assert (refund.amount.amount_minor, refund.items, refund.shipping_refunded) == (1000, (), True)


async def test_an_amount_refunded_without_items_or_shipping_is_told_as_the_amount(gateway: Gateway) -> None:
    """A refund of an amount by hand (goodwill, a price corrected): before, it was "nothing to tell" (200, ignored),
    though the money is on its way to the customer."""
    body = json.loads(fixture("shopify", "refunds_create.json"))
    body["refund_line_items"], body["order_adjustments"] = [], []
    status, _, answer = await gateway.deliver("refunds/create", json.dumps(body).encode())
    assert status == 202, answer
    (event,) = gateway.publisher.events
    refund = event.payload
    assert isinstance(refund, RefundIssued)
    assert (refund.amount.amount_minor, refund.items, refund.shipping_refunded) == (19900, (), False)


async def test_a_retried_refund_delivery_gets_the_same_event_id(gateway: Gateway) -> None:
    body = fixture("shopify", "refunds_create.json")
    first, again = [(await gateway.deliver("refunds/create", body, "e-7"))[2] for _ in range(2)]
    other = (await gateway.deliver("refunds/create", body, "e-8"))[2]
    assert first["event_ids"] == again["event_ids"] != other["event_ids"]


@pytest.mark.parametrize(("status", "kind", "problem"), [
    ("out_for_delivery", EventType.OUT_FOR_DELIVERY, None),
    ("delivered", EventType.ORDER_DELIVERED, None),
    ("attempted_delivery", EventType.DELIVERY_PROBLEM, DeliveryProblemKind.ATTEMPTED),
    ("failure", EventType.DELIVERY_PROBLEM, DeliveryProblemKind.DELAYED),
    ("delayed", EventType.DELIVERY_PROBLEM, DeliveryProblemKind.DELAYED),
])
async def test_a_fulfillment_event_is_the_parcel_news_of_its_status(gateway: Gateway, status: str, kind: EventType,
                                                                    problem: DeliveryProblemKind | None) -> None:
    code, _, answer = await gateway.deliver("fulfillment_events/create",
                                            _status(fixture("shopify", "fulfillment_events_create.json"), status))
    assert code == 202, answer
    (event,) = gateway.publisher.events
    assert event.event_type is kind and event.order_id == "820982911946154508"
    assert event.customer.email == "jon@example.org" and event.customer.customer_id == "115310627314723954"
    payload = event.payload
    if isinstance(payload, OrderDelivered):
        assert payload.delivered_at.isoformat() == "2022-04-08T09:00:00-04:00"  # the event's happened_at
        assert [(i.sku, i.quantity) for i in payload.items] == [("IPOD2008PINK", 1)]
    else:
        assert isinstance(payload, OutForDelivery | DeliveryProblem)
        assert (payload.shipment_id, payload.carrier) == ("123456", "UPS")
        assert payload.tracking_url.startswith("https://www.ups.com/")
        assert getattr(payload, "kind", None) is problem
    (asked,) = gateway.admin.requests
    assert asked["variables"] == {"id": FULFILLMENT_GID} and "fulfillment(id: $id)" in asked["query"]


@pytest.mark.parametrize("status", ["in_transit", "confirmed", "label_printed", "ready_for_pickup", ""])
async def test_a_fulfillment_event_with_nothing_to_tell_is_200_without_a_lookup(gateway: Gateway,
                                                                                status: str) -> None:
    code, _, answer = await gateway.deliver("fulfillment_events/create",
                                            _status(fixture("shopify", "fulfillment_events_create.json"), status))
    assert (code, answer) == (200, {"result": "ignored"})
    assert gateway.admin.requests == [] and gateway.publisher.events == []
    assert gateway.counted("unmapped") == 1


@pytest.mark.parametrize(("status", "update"), [
    ("out_for_delivery", "fulfillments_update_out_for_delivery.json"),
    ("delivered", "fulfillments_update_delivered.json"),
    ("attempted_delivery", "fulfillments_update_attempted_delivery.json"),
])
async def test_the_same_news_from_fulfillments_update_and_a_fulfillment_event_is_one_event_id(
        gateway: Gateway, status: str, update: str) -> None:
    """Shopify tells a parcel's status twice when the app subscribes to both topics; each delivery has an
    X-Shopify-Event-Id of its own, so the id comes from the fulfillment and the status, and the consumer's dedupe
    drops the second copy."""
    updated_at = json.loads(fixture("shopify", update))["updated_at"]
    event_body = _on(_status(fixture("shopify", "fulfillment_events_create.json"), status), updated_at)
    answers = [await gateway.deliver("fulfillments/update", fixture("shopify", update), "delivery-1"),
               await gateway.deliver("fulfillment_events/create", event_body, "delivery-2"),
               await gateway.deliver("fulfillments/update", fixture("shopify", update), "delivery-3")]
    assert [a[0] for a in answers] == [202, 202, 202], [a[2] for a in answers]
    ids = {a[2]["event_ids"][0] for a in answers}
    assert len(ids) == 1
    assert len({(e.event_type, e.payload.shipment_id) for e in gateway.publisher.events}) == 1  # type: ignore[union-attr]


async def test_the_same_status_on_another_day_is_news_again(gateway: Gateway) -> None:
    """A second attempt (or out for delivery again) the next day is told again, as the consumer's rules have it;
    the same status twice on one day is one e-mail."""
    body = _status(fixture("shopify", "fulfillment_events_create.json"), "attempted_delivery")
    ids = [(await gateway.deliver("fulfillment_events/create", _on(body, when), f"d-{i}"))[2]["event_ids"][0]
           for i, when in enumerate(["2022-04-08T09:00:00-04:00", "2022-04-08T15:00:00-04:00",
                                     "2022-04-09T09:00:00-04:00"])]
    assert ids[0] == ids[1] != ids[2]


async def test_another_status_of_the_same_parcel_is_another_event(gateway: Gateway) -> None:
    body = fixture("shopify", "fulfillment_events_create.json")
    out = (await gateway.deliver("fulfillment_events/create", _status(body, "out_for_delivery")))[2]
    delivered = (await gateway.deliver("fulfillment_events/create", _status(body, "delivered")))[2]
    assert out["event_ids"] != delivered["event_ids"]


@pytest.mark.parametrize(("status", "headers"), [(503, {}), (500, {}), (502, {}), (429, {"Retry-After": "2.0"})])
async def test_an_admin_api_that_does_not_answer_gets_shopify_to_retry_with_503(
        gateway: Gateway, status: int, headers: dict[str, str]) -> None:
    gateway.admin.status, gateway.admin.headers = status, headers
    for topic, name in (("refunds/create", "refunds_create.json"),
                        ("fulfillment_events/create", "fulfillment_events_create.json")):
        body = _status(fixture("shopify", name), "delivered")
        code, answer_headers, answer = await gateway.deliver(topic, body)
        assert (code, answer_headers.get("Retry-After")) == (503, "7"), answer
        assert "Admin API" in answer["error"]
    assert gateway.publisher.events == [] and gateway.counted("unavailable") == 2


async def test_a_throttled_lookup_is_503_too(gateway: Gateway) -> None:
    gateway.admin.answer = json.dumps({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]
                                       }).encode()
    code, headers, _ = await gateway.deliver("refunds/create", fixture("shopify", "refunds_create.json"))
    assert (code, headers.get("Retry-After")) == (503, "7")


async def test_a_refused_token_is_503_and_logged_as_an_error(gateway: Gateway,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    gateway.admin.status = 401
    with caplog.at_level(logging.WARNING):
        code, _, _ = await gateway.deliver("refunds/create", fixture("shopify", "refunds_create.json"))
    assert code == 503  # Shopify retries for 48 hours: time to fix the token
    assert any(r.levelno == logging.ERROR and "ORDERNOTIFY_SHOPIFY_ADMIN_TOKEN" in r.getMessage()
               for r in caplog.records)
    assert TOKEN not in caplog.text


async def test_an_unreachable_admin_api_is_503() -> None:
    closed = "http://127.0.0.1:9/{shop}/admin/api/{version}/graphql.json"  # the discard port: nothing listens
    served = await _gateway(AdminApiDouble(), closed)
    try:
        code, headers, answer = await served.deliver("refunds/create", fixture("shopify", "refunds_create.json"))
    finally:
        await served.client.close()
    assert (code, headers.get("Retry-After")) == (503, "7"), answer
    assert served.counted("unavailable") == 1


@pytest.mark.parametrize("answer", [b'{"data": {"order": null, "fulfillment": null}}', None])
async def test_a_deleted_order_is_200_and_counted(gateway: Gateway, answer: bytes | None) -> None:
    if answer is None:
        gateway.admin.status = 404
    else:
        gateway.admin.answer = answer
    for topic, name in (("refunds/create", "refunds_create.json"),
                        ("fulfillment_events/create", "fulfillment_events_create.json")):
        code, _, body = await gateway.deliver(topic, _status(fixture("shopify", name), "delivered"))
        assert (code, body) == (200, {"result": "ignored"})
    assert gateway.counted("unmapped") == 2 and gateway.publisher.events == []


async def test_a_bad_signature_is_401_and_looks_nothing_up(gateway: Gateway) -> None:
    body = fixture("shopify", "refunds_create.json")
    code, _, _ = await gateway.deliver("refunds/create", body, signature=hmac_base64("another secret", body))
    assert code == 401
    assert gateway.admin.requests == [] and gateway.counted("bad_signature") == 1


@pytest.mark.parametrize("shop", ["", "attacker.example.org", "jsmith.myshopify.com.attacker.example.org",
                                  "127.0.0.1:8080"])
async def test_a_shop_domain_that_is_not_shopifys_is_refused_and_the_token_stays_home(gateway: Gateway,
                                                                                       shop: str) -> None:
    code, _, answer = await gateway.deliver("refunds/create", fixture("shopify", "refunds_create.json"), shop=shop)
    assert code == 400 and answer["error"].startswith("X-Shopify-Shop-Domain")
    assert gateway.admin.requests == []


async def test_without_a_token_both_topics_stay_unmapped(admin: tuple[AdminApiDouble, str]) -> None:
    served = await _gateway(admin[0], admin[1], token="")
    try:
        for topic, name in (("refunds/create", "refunds_create.json"),
                            ("fulfillment_events/create", "fulfillment_events_create.json")):
            code, _, answer = await served.deliver(topic, _status(fixture("shopify", name), "delivered"))
            assert (code, answer) == (200, {"result": "ignored"})
    finally:
        await served.client.close()
    assert admin[0].requests == []


async def test_a_refund_that_returns_no_money_is_nothing_to_tell(gateway: Gateway) -> None:
    body = fixture("shopify", "refunds_create.json").replace(b'"kind": "refund"', b'"kind": "void"')
    code, _, answer = await gateway.deliver("refunds/create", body)
    assert (code, answer) == (200, {"result": "ignored"})
    assert gateway.admin.requests == []


async def test_nothing_of_the_customer_is_logged(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        await gateway.deliver("refunds/create", fixture("shopify", "refunds_create.json"))
        await gateway.deliver("fulfillment_events/create",
                              _status(fixture("shopify", "fulfillment_events_create.json"), "delivered"))
        gateway.admin.answer = b'{"data": {"order": null}}'
        await gateway.deliver("refunds/create", fixture("shopify", "refunds_create.json"))
    assert len(gateway.publisher.events) == 2
    for secret in ("jon@example.org", "John", "Smith", TOKEN):
        assert secret not in caplog.text


async def test_the_adapter_alone_maps_as_the_gateway_does(admin: tuple[AdminApiDouble, str]) -> None:
    adapter = adapter_from_settings(_settings(admin[1]))
    body = fixture("shopify", "refunds_create.json")
    headers = {"X-Shopify-Topic": "refunds/create", "X-Shopify-Event-Id": "e-1", "X-Shopify-Shop-Domain": SHOP}
    assert ShopifyAdapter(SECRET).events(headers, body, DEFAULTS) == []  # the payload alone: nothing
    (event,) = await adapter_events(adapter, headers, body, DEFAULTS)
    assert event.event_type is EventType.REFUND_ISSUED


async def test_an_admin_api_that_is_too_slow_is_503_within_the_lookup_timeout() -> None:
    slow = web.Application()

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response()

    slow.router.add_post("/{shop}/admin/api/{version}/graphql.json", hang)
    async with TestServer(slow, host="127.0.0.1") as server:
        settings = dataclasses.replace(
            _settings(f"http://127.0.0.1:{server.port}/{{shop}}/admin/api/{{version}}/graphql.json"),
            gateway_answer_timeout_s=0.4)
        adapter = adapter_from_settings(settings)
        headers = {"X-Shopify-Topic": "refunds/create", "X-Shopify-Event-Id": "e-1", "X-Shopify-Shop-Domain": SHOP}
        started = time.monotonic()
        with pytest.raises(PlatformRefused) as refused:
            await adapter_events(adapter, headers, fixture("shopify", "refunds_create.json"), DEFAULTS)
        assert time.monotonic() - started < 1.0  # half the answer timeout
    assert (refused.value.status, refused.value.retriable) == (503, True)


@pytest.mark.parametrize(("name", "value"), [
    ("ORDERNOTIFY_SHOPIFY_ADMIN_API_VERSION", "latest"),
    ("ORDERNOTIFY_SHOPIFY_ADMIN_API_URL", "ftp://{shop}/graphql"),
    ("ORDERNOTIFY_SHOPIFY_ADMIN_API_URL", "https://{shop}/admin/api/{release}/graphql.json"),
])
def test_admin_api_settings_are_checked_at_start(name: str, value: str) -> None:
    with pytest.raises(ConfigError):
        load_settings(None, {name: value})


def test_the_token_is_read_like_the_other_secrets(tmp_path: Any) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    settings = load_settings(None, {"ORDERNOTIFY_SHOPIFY_ADMIN_TOKEN_FILE": str(path)})
    assert settings.shopify_admin_token.reveal() == TOKEN and TOKEN not in repr(settings)


async def test_the_lookup_and_the_broker_together_are_answered_within_the_answer_timeout(
        admin: tuple[AdminApiDouble, str]) -> None:
    """Shopify waits 5 s: the time the Admin API took is not the broker's to wait again in full."""
    from gateway.publishing import EventPublisher
    from producers.event_producer import OrderEventProducer
    from tests.producers.test_event_producer import FakeKafkaProducer

    double, url = admin
    double.delay_s = 0.8  # within the lookup's own timeout (half the answer timeout)
    settings = dataclasses.replace(_settings(url), gateway_answer_timeout_s=2.0)
    metrics = Metrics()
    silent = OrderEventProducer(settings, producer=FakeKafkaProducer("silent"))  # never acknowledges
    publisher = EventPublisher(settings, silent, metrics)
    app = gateway_app(settings, publisher, adapters_from_settings(settings), metrics)
    body = fixture("shopify", "refunds_create.json")
    headers = {"X-Shopify-Topic": "refunds/create", "X-Shopify-Hmac-Sha256": hmac_base64(SECRET, body),
               "X-Shopify-Event-Id": "e-1", "X-Shopify-Shop-Domain": SHOP, "Content-Type": "application/json"}
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        started = time.monotonic()
        answer = await client.post("/v1/platforms/shopify", data=body, headers=headers)
        took = time.monotonic() - started
    assert answer.status == 503 and double.requests
    assert took < settings.gateway_answer_timeout_s + 0.3, took
