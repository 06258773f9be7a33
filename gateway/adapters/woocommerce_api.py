"""The shop's WooCommerce REST API, asked for what an ``order.updated`` webhook lacks: a partial refund leaves the
order's status as it was, and the order lists its refunds only as ``refunds: [{id, reason, total}]``, without the
items, the shipping or the date. So the adapter reads the newest refund itself, as integrations of WooCommerce do.

One ``GET {shop}wp-json/wc/v3/orders/{order_id}/refunds/{refund_id}`` per delivery (WooCommerce REST API v3,
"Retrieve a refund"), the consumer key and secret in HTTP Basic auth, which WooCommerce takes over HTTPS only
(REST API docs, "Authentication over HTTPS"). The shop is ``--woocommerce-shop-url`` and nothing else: the
webhook's ``X-WC-Webhook-Source`` (WordPress's ``home_url('/')``, which is also where ``/wp-json/`` lives) must name
that same shop, or nothing is asked. WooCommerce's signature covers only the body, so a replayed body with another
header can neither send the key elsewhere nor have one shop's order id looked up at another. Redirects are not
followed, for the same reason. Nothing is kept after the request: each lookup has a connection of its own, and
what it read lives only in the events it builds.

Answers: the refund; ``None`` when the shop has no such refund or order (404 with a ``woocommerce_rest_*`` error
code: deleted, the delivery has nothing to tell of it; any other 404 means the API is not where it is asked: an
error). The rest as :mod:`gateway.adapters.platform_api` has it for every platform lookup: unreachable, timed
out, 5xx or 429: :class:`PlatformRefused` 503. A refused key (401, 403), a redirect or
an answer that is not the refund is 503 too, logged as an error: someone has to fix the key or the address.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.parse
from typing import Any

import aiohttp

from gateway.adapters.platform_api import PlatformApi

log = logging.getLogger(__name__)

_DEFAULT_PORTS = {"https": 443, "http": 80}
API = PlatformApi("WooCommerce's REST API", "check ORDERNOTIFY_WOOCOMMERCE_API_CONSUMER_KEY and _SECRET, and that "
                                            "the key has Read access")


def shop_url(value: str) -> str | None:
    """``HTTPS://Shop.Example.org:443/shop`` -> ``https://shop.example.org/shop/``: one spelling of a shop's address,
    to compare a webhook's ``X-WC-Webhook-Source`` with the configured one; None for what is no http(s) address."""
    try:
        url = urllib.parse.urlsplit(value.strip())
        port = url.port
    except ValueError:
        return None
    scheme = url.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not url.hostname or url.username or url.password or url.query \
            or url.fragment:
        return None
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}{url.path.rstrip('/')}/"


class RestApi:
    """One shop's REST API, read with one key."""

    def __init__(self, shop: str, consumer_key: str, consumer_secret: str, timeout_s: float) -> None:
        normal = shop_url(shop)
        if normal is None:
            raise ValueError(f"{shop[:200]!r} is not a shop's http(s) address")
        self.shop = normal
        self._host = urllib.parse.urlsplit(normal).netloc  # for the logs: the shop, never the key
        # HTTP Basic auth, written out: aiohttp deprecates its BasicAuth helper
        credentials = base64.b64encode(f"{consumer_key}:{consumer_secret}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {credentials}", "Accept": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def is_this_shop(self, source: str) -> bool:
        """Whether a webhook's ``X-WC-Webhook-Source`` names the configured shop."""
        return shop_url(source) == self.shop

    async def refund(self, order_id: int, refund_id: int) -> dict[str, Any] | None:
        """The refund ``refund_id`` of order ``order_id``; None when the shop has no such refund (or order)."""
        url = f"{self.shop}wp-json/wc/v3/orders/{order_id}/refunds/{refund_id}"
        what = f"refund {refund_id} of order {order_id}"
        status, body = await API.ask("GET", url, self._host, what, self._headers, self._timeout)
        if status == 404:
            if _code(body).startswith("woocommerce_rest_"):  # e.g. woocommerce_rest_shop_order_refund_invalid_id
                return None
            log.error("WooCommerce's REST API at %s has no route for %s (%s): is WooCommerce active, and "
                      "/wp-json/ served (WordPress permalinks other than Plain)?", self._host, what,
                      _code(body)[:60] or "not WordPress's JSON")
            raise API.unavailable(f"at {self._host} has no route for {what}")
        refund = API.json(body, self._host, what)
        if not isinstance(refund, dict) or str(refund.get("id")) != str(refund_id):
            log.error("WooCommerce's REST API at %s answered something that is not %s", self._host, what)
            raise API.unavailable(f"at {self._host} answered something that is not {what}")
        return refund


def _code(body: bytes) -> str:
    """The ``code`` of a WordPress REST API error (``{"code": ..., "message": ..., "data": {"status": 404}}``)."""
    try:
        error = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    return str(error.get("code") or "") if isinstance(error, dict) else ""
