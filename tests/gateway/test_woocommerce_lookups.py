"""WooCommerce's partial refunds, which ``order.updated`` lists without items: with a REST API key the adapter reads
the newest refund at the shop's REST API, here a double of it on loopback, and the gateway answers WooCommerce as
it must (202, 200 for nothing to tell, 503 with Retry-After while the REST API does not answer, 401 for a bad
signature, 400 for a delivery naming another shop). The broker is a fake publisher: these tests are about the
mapping and the answers, the integration tests about Kafka."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.adapters.base import PlatformRefused, ShopDefaults, adapter_events
from gateway.adapters.reading import event_id
from gateway.adapters.woocommerce import WooCommerceAdapter, adapter_from_settings
from gateway.adapters.woocommerce_api import shop_url
from ordernotify.config import ConfigError, Secret, Settings, load_settings
from ordernotify.metrics import Metrics
from schemas.events import EventType, OrderEvent, RefundIssued
from tests.gateway.adapters_support import Publisher, fixture, hmac_base64, requests_counted, served_gateway

SECRET = "woo webhook secret"
KEY = "ck_test_consumer_key"
KEY_SECRET = "cs_test_consumer_secret"
DEFAULTS = ShopDefaults(locale="en-US", time_zone="America/Los_Angeles")
REFUNDS = {729: "rest_refund_729_items.json", 730: "rest_refund_730_shipping.json", 731: "rest_refund_731_amount.json",
           726: "rest_refund_726_order_fully_refunded.json"}
NOT_FOUND = {"code": "woocommerce_rest_shop_order_refund_invalid_id", "message": "Invalid ID.", "data": {"status": 404}}


class RestApiDouble:
    """The shop's REST API: answers ``GET /wp-json/wc/v3/orders/{id}/refunds/{refund_id}`` from the fixtures, or
    as a test says (``status``, ``answer``); keeps what each request asked, and with which key."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.answer: Any = None
        self.headers: dict[str, str] = {}
        self.app = web.Application()
        self.app.router.add_get("/wp-json/wc/v3/orders/{order_id}/refunds/{refund_id}", self._refund)

    async def _refund(self, request: web.Request) -> web.Response:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        self.requests.append({"order_id": request.match_info["order_id"],
                              "refund_id": request.match_info["refund_id"],
                              "auth": base64.b64decode(encoded).decode() if scheme == "Basic" else None})
        if self.status != 200 or self.answer is not None:
            return web.json_response(self.answer if self.answer is not None else {}, status=self.status,
                                     headers=self.headers)
        name = REFUNDS.get(int(request.match_info["refund_id"]))
        if name is None:
            return web.json_response(NOT_FOUND, status=404)
        return web.Response(body=fixture("woocommerce", name), content_type="application/json")



@dataclasses.dataclass
class Gateway:
    client: TestClient[web.Request, web.Application]
    api: RestApiDouble
    shop: str
    publisher: Publisher
    metrics: Metrics

    async def deliver(self, body: bytes, topic: str = "order.updated", signature: str | None = None,
                      source: str | None = None) -> tuple[int, dict[str, str], dict[str, Any]]:
        headers = {"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Signature": signature or hmac_base64(SECRET, body),
                   "X-WC-Webhook-Source": self.shop if source is None else source,
                   "X-WC-Webhook-Resource": "order", "X-WC-Webhook-Delivery-ID": "36e520ebabc2fa725092ff4a47acedf2",
                   "Content-Type": "application/json"}
        answer = await self.client.post("/v1/platforms/woocommerce", data=body, headers=headers)
        return answer.status, dict(answer.headers), await answer.json()

    def counted(self, outcome: str) -> float:
        return requests_counted(self.metrics, "woocommerce", outcome)


def _settings(shop: str, key: str = KEY) -> Settings:
    return dataclasses.replace(Settings(), woocommerce_secret=Secret(SECRET), woocommerce_api_consumer_key=Secret(key),
                               woocommerce_api_consumer_secret=Secret(KEY_SECRET if key else ""),
                               woocommerce_shop_url=shop if key else "", gateway_retry_after_s=7)


@pytest.fixture
async def api() -> AsyncIterator[tuple[RestApiDouble, str]]:
    double = RestApiDouble()
    async with TestServer(double.app, host="127.0.0.1") as server:
        yield double, f"http://127.0.0.1:{server.port}/"


async def _gateway(double: RestApiDouble, shop: str, key: str = KEY) -> Gateway:
    client, publisher, metrics = await served_gateway(_settings(shop, key))
    return Gateway(client, double, shop, publisher, metrics)


