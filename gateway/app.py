"""The gateway's HTTP endpoints: signed webhooks in, acknowledged events out.

``POST /v1/events`` takes one order event in ordernotify's own JSON shape (the shape ``ordernotify emit`` reads,
schemas/README.md), signed the Standard Webhooks way (:mod:`gateway.standard_webhooks`). ``POST /v1/platforms/{name}``
takes a platform's own webhook (Shopify, WooCommerce, Saleor), which its adapter verifies and maps. ``GET /metrics``,
``/healthz`` (the process serves) and ``/readyz`` (the producer holds the events topic's metadata) sit on the same port.

Answers (every one within ``--gateway-answer-timeout-s``), and what is counted as
``ordernotify_gateway_requests_total{source, outcome}``:

| answer | when | outcome |
|---|---|---|
| 202 ``accepted`` | the broker acknowledged every event of the request (``event_ids`` lists them) | accepted |
| 200 ``ignored`` | a platform's webhook with nothing to tell a customer | unmapped |
| 400 | not UTF-8, not JSON, not a JSON object (the answer says where) | malformed |
| 400 | not a valid order event: the answer's ``field`` names the culprit | invalid |
| 401 | missing or wrong signature, or signed outside the replay window | bad_signature |
| 404 | the source's secret is not set (its path is off), or no such platform | not_configured |
| 413 | body larger than ``--gateway-max-body-bytes`` | too_large |
| 415 | ``/v1/events``: not ``application/json`` | unsupported_media_type |
| 503 + ``Retry-After`` | the broker, or the platform's keys or API, did not answer in time: try later | unavailable |

Nothing is published for any answer but 202. The same request sent again gives the same event ids, so a retried
delivery never becomes a second e-mail. Nothing of a customer (address, name) is logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import Counter
from prometheus_client.exposition import choose_encoder

from gateway.adapters.base import Adapter, PlatformRefused, ShopDefaults, adapter_events
from gateway.exceptions import (
    BodyTooLarge,
    BrokerUnavailable,
    InvalidEvent,
    MalformedRequest,
    RequestRefused,
    SourceNotConfigured,
    UnsupportedMediaType,
)
from gateway.publishing import EventPublisher
from gateway.standard_webhooks import StandardWebhooksVerifier
from ordernotify.config import Settings
from ordernotify.metrics import GatewayOutcome, Metrics, bounded
from schemas import json_text
from schemas.events import OrderEvent
from schemas.exceptions import EventValidationError
from schemas.records import event_from_record
from schemas.relative_times import reference_now

log = logging.getLogger(__name__)

EVENTS_SOURCE = "events"
JSON_TYPE = "application/json"


def gateway_app(settings: Settings, publisher: EventPublisher, adapters: Mapping[str, Adapter],
                metrics: Metrics) -> web.Application:
    """The endpoints as an aiohttp application; the caller runs it and closes the publisher after it."""
    app = web.Application(client_max_size=settings.gateway_max_body_bytes)
    gateway = _Gateway(settings, publisher, adapters, metrics)
    app.router.add_post("/v1/events", gateway.events)
    app.router.add_post("/v1/platforms/{name}", gateway.platform)
    app.router.add_get("/metrics", gateway.metrics_page)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", gateway.readyz)
    return app


def shop_defaults(settings: Settings) -> ShopDefaults:
    """What adapters fill in when a platform's payload does not say: the ``--shop-default-*`` settings."""
    return ShopDefaults(locale=str(getattr(settings, "shop_default_locale", settings.default_locale)),
                        time_zone=str(getattr(settings, "shop_default_time_zone", "UTC")),
                        currency=getattr(settings, "shop_default_currency", None) or None)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


