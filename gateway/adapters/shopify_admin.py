"""Shopify's GraphQL Admin API, asked for what a webhook's payload lacks: ``refunds/create`` and
``fulfillment_events/create`` name no customer, so the adapter looks the order (or the fulfillment and its order)
up, as Shopify apps do. GraphQL rather than REST: Shopify made the REST Admin API legacy on 2024-10-01 and takes
only GraphQL from new public apps since 2025-04-01.

One ``POST https://{shop}/admin/api/{version}/graphql.json`` per delivery, the token in ``X-Shopify-Access-Token``
(scope ``read_orders``), within ``timeout_s`` (a part of the gateway's answer timeout: Shopify waits 5 s), made as
:mod:`gateway.adapters.platform_api` makes every platform lookup. The
shop is the webhook's ``X-Shopify-Shop-Domain``, taken only when it is a ``*.myshopify.com`` name, so that a
replayed body with another header cannot send the token elsewhere. Nothing is kept after the request: each lookup
has a connection of its own, and what it read (an address, a name) lives only in the events it builds.

Answers: the data; ``None`` when the object is not there (deleted: the delivery has nothing to tell). Unreachable,
timed out, 5xx, 429 or GraphQL ``THROTTLED``: :class:`PlatformRefused` 503, so Shopify sends the delivery again.
A refused token (401, 403) or a query Shopify does not take is 503 too, logged as an error: the deliveries wait in
Shopify's retries (up to 48 hours) while someone fixes the token or its scopes.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import aiohttp

from gateway.adapters.platform_api import PlatformApi

log = logging.getLogger(__name__)

MAX_TIMEOUT_S = 2.0
_SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\.myshopify\.com$")
API = PlatformApi("Shopify's Admin API", "check ORDERNOTIFY_SHOPIFY_ADMIN_TOKEN and its read_orders scope")

_CUSTOMER = "email customerLocale statusPageUrl customer { id firstName lastName }"
ORDER_QUERY = f"query OrderCustomer($id: ID!) {{ order(id: $id) {{ {_CUSTOMER} }} }}"
FULFILLMENT_QUERY = (
    "query FulfillmentParcel($id: ID!) { fulfillment(id: $id) { trackingInfo(first: 1) { company number url } "
    "fulfillmentLineItems(first: 250) { nodes { quantity lineItem { id sku name } } } "
    f"order {{ {_CUSTOMER} }} }} }}"
)


def order_gid(order_id: Any) -> str:
    return f"gid://shopify/Order/{order_id}"


def fulfillment_gid(fulfillment_id: Any) -> str:
    return f"gid://shopify/Fulfillment/{fulfillment_id}"


def legacy_id(gid: Any) -> str:
    """``gid://shopify/Customer/115310627314723954`` -> ``115310627314723954``: the id the payloads carry."""
    return str(gid).rsplit("/", 1)[-1]


def shop_domain(value: str) -> str | None:
    """The shop's ``*.myshopify.com`` name, or None for anything else."""
    domain = value.strip().lower()
    return domain if _SHOP_DOMAIN.match(domain) else None


class AdminApi:
    """One app's access to one shop's GraphQL Admin API."""

    def __init__(self, token: str, version: str, url: str, timeout_s: float) -> None:
        self._token, self._version, self._url = token, version, url
        self._timeout = aiohttp.ClientTimeout(total=min(timeout_s, MAX_TIMEOUT_S))

    async def find(self, shop: str, query: str, root: str, gid: str) -> dict[str, Any] | None:
        """``data[root]`` of ``query`` with ``$id`` = ``gid``; None when Shopify has no such object."""
        url = self._url.format(shop=shop, version=self._version)
        headers = {"X-Shopify-Access-Token": self._token, "Content-Type": "application/json",
                   "Accept": "application/json"}
        status, body = await API.ask("POST", url, shop, "", headers, self._timeout,
                                     json_body={"query": query, "variables": {"id": gid}})
        if status == 404:
            return None
        answer = API.json(body, shop)
        errors = answer.get("errors") if isinstance(answer, dict) else None
        data = answer.get("data") if isinstance(answer, dict) else None
        if errors:
            codes = sorted({str((e.get("extensions") or {}).get("code") or "") for e in errors if isinstance(e, dict)}
                           if isinstance(errors, list) else set())
            if codes == ["THROTTLED"]:
                log.warning("Shopify's Admin API at %s throttled the lookup", shop)
                raise API.unavailable(f"at {shop} throttled the lookup")
            # Not the customer's data: GraphQL's messages name fields and scopes.
            log.error("Shopify's Admin API at %s refused the query: %s", shop, ", ".join(codes) or str(errors)[:300])
            raise API.unavailable(f"at {shop} refused the query ({', '.join(codes) or 'errors'})")
        if not isinstance(data, dict):
            raise API.unavailable(f"at {shop} answered without data")
        found = data.get(root)
        return found if isinstance(found, dict) else None