@pytest.fixture
async def gateway(api: tuple[RestApiDouble, str]) -> AsyncIterator[Gateway]:
    served = await _gateway(*api)
    yield served
    await served.client.close()


def _order(name: str, **changes: Any) -> bytes:
    return json.dumps({**json.loads(fixture("woocommerce", name)), **changes}).encode()


def _refunded(name: str, *refund_ids: int, **changes: Any) -> bytes:
    """An order fixture listing these refunds, as order.updated lists them (newest first)."""
    refunds = [{"id": i, "reason": "", "total": "-1.00"} for i in sorted(refund_ids, reverse=True)]
    return _order(name, refunds=refunds, **changes)


def _refund_of(events: list[OrderEvent]) -> tuple[OrderEvent, RefundIssued]:
    (event,) = [e for e in events if e.event_type is EventType.REFUND_ISSUED]
    assert isinstance(event.payload, RefundIssued)
    return event, event.payload


def _status_only(name: str) -> list[OrderEvent]:
    """What the adapter without a REST API key makes of a fixture."""
    body = fixture("woocommerce", name)
    return WooCommerceAdapter(SECRET).events({"X-WC-Webhook-Topic": "order.updated"}, body, DEFAULTS)


async def test_a_partial_refund_names_its_items_and_occurred_when_it_was_made(gateway: Gateway) -> None:
    status, _, answer = await gateway.deliver(fixture("woocommerce", "order_updated_partially_refunded.json"))
    assert status == 202, answer
    placed, refund_event = gateway.publisher.events
    assert placed.event_type is EventType.ORDER_PLACED  # the status's own news, under the order's one id
    assert placed.event_id == _status_only("order_created.json")[0].event_id
    event, refund = _refund_of(gateway.publisher.events)
    assert event is refund_event and answer["event_ids"] == [placed.event_id, event.event_id]
    assert event.event_id == event_id("woocommerce", "727/729", "REFUND_ISSUED")
    assert (refund.refund_id, refund.amount.amount_minor, refund.amount.currency) == ("729", 645, "USD")
    assert [(i.sku, i.name, i.quantity) for i in refund.items] == [("93", "Woo Single #1", 2)]  # |-2|
    assert refund.shipping_refunded is False and refund.payment_method == "Direct Bank Transfer"
    assert event.occurred_at.isoformat() == "2017-03-23T13:15:00+00:00"  # the refund's date_created_gmt
    assert event.order_id == "727" and event.customer.email == "john.doe@example.org"
    (asked,) = gateway.api.requests
    assert asked == {"order_id": "727", "refund_id": "729", "auth": f"{KEY}:{KEY_SECRET}"}


async def test_a_shipping_refund_says_so(gateway: Gateway) -> None:
    status, _, answer = await gateway.deliver(_refunded("order_created.json", 730))
    assert status == 202, answer
    _, refund = _refund_of(gateway.publisher.events)
    assert (refund.amount.amount_minor, refund.items, refund.shipping_refunded) == (1000, (), True)


async def test_only_the_newest_refund_is_looked_up(gateway: Gateway) -> None:
    await gateway.deliver(_refunded("order_created.json", 729, 731, 730))
    assert [r["refund_id"] for r in gateway.api.requests] == ["731"]  # the highest id, wherever it is listed


async def test_an_amount_given_back_without_items_is_told_as_the_amount(gateway: Gateway) -> None:
    """A goodwill refund (an amount, no items, no shipping) is money on its way to the customer: before, the
    contract asked for items or shipping and it was not told at all (200, unmapped, for a completed order)."""
    status, _, answer = await gateway.deliver(_refunded("order_created.json", 731))
    assert status == 202, answer
    assert [e.event_type for e in gateway.publisher.events] == [EventType.ORDER_PLACED, EventType.REFUND_ISSUED]
    _, refund = _refund_of(gateway.publisher.events)
    assert (refund.refund_id, refund.amount.amount_minor, refund.items, refund.shipping_refunded) == (
        "731", 1000, (), False)
    status, _, answer = await gateway.deliver(_refunded("order_updated_completed_untracked.json", 731))
    assert status == 202, answer
    assert [e.event_type for e in gateway.publisher.events[2:]] == [EventType.REFUND_ISSUED]
    assert len(gateway.api.requests) == 2


