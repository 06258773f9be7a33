"""Notification -> subject, HTML and plain text, all in one language, in the customer's time zone.

The templates only lay facts out. Everything computed happens here, once: money and
dates formatted with Babel, action URLs built from the shop's settings, and the events
of one order merged into lists (several parcels, several out-of-stock notices...), so
that a coalesced notification renders with the same templates as a single event.
"""

from __future__ import annotations

import functools
import gettext
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_interval, format_time, get_datetime_format
from babel.numbers import format_currency, get_currency_precision
from markupsafe import Markup

from consumers.deliver.branding import ShopBranding
from consumers.deliver.catalogs import SOURCE_LANGUAGE, available_languages, load_translations
from consumers.deliver.class_styles import ClassStyles
from consumers.deliver.template_translation import TranslatingEnvironment
from consumers.deliver.word_breaks import break_long_words
from consumers.exceptions import RenderError
from consumers.notification import Notification, Template
from ordernotify.config import Settings
from schemas.events import (
    Address,
    DateRange,
    DeliveryProblem,
    ItemOutOfStock,
    LineItem,
    Money,
    OrderCancelled,
    OrderDelivered,
    OrderPlaced,
    OrderShipped,
    OutForDelivery,
    ParcelItem,
    PriceError,
    PriceResolution,
    RefundIssued,
    StockOption,
)
from schemas.exceptions import SumsError
from schemas.sums import check_sums, tax_included
from templates import TEMPLATE_DIR

log = logging.getLogger(__name__)

_P = TypeVar("_P")
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_BLANK_LINES = re.compile(r"\n{3,}")
# Text from events may hold any character (item names may have line breaks). In what templates print, every
# kind of line break becomes "\n" (a bare CR would reach SMTP as it is: quoted-printable leaves it alone) and
# the other C0 and C1 controls and DEL a space; the tab stays.
_BODY_BREAKS = re.compile(r"\r\n?|[\x85\u2028\u2029]")
_BODY_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f]")
_BODY_ODD = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_TRAILING_SPACE = re.compile(r"(?m)(?<!^--)[ \t]+$")  # keeps the "-- " signature line

# What the customer clicks to choose, as it appears in the ?choice= query parameter.
_CHOICE = {
    StockOption.WAIT_FOR_RESTOCK: "wait",
    StockOption.TAKE_SUBSTITUTE: "substitute",
    StockOption.CANCEL_ITEM: "cancel",
}
_RESOLUTION = {
    PriceResolution.HELD_PENDING_CHOICE: "held",
    PriceResolution.CANCELLED_REFUNDED: "cancelled",
    PriceResolution.HONOURED: "honoured",
}


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """The three parts of one e-mail; ``locale`` is the BCP 47 tag it was written in (``de-DE``)."""

    subject: str
    html: str
    text: str
    locale: str


