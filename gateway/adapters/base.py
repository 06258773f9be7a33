"""What every platform adapter offers the gateway, and the adapters a process runs.

An adapter checks the platform's own signature on the raw body (``verify``) and turns a verified delivery
into ordernotify events (``events``). It never talks to Kafka: the gateway publishes what it returns, and
answers the platform. Event ids are uuid5 over the platform, the delivery's identity and the kind of news,
so a delivery the platform retries gives the same ids and the consumer's dedupe drops the copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Protocol

from ordernotify.config import Settings
from ordernotify.errors import OrderNotifyError
from schemas.events import OrderEvent


class PlatformRefused(OrderNotifyError):
    """A delivery the gateway does not take; ``status`` is the HTTP answer, ``reason`` the metric label.

    401 ``bad_signature``: not signed by the platform with the configured secret or keys. 400 ``malformed``:
    not the platform's JSON, or a field the mapping needs is missing or wrong (the message names it), or the
    order's sums do not add up. 503 ``keys_unavailable``: the signing keys could not be fetched now; 503
    ``admin_api_unavailable``: the platform's API could not tell what the payload lacks now; the platform
    retries a 503, so nothing is lost (``retriable``)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.retriable = status >= 500
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class ShopDefaults:
    """What a platform's payload may lack and an e-mail needs: the customer's language and time zone, and the
    shop's currency when a payload names none (``--shop-default-locale``, ``--shop-default-time-zone``,
    ``--shop-default-currency``)."""

    locale: str
    time_zone: str
    currency: str | None = None


class Adapter(Protocol):
    """One platform; the gateway serves it at ``POST /v1/platforms/{name}``."""

    name: str

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Return if ``body`` is signed by the platform; else raise :class:`PlatformRefused` (401)."""

    def events(self, headers: Mapping[str, str], body: bytes, defaults: ShopDefaults) -> list[OrderEvent]:
        """The events a verified delivery means; ``[]`` when it has nothing to tell a customer (counted as
        unmapped and answered 200, so the platform does not retry). Raises :class:`PlatformRefused` (400)
        naming the field that is wrong."""


async def adapter_events(adapter: Adapter, headers: Mapping[str, str], body: bytes,
                         defaults: ShopDefaults) -> list[OrderEvent]:
    """The events of a verified delivery. An adapter that asks its platform for what a payload lacks offers
    ``events_with_lookups`` (a coroutine with the arguments of ``events``): that one is awaited, so the lookup
    holds no thread and the loop goes on answering."""
    looking_up = getattr(adapter, "events_with_lookups", None)
    if looking_up is not None:
        events: list[OrderEvent] = await looking_up(headers, body, defaults)
        return events
    return adapter.events(headers, body, defaults)


# name -> (module, factory, the setting that switches it on); a factory takes the settings.
_ADAPTERS: dict[str, tuple[str, str, str]] = {
    "shopify": ("gateway.adapters.shopify", "adapter_from_settings", "shopify_secret"),
    "woocommerce": ("gateway.adapters.woocommerce", "adapter_from_settings", "woocommerce_secret"),
    "saleor": ("gateway.adapters.saleor", "adapter_from_settings", "saleor_jwks_url"),
}


def shop_defaults(settings: Settings) -> ShopDefaults:
    """The shop defaults the settings give."""
    return ShopDefaults(locale=settings.shop_default_locale, time_zone=settings.shop_default_time_zone,
                        currency=settings.shop_default_currency or None)


def adapters_from_settings(settings: Settings) -> dict[str, Adapter]:
    """The adapters whose secret (or key source) is set, by name; a platform without one is off."""
    adapters: dict[str, Adapter] = {}
    for name, (module, factory, setting) in _ADAPTERS.items():
        if getattr(settings, setting):
            adapters[name] = getattr(import_module(module), factory)(settings)
    return adapters