async def test_a_refunded_order_is_its_newest_refund_with_the_event_id_it_had_without_a_key(gateway: Gateway) -> None:
    """Setting an order to refunded by hand makes WooCommerce add a refund of the rest that names no items: the
    order's items and shipping are told, as without a key, but with that refund's amount and date."""
    status, _, answer = await gateway.deliver(fixture("woocommerce", "order_updated_refunded.json"))
    assert status == 202, answer
    (event,) = gateway.publisher.events
    (before,) = _status_only("order_updated_refunded.json")
    assert event.event_id == before.event_id == event_id("woocommerce", "727/726", "REFUND_ISSUED")
    _, refund = _refund_of([event])
    assert (refund.refund_id, refund.amount.amount_minor, refund.shipping_refunded) == ("726", 2935, True)
    assert [(i.sku, i.quantity) for i in refund.items] == [("93", 2), ("Bar3", 1)]
    assert event.occurred_at.isoformat() == "2017-03-24T08:59:58+00:00"  # not the order's date_modified_gmt
    assert before.occurred_at.isoformat() == "2017-03-24T09:00:00+00:00"


async def test_a_refunded_order_whose_refund_names_items_tells_those(gateway: Gateway) -> None:
    code, _, answer = await gateway.deliver(_refunded("order_updated_refunded.json", 726, 729))
    assert code == 202, answer
    (event,) = gateway.publisher.events
    _, refund = _refund_of([event])
    assert (refund.refund_id, refund.amount.amount_minor, [i.sku for i in refund.items]) == ("729", 645, ["93"])


async def test_a_later_update_of_an_old_refund_keeps_its_date_and_id(gateway: Gateway) -> None:
    """Shipping the rest weeks later sends the order again, refunds and all: the newest refund is told again under
    the same id and at its own date, so the consumer takes it as the old news it is (dedupe, --max-event-age-h)."""
    await gateway.deliver(fixture("woocommerce", "order_updated_partially_refunded.json"))
    first = _refund_of(gateway.publisher.events)[0]
    later = _refunded("order_updated_completed.json", 729, date_modified_gmt="2017-04-20T08:00:00",
                      date_completed_gmt="2017-04-20T08:00:00")
    status, _, answer = await gateway.deliver(later)
    assert status == 202, answer
    shipped, again = gateway.publisher.events[2:]
    assert shipped.event_type is EventType.ORDER_SHIPPED
    assert shipped.occurred_at.isoformat() == "2017-04-20T08:00:00+00:00"
    assert (again.event_id, again.occurred_at) == (first.event_id, datetime.fromisoformat("2017-03-23T13:15:00+00:00"))


async def test_a_retried_delivery_gets_the_same_event_ids(gateway: Gateway) -> None:
    body = fixture("woocommerce", "order_updated_partially_refunded.json")
    first, again = [(await gateway.deliver(body))[2]["event_ids"] for _ in range(2)]
    assert first == again and len(first) == 2


async def test_without_a_key_nothing_is_looked_up_and_the_status_is_mapped_as_before(
        api: tuple[RestApiDouble, str]) -> None:
    served = await _gateway(api[0], api[1], key="")
    try:
        status, _, answer = await served.deliver(fixture("woocommerce", "order_updated_partially_refunded.json"))
        assert status == 202 and [e.event_type for e in served.publisher.events] == [EventType.ORDER_PLACED]
        status, _, answer = await served.deliver(fixture("woocommerce", "order_updated_refunded.json"))
        assert status == 202, answer
        _, refund = _refund_of(served.publisher.events[1:])
        assert (refund.refund_id, refund.amount.amount_minor, len(refund.items)) == ("726", 2935, 2)
        assert served.publisher.events[1].occurred_at.isoformat() == "2017-03-24T09:00:00+00:00"
        status, _, answer = await served.deliver(_refunded("order_updated_completed_untracked.json", 729))
        assert (status, answer) == (200, {"result": "ignored"}) and served.counted("unmapped") == 1
    finally:
        await served.client.close()
    assert api[0].requests == []


@pytest.mark.parametrize(("status", "headers"), [(500, {}), (502, {}), (503, {}), (429, {"Retry-After": "30"})])
async def test_a_rest_api_that_does_not_answer_is_503_with_retry_after(gateway: Gateway, status: int,
                                                                       headers: dict[str, str]) -> None:
    gateway.api.status, gateway.api.headers = status, headers
    for body in (fixture("woocommerce", "order_updated_partially_refunded.json"),
                 fixture("woocommerce", "order_updated_refunded.json")):
        code, answer_headers, answer = await gateway.deliver(body)
        assert (code, answer_headers.get("Retry-After")) == (503, "7"), answer
        assert "REST API" in answer["error"] and "refund" in answer["error"]
    assert gateway.publisher.events == [] and gateway.counted("unavailable") == 2