class Renderer:
    """Renders notifications; build one per process and reuse it.

    Catalogs are compiled and templates compiled once per language, at first use of that
    language; nothing is read from disk per e-mail.
    """

    def __init__(self, settings: Settings | ShopBranding, template_dir: Path = TEMPLATE_DIR) -> None:
        self.shop = settings if isinstance(settings, ShopBranding) else ShopBranding.from_settings(settings)
        self._shop_context = self.shop.context()
        self._template_dir = template_dir
        default = _parse_locale(self.shop.default_locale)
        self._default_locale = default if default is not None else Locale(SOURCE_LANGUAGE)
        self._catalogs = {
            language: load_translations(path)
            for language, path in available_languages(template_dir / "locale").items()
        }
        # One Environment per catalog (not per locale): en, en-GB and sv-SE (no catalog: written in the
        # default locale) share one, so templates compile once per language.
        self._environments: dict[str, jinja2.Environment] = {}
        self._environment_for_locale: dict[str, tuple[Locale, jinja2.Environment]] = {}
        self._styles = ClassStyles(self._render_stylesheet())

    @property
    def stylesheet(self) -> str:
        """The shop's whole stylesheet, as rendered from ``templates/styles.css.j2``."""
        return self._styles.stylesheet

    @property
    def languages(self) -> tuple[str, ...]:
        """The catalogs found, English (the source language) always among them."""
        return tuple(sorted({SOURCE_LANGUAGE, *self._catalogs}))

    def render(self, notification: Notification) -> RenderedEmail:
        """Raise :class:`RenderError` (chained) if a template or its data is broken."""
        customer = notification.customer
        name = notification.template.value
        try:
            # One decision, used for everything: the words, dates, numbers, money, lang/dir and
            # Content-Language. Only the time zone stays the customer's whatever the language.
            written_in, env = self._environment(_parse_locale(customer.locale) or self._default_locale)
            context = _Context(self.shop, written_in, _time_zone(customer.time_zone)).build(notification)
            context.update(shop=self._shop_context, lang=bcp47(written_in), dir=written_in.text_direction,
                           at_rules=self._styles.at_rules)
            subject = _one_line(env.get_template(f"{name}/subject.txt.j2").render(context))
            context["subject"] = subject
            html = env.get_template(f"{name}/body.html.j2").render(context)
            text = env.get_template(f"{name}/body.txt.j2").render(context)
        except jinja2.TemplateError as exc:
            raise RenderError(f"template {name!r} failed: {exc}") from exc
        except (TypeError, ValueError, LookupError, AttributeError, ArithmeticError, OSError) as exc:
            # Data the templates or Babel cannot handle (unknown currency, wrong payload type...):
            # the same events would fail again, so this is a render failure, not a crash.
            raise RenderError(f"template {name!r} failed on its data: {type(exc).__name__}: {exc}") from exc
        return RenderedEmail(subject=subject, html=self._styles.apply(break_long_words(html)), text=_tidy_text(text),
                             locale=context["lang"])

    def _render_stylesheet(self) -> str:
        """The shop's stylesheet (its colours come from the settings), once per renderer."""
        try:
            _, env = self._environment(self._default_locale)
            return env.get_template("styles.css.j2").render(shop=self._shop_context)
        except jinja2.TemplateError as exc:
            raise RenderError(f"template 'styles.css.j2' failed: {exc}") from exc

    def _environment(self, locale: Locale) -> tuple[Locale, jinja2.Environment]:
        """The locale the e-mail is written in, and the environment that writes it, for a customer in ``locale``.

        A locale whose language has a catalog (``de_AT`` -> ``de``) is written in as it is, regional
        formats included; one without (``sv_SE``) gets the default locale for words *and* formats (a
        Swedish date inside English sentences would be read by nobody), or English if the default
        locale has no catalog either.
        """
        key = str(locale)
        found = self._environment_for_locale.get(key)
        if found is None:
            wording, catalog = locale, self._catalog_for(locale)
            if catalog is None:
                wording, catalog = self._default_locale, self._catalog_for(self._default_locale)
            if catalog is None:
                wording, catalog = Locale(SOURCE_LANGUAGE), SOURCE_LANGUAGE
            env = self._environments.get(catalog)
            if env is None:
                env = self._environments[catalog] = self._new_environment(catalog)
            found = self._environment_for_locale[key] = (wording, env)
        return found

    def _catalog_for(self, locale: Locale) -> str | None:
        """``de_AT`` -> ``de_AT`` or ``de``, whichever catalog exists; English needs none (it is the source)."""
        for name in (str(locale), locale.language):
            if name in self._catalogs:
                return name
        return SOURCE_LANGUAGE if locale.language == SOURCE_LANGUAGE else None

    def _new_environment(self, catalog: str) -> jinja2.Environment:
        translations: gettext.NullTranslations = (
            self._catalogs[catalog] if catalog in self._catalogs else gettext.NullTranslations()
        )
        env = TranslatingEnvironment(
            translations,
            loader=jinja2.FileSystemLoader(self._template_dir),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            finalize=printable,
        )
        env.policies["ext.i18n.trimmed"] = True  # msgids without the template's indentation
        return env


@functools.lru_cache(maxsize=1024)
def _parse_locale(tag: str) -> Locale | None:
    try:
        return Locale.parse(tag.strip().replace("_", "-"), sep="-")
    except (ValueError, TypeError, UnknownLocaleError):
        return None