class _Gateway:
    def __init__(self, settings: Settings, publisher: EventPublisher, adapters: Mapping[str, Adapter],
                 metrics: Metrics) -> None:
        self.settings = settings
        self.publisher = publisher
        self.adapters = dict(adapters)
        self.metrics = metrics
        # Nearly every request is accepted: its labelled counter is looked up once per source, not per request.
        self._accepted: dict[str, Counter] = {}
        self.verifier = StandardWebhooksVerifier.from_secrets(settings.gateway_webhook_secrets.reveal(),
                                                              settings.gateway_replay_window_s)
        self.defaults = shop_defaults(settings)

    async def events(self, request: web.Request) -> web.Response:
        return await self._answer(EVENTS_SOURCE, request, self._own_events)

    async def platform(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        adapter = self.adapters.get(name)
        if adapter is None:
            log.warning("a webhook for platform %r, which is off here (on: %s)", bounded(name),
                        ", ".join(sorted(self.adapters)) or "none")
            return web.json_response({"error": f"no platform {name[:40]!r} here: on are "
                                               f"{', '.join(sorted(self.adapters)) or 'none'} (set its secret)"},
                                     status=404)

        async def read(request: web.Request) -> list[OrderEvent]:
            body = await _body(request, self.settings.gateway_max_body_bytes)
            adapter.verify(request.headers, body)
            return await adapter_events(adapter, request.headers, body, self.defaults)

        return await self._answer(adapter.name, request, read)

    async def _own_events(self, request: web.Request) -> list[OrderEvent]:
        if self.verifier is None:
            raise SourceNotConfigured("/v1/events is off: set ORDERNOTIFY_GATEWAY_WEBHOOK_SECRETS")
        if request.content_type != JSON_TYPE:
            raise UnsupportedMediaType(f"content type {request.content_type[:60]!r} is not {JSON_TYPE}")
        body = await _body(request, self.settings.gateway_max_body_bytes)
        self.verifier.verify(request.headers, body)
        return [_event(body)]

    async def _answer(self, source: str, request: web.Request,
                      read: Callable[[web.Request], Awaitable[list[OrderEvent]]]) -> web.Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.gateway_answer_timeout_s
        try:
            events = await read(request)
            if not events:
                self.metrics.count_gateway_request(source, GatewayOutcome.UNMAPPED)
                return web.json_response({"result": "ignored"}, status=200)
            # what reading took (a platform lookup: up to half of it) is not the broker's to wait again
            reports = await self.publisher.publish(events, deadline - loop.time())
        except RequestRefused as exc:
            return self._refused(source, exc.status, exc.outcome, str(exc), exc.field)
        except PlatformRefused as exc:
            if not exc.retriable:
                return self._refused(source, exc.status, _outcome_of(exc), str(exc), "")
            # the platform's keys or API could not be reached: like the broker, the sender tries again later
            self.metrics.count_gateway_request(source, GatewayOutcome.UNAVAILABLE)
            log.warning("%s webhook answered 503: %s", source, exc)
            return web.json_response({"error": str(exc)}, status=503,
                                     headers={"Retry-After": str(self.settings.gateway_retry_after_s)})
        except BrokerUnavailable as exc:
            self.metrics.count_gateway_request(source, GatewayOutcome.UNAVAILABLE)
            log.warning("%s webhook answered 503: %s", source, exc)
            retry_after = str(self.settings.gateway_retry_after_s)
            return web.json_response({"error": f"{exc}; send it again later"}, status=503,
                                     headers={"Retry-After": retry_after})
        self._count_accepted(source)
        log.debug("%s webhook: %d event(s) acknowledged", source, len(reports))
        return web.json_response({"result": "accepted", "event_ids": [r.event_id for r in reports]}, status=202)

    def _count_accepted(self, source: str) -> None:
        counter = self._accepted.get(source)
        if counter is None:
            counter = self._accepted[source] = self.metrics.gateway_requests.labels(
                source=bounded(source), outcome=GatewayOutcome.ACCEPTED.value)
        counter.inc()

    def _refused(self, source: str, status: int, outcome: GatewayOutcome, message: str, field: str) -> web.Response:
        self.metrics.count_gateway_request(source, outcome)
        # The message goes to the sender; the log names only the field (a problem may quote a value).
        log.warning("%s webhook refused with %s (%s%s)", source, status, outcome.value,
                    f", field {field}" if field else "")
        answer = {"error": message, **({"field": field} if field else {})}
        return web.json_response(answer, status=status)

    async def readyz(self, request: web.Request) -> web.Response:
        checks = {"events_topic_metadata": self.publisher.topic_known}
        ready = all(checks.values())
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    async def metrics_page(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = web.Response(body=encoder(self.metrics.registry))
        response.headers["Content-Type"] = content_type
        return response


def _outcome_of(exc: PlatformRefused) -> GatewayOutcome:
    try:
        return GatewayOutcome(exc.reason)
    except ValueError:
        return GatewayOutcome.BAD_SIGNATURE if exc.status == 401 else GatewayOutcome.MALFORMED


async def _body(request: web.Request, limit: int) -> bytes:
    """The raw body (signatures are over these bytes), at most ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"body of {request.content_length} bytes is larger than {limit} "
                           "(--gateway-max-body-bytes)")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge(f"body larger than {limit} bytes (--gateway-max-body-bytes)") from None


def _event(body: bytes) -> OrderEvent:
    """One order event from its JSON (not yet checked against the business rules: the publisher does that)."""
    try:
        data = json_text.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MalformedRequest(f"the body is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise MalformedRequest(f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
                               f"(byte {exc.pos} of {len(body)})") from None
    except ValueError as exc:
        raise MalformedRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedRequest(f"the body must be one JSON object (an order event), not {type(data).__name__}")
    if "preferences" in data:
        raise InvalidEvent("preferences", "/v1/events takes order events; preferences are not taken here")
    try:
        return event_from_record(data, reference_now())
    except EventValidationError as exc:
        raise InvalidEvent(exc.field, exc.problem) from exc