async def test_an_unreachable_rest_api_is_503() -> None:
    served = await _gateway(RestApiDouble(), "http://127.0.0.1:9/")  # the discard port: nothing listens
    try:
        code, headers, answer = await served.deliver(fixture("woocommerce", "order_updated_partially_refunded.json"))
    finally:
        await served.client.close()
    assert (code, headers.get("Retry-After")) == (503, "7"), answer
    assert served.counted("unavailable") == 1 and served.publisher.events == []


async def test_a_rest_api_that_is_too_slow_is_503_within_half_the_answer_timeout() -> None:
    slow = web.Application()

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response()

    slow.router.add_get("/wp-json/wc/v3/orders/{order_id}/refunds/{refund_id}", hang)
    async with TestServer(slow, host="127.0.0.1") as server:
        shop = f"http://127.0.0.1:{server.port}/"
        adapter = adapter_from_settings(dataclasses.replace(_settings(shop), gateway_answer_timeout_s=0.4))
        headers = {"X-WC-Webhook-Topic": "order.updated", "X-WC-Webhook-Source": shop}
        started = time.monotonic()
        with pytest.raises(PlatformRefused) as refused:
            await adapter_events(adapter, headers, fixture("woocommerce", "order_updated_partially_refunded.json"),
                                 DEFAULTS)
        assert time.monotonic() - started < 1.0
    assert (refused.value.status, refused.value.retriable) == (503, True)


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_key_is_503_and_logged_as_an_error(gateway: Gateway, caplog: pytest.LogCaptureFixture,
                                                           status: int) -> None:
    gateway.api.status = status
    gateway.api.answer = {"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot view this resource.",
                          "data": {"status": status}}
    with caplog.at_level(logging.WARNING):
        code, headers, _ = await gateway.deliver(fixture("woocommerce", "order_updated_partially_refunded.json"))
    assert (code, headers.get("Retry-After")) == (503, "7")
    assert any(r.levelno == logging.ERROR and "ORDERNOTIFY_WOOCOMMERCE_API_CONSUMER_KEY" in r.getMessage()
               for r in caplog.records)
    assert KEY not in caplog.text and KEY_SECRET not in caplog.text


@pytest.mark.parametrize(("status", "answer"), [
    (301, {}),  # not followed: the key goes to the configured shop only
    (404, {"code": "rest_no_route", "message": "No route was found matching the URL and request method.",
           "data": {"status": 404}}),  # WooCommerce off, or /wp-json/ not served: not a deleted refund
    (200, {"id": 1, "amount": "1.00"}),  # another refund than the one asked
])
async def test_an_answer_that_is_not_the_refund_is_503(gateway: Gateway, status: int, answer: Any) -> None:
    gateway.api.status, gateway.api.answer = status, answer
    if status == 301:
        gateway.api.headers = {"Location": "https://attacker.example.org/"}
    code, _, body = await gateway.deliver(fixture("woocommerce", "order_updated_partially_refunded.json"))
    assert code == 503, body
    assert len(gateway.api.requests) == 1


async def test_a_deleted_refund_is_not_told(gateway: Gateway) -> None:
    status, _, answer = await gateway.deliver(_refunded("order_updated_completed_untracked.json", 999))
    assert (status, answer) == (200, {"result": "ignored"})
    status, _, answer = await gateway.deliver(_refunded("order_updated_refunded.json", 999))
    assert (status, answer) == (200, {"result": "ignored"})
    status, _, answer = await gateway.deliver(_refunded("order_created.json", 999))
    assert status == 202 and [e.event_type for e in gateway.publisher.events] == [EventType.ORDER_PLACED]
    assert gateway.counted("unmapped") == 2 and len(gateway.api.requests) == 3


async def test_a_bad_signature_is_401_and_looks_nothing_up(gateway: Gateway) -> None:
    body = fixture("woocommerce", "order_updated_partially_refunded.json")
    code, _, _ = await gateway.deliver(body, signature=hmac_base64("another secret", body))
    assert code == 401
    assert gateway.api.requests == [] and gateway.counted("bad_signature") == 1


@pytest.mark.parametrize("source", ["", "https://attacker.example.org/", "http://127.0.0.1:9/",
                                    "http://127.0.0.1.attacker.example.org/", "not a url"])