@functools.lru_cache(maxsize=1024)
def _time_zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return UTC


def bcp47(locale: Locale) -> str:
    """``de_DE`` -> ``de-DE``: the form ``<html lang>`` and ``Content-Language`` want."""
    return "-".join(part for part in (locale.language, locale.script, locale.territory, locale.variant) if part)


def _one_line(text: str) -> str:
    return " ".join(_LINE_BREAKS.sub(" ", text).split())


def printable(value: Any) -> Any:
    """What a template prints (``{{ ... }}``, translated sentences included), with CR, NEL and the Unicode line and
    paragraph separators as "\\n" and other controls as spaces; Markup stays Markup.

    Done per printed value (~1 µs an e-mail), not over the rendered e-mail (~130 µs for 13 kB of HTML).
    """
    if isinstance(value, str) and _BODY_ODD.search(value) is not None:
        cleaned = _BODY_CONTROLS.sub(" ", _BODY_BREAKS.sub("\n", value))
        return Markup(cleaned) if isinstance(value, Markup) else cleaned
    return value


def _tidy_text(text: str) -> str:
    text = _TRAILING_SPACE.sub("", text.replace("\r\n", "\n"))
    return _BLANK_LINES.sub("\n\n", text).strip() + "\n"


def with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` added to (not replacing) the query it may already have."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


class _Context:
    """Builds the template context of one notification in one locale and time zone.

    Plain dicts and lists of strings: nothing in a template can call back into the
    events. Lists of items are under ``lines``, never ``items`` (``d.items`` in Jinja is
    the dict method).
    """

    def __init__(self, shop: ShopBranding, locale: Locale, zone: tzinfo) -> None:
        self.shop = shop
        self.locale = locale
        self.zone = zone

    def build(self, notification: Notification) -> dict[str, Any]:
        events = notification.events
        order_url = next((e.order_url for e in reversed(events) if e.order_url), None)
        view_order_url = order_url or f"{self.shop.url}/orders/{quote(notification.order_id, safe='')}"
        payloads = [e.payload for e in events]
        shipped = _latest_by(
            (p for p in payloads if isinstance(p, OrderShipped)), key=lambda p: p.shipment_id
        )
        delivered = _latest_by(
            (p for p in payloads if isinstance(p, OrderDelivered)), key=lambda p: p.shipment_id
        )
        out_for_delivery = _latest_by(
            (p for p in payloads if isinstance(p, OutForDelivery)), key=lambda p: p.shipment_id
        )
        if notification.template is Template.DELIVERED:
            # Parcels already delivered are not announced as shipped again; the rest are still on the way.
            delivered_ids = {p.shipment_id for p in delivered}
            shipped = [p for p in shipped if p.shipment_id not in delivered_ids]
            out_for_delivery = [p for p in out_for_delivery if p.shipment_id not in delivered_ids]
        if notification.template is Template.OUT_FOR_DELIVERY:
            arriving_ids = {p.shipment_id for p in out_for_delivery}
            shipped = [p for p in shipped if p.shipment_id not in arriving_ids]
        return {
            "template": notification.template.value,
            "order_id": notification.order_id,
            "customer_name": _one_line(notification.customer.display_name),
            "view_order_url": view_order_url,
            "review_url": with_query(view_order_url, {"review": "1"}),
            "placed": [self._placed(p) for p in payloads if isinstance(p, OrderPlaced)],
            "stock_items": self._stock_items(
                [p for p in payloads if isinstance(p, ItemOutOfStock)], view_order_url
            ),
            "price_errors": [
                self._price_error(p, view_order_url) for p in payloads if isinstance(p, PriceError)
            ],
            "parcels": [self._parcel(p) for p in shipped],
            "remaining_items": self._remaining(payloads),
            "deliveries": [self._delivery(p) for p in delivered],
            "out_for_delivery": [self._out_for_delivery(p) for p in out_for_delivery],
            "problems": [self._problem(p) for p in _latest_by(
                (p for p in payloads if isinstance(p, DeliveryProblem)), key=lambda p: p.shipment_id)],
            "cancellations": [self._cancellation(p) for p in payloads if isinstance(p, OrderCancelled)],
            "refunds": [self._refund(p) for p in _latest_by(
                (p for p in payloads if isinstance(p, RefundIssued)), key=lambda p: p.refund_id)],
        }

    # Formatting -------------------------------------------------------------------------

    def money(self, money: Money, times: int = 1) -> str:
        amount = Decimal(money.amount_minor * times).scaleb(-get_currency_precision(money.currency))
        return format_currency(amount, money.currency, locale=self.locale)

    def day(self, value: date | None) -> str | None:
        return None if value is None else format_date(value, "long", locale=self.locale)

    def day_range(self, value: DateRange | None) -> str | None:
        if value is None:
            return None
        return format_interval(value.earliest, value.latest, "yMMMd", locale=self.locale)

    def moment(self, value: datetime) -> str:
        local = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(self.zone)
        pattern = str(get_datetime_format("long", locale=self.locale)).replace("'", "")
        return pattern.replace("{0}", format_time(local, "short", locale=self.locale)).replace(
            "{1}", format_date(local.date(), "long", locale=self.locale)
        )

    # Sections ---------------------------------------------------------------------------

    def _items(self, items: Iterable[ParcelItem]) -> list[dict[str, Any]]:
        return [{"sku": i.sku, "name": i.name, "quantity": i.quantity} for i in items]

    def _line_items(self, items: Iterable[LineItem]) -> list[dict[str, Any]]:
        return [
            {
                "sku": i.sku,
                "name": i.name,
                "quantity": i.quantity,
                "unit_price": self.money(i.unit_price),
                "line_total": self.money(i.unit_price, i.quantity),
            }
            for i in items
        ]

    def _address(self, address: Address) -> list[str]:
        country = self.locale.territories.get(address.country, address.country)
        lines = [address.recipient, address.line1, address.line2, f"{address.postal_code} {address.city}",
                 address.region, country]
        return [line for line in lines if line]

    def minus(self, money: Money) -> str:
        """``-€5.00`` with a real minus sign (U+2212), placed as the locale places it."""
        return self.money(Money(-money.amount_minor, money.currency)).replace("-", "\u2212", 1)

    def _placed(self, placed: OrderPlaced) -> dict[str, Any]:
        """The sums as lines that add up: tax is a line of the sum only when the prices exclude it."""
        try:
            check_sums(placed)  # checked where the event entered too; an e-mail never shows a wrong sum
        except SumsError as exc:
            raise RenderError(f"the order's sums do not add up: {exc}") from exc
        discount = placed.discount
        return {
            "lines": self._line_items(placed.items),
            "subtotal": self.money(placed.subtotal),
            "discount": None if discount is None or discount.amount.amount_minor == 0 else {
                "amount": self.minus(discount.amount),
                "label": _one_line(discount.code or discount.description or ""),
            },
            "shipping_cost": self.money(placed.shipping_cost),
            "prices_include_tax": tax_included(placed),
            "tax": self.money(placed.tax),
            "has_tax": placed.tax.amount_minor > 0,
            "total": self.money(placed.total),
            "shipping_address": self._address(placed.shipping_address),
            "delivery_estimate": self.day_range(placed.delivery_estimate),
        }

    def _stock_items(self, notices: list[ItemOutOfStock], view_order_url: str) -> list[dict[str, Any]]:
        """All out-of-stock items of the order, once each (a later notice about a SKU replaces an earlier)."""
        merged: dict[str, dict[str, Any]] = {}
        for notice in notices:
            for item in notice.items:
                choices = []
                for option in notice.options:
                    if option is StockOption.TAKE_SUBSTITUTE and item.substitute is None:
                        continue
                    choices.append({
                        "kind": _CHOICE[option],
                        "url": with_query(view_order_url, {"choice": _CHOICE[option], "sku": item.sku}),
                    })
                default = notice.default_action
                if default is StockOption.TAKE_SUBSTITUTE and item.substitute is None:
                    default = StockOption.WAIT_FOR_RESTOCK  # cannot send a substitute that does not exist
                merged.pop(item.sku, None)
                merged[item.sku] = {
                    "sku": item.sku,
                    "name": item.name,
                    "quantity": item.quantity,
                    "unit_price": self.money(item.unit_price),
                    "refund": self.money(item.unit_price, item.quantity),
                    "restock_estimate": self.day(item.restock_estimate),
                    "substitute": None if item.substitute is None else {
                        "name": item.substitute.name,
                        "unit_price": self.money(item.substitute.unit_price),
                    },
                    "choices": choices,
                    "default_action": _CHOICE[default],
                    "respond_by": self.day(notice.respond_by),
                }
        return list(merged.values())

    def _price_error(self, error: PriceError, view_order_url: str) -> dict[str, Any]:
        sku = error.item.sku
        return {
            "sku": sku,
            "name": error.item.name,
            "quantity": error.item.quantity,
            "shown_price": self.money(error.shown_price),
            "correct_price": self.money(error.correct_price),
            "resolution": _RESOLUTION[error.resolution],
            "respond_by": self.day(error.respond_by),
            "accept_url": with_query(view_order_url, {"choice": "accept_price", "sku": sku}),
            "cancel_url": with_query(view_order_url, {"choice": "cancel", "sku": sku}),
        }

    def _parcel(self, shipped: OrderShipped) -> dict[str, Any]:
        return {
            "shipment_id": shipped.shipment_id,
            "carrier": shipped.carrier,
            "tracking_number": shipped.tracking_number,
            "tracking_url": shipped.tracking_url,
            "lines": self._items(shipped.items),
            "estimated_delivery": self.day(shipped.estimated_delivery),
        }

    def _remaining(self, payloads: list[Any]) -> list[dict[str, Any]]:
        """What is still to come, as the newest shipment of this notification knows it."""
        shipped = [p for p in payloads if isinstance(p, OrderShipped)]
        return self._items(shipped[-1].remaining_items) if shipped else []

    def _delivery(self, delivered: OrderDelivered) -> dict[str, Any]:
        return {
            "shipment_id": delivered.shipment_id,
            "delivered_at": self.moment(delivered.delivered_at),
            "left_at": delivered.left_at,
            "lines": self._items(delivered.items),
        }

    def _out_for_delivery(self, parcel: OutForDelivery) -> dict[str, Any]:
        start, end = (None if moment is None else format_time(moment.astimezone(self.zone), "short", locale=self.locale)
                      for moment in (parcel.window_start, parcel.window_end))
        return {"shipment_id": parcel.shipment_id, "carrier": parcel.carrier, "tracking_url": parcel.tracking_url,
                "window_start": start, "window_end": end}

    def _problem(self, problem: DeliveryProblem) -> dict[str, Any]:
        return {
            "kind": problem.kind.value.lower(),
            "carrier": problem.carrier,
            "tracking_url": problem.tracking_url,
            "pickup_location": problem.pickup_location,
            "pickup_by": self.day(problem.pickup_by),
            "reschedule_url": problem.reschedule_url,
            "new_estimate": self.day(problem.new_estimate),
        }

    def _cancellation(self, cancelled: OrderCancelled) -> dict[str, Any]:
        return {
            "whole": cancelled.whole_order,
            "reason": cancelled.reason.value.lower(),
            "lines": self._items(cancelled.items),
            "refund": None if cancelled.refund is None or not cancelled.refund.amount_minor
            else self.money(cancelled.refund),
        }

    def _refund(self, refund: RefundIssued) -> dict[str, Any]:
        return {
            "amount": self.money(refund.amount),
            "lines": self._items(refund.items),
            "shipping_refunded": refund.shipping_refunded,
            "payment_method": refund.payment_method,
            "expected_by": self.day(refund.expected_by),
        }


def _latest_by(payloads: Iterable[_P], key: Callable[[_P], str]) -> list[_P]:
    """One payload per key, the newest, in the order the keys first appeared."""
    latest: dict[str, _P] = {}
    for payload in payloads:
        latest[key(payload)] = payload
    return list(latest.values())