async def test_a_delivery_naming_another_shop_is_refused_and_the_key_stays_home(gateway: Gateway,
                                                                                source: str) -> None:
    """WooCommerce signs the body only: a signed body replayed with another X-WC-Webhook-Source must neither have the
    key sent elsewhere nor the order looked up at a shop it does not belong to."""
    code, _, answer = await gateway.deliver(fixture("woocommerce", "order_updated_partially_refunded.json"),
                                            source=source)
    assert code == 400 and answer["error"].startswith("X-WC-Webhook-Source")
    assert gateway.api.requests == [] and gateway.publisher.events == []


async def test_the_same_shop_spelt_otherwise_is_that_shop(gateway: Gateway) -> None:
    code, _, answer = await gateway.deliver(fixture("woocommerce", "order_updated_partially_refunded.json"),
                                            source=gateway.shop.upper().replace("HTTP://", "http://").rstrip("/"))
    assert code == 202, answer
    assert len(gateway.api.requests) == 1 and _refund_of(gateway.publisher.events)[1].refund_id == "729"


async def test_an_order_without_refunds_is_not_looked_up(gateway: Gateway) -> None:
    code, _, _ = await gateway.deliver(fixture("woocommerce", "order_created.json"), source="")
    assert code == 202 and gateway.api.requests == []


async def test_nothing_of_the_customer_nor_the_key_is_logged(gateway: Gateway,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        await gateway.deliver(fixture("woocommerce", "order_updated_partially_refunded.json"))
        await gateway.deliver(_refunded("order_created.json", 731))
        await gateway.deliver(_refunded("order_created.json", 999))
        gateway.api.status = 500
        await gateway.deliver(fixture("woocommerce", "order_updated_partially_refunded.json"))
    assert [e.event_type for e in gateway.publisher.events] == [EventType.ORDER_PLACED, EventType.REFUND_ISSUED,
                                                                EventType.ORDER_PLACED, EventType.REFUND_ISSUED,
                                                                EventType.ORDER_PLACED]
    assert len(gateway.api.requests) == 4
    for secret in ("john.doe@example.org", "John", "Doe", "969 Market", KEY, KEY_SECRET,
                   base64.b64encode(f"{KEY}:{KEY_SECRET}".encode()).decode()):
        assert secret not in caplog.text


@pytest.mark.parametrize(("given", "expected"), [
    ("https://shop.example.org/", "https://shop.example.org/"),
    ("HTTPS://Shop.Example.org:443", "https://shop.example.org/"),
    ("https://example.org/shop", "https://example.org/shop/"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/"),
    ("https://shop.example.org/?p=1", None),
    ("https://user:pw@shop.example.org/", None),
    ("ftp://shop.example.org/", None),
    ("https://shop.example.org:99999/", None),
    ("shop.example.org", None),
])
def test_a_shop_address_has_one_spelling(given: str, expected: str | None) -> None:
    assert shop_url(given) == expected


@pytest.mark.parametrize("environ", [
    {"ORDERNOTIFY_WOOCOMMERCE_API_CONSUMER_KEY": KEY, "ORDERNOTIFY_WOOCOMMERCE_SHOP_URL": "https://shop.example.org/"},
    {"ORDERNOTIFY_WOOCOMMERCE_API_CONSUMER_KEY": KEY, "ORDERNOTIFY_WOOCOMMERCE_API_CONSUMER_SECRET": KEY_SECRET},
    {"ORDERNOTIFY_WOOCOMMERCE_SHOP_URL": "http://shop.example.org/"},  # Basic auth in clear
    {"ORDERNOTIFY_WOOCOMMERCE_SHOP_URL": "https://shop.example.org/?lang=de"},
    {"ORDERNOTIFY_WOOCOMMERCE_SHOP_URL": "https://shop.example.org:99999/"},
])
def test_rest_api_settings_are_checked_at_start(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_settings(None, environ)


def test_the_key_is_read_like_the_other_secrets(tmp_path: Any) -> None:
    for name, value in (("key", KEY), ("secret", KEY_SECRET)):
        (tmp_path / name).write_text(value + "\n", encoding="utf-8")
    settings = load_settings(None, {"ORDERNOTIFY_WOOCOMMERCE_API_CONSUMER_KEY_FILE": str(tmp_path / "key"),
                                    "ORDERNOTIFY_WOOCOMMERCE_API_CONSUMER_SECRET_FILE": str(tmp_path / "secret"),
                                    "ORDERNOTIFY_WOOCOMMERCE_SHOP_URL": "https://shop.example.org/"})
    assert settings.woocommerce_api_consumer_key.reveal() == KEY
    assert settings.woocommerce_api_consumer_secret.reveal() == KEY_SECRET
    assert KEY not in repr(settings) and KEY_SECRET not in repr(settings)
