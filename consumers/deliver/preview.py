"""Every e-mail in every language, rendered from sample orders into a folder a shop owner can open.

The samples are fixed (ids, dates, names), so two runs write the same files and a
change in the templates shows as a change in the gallery. They cover what tends to
break a layout: one item, many items, long names and unbreakable words, a partial
shipment, several parcels in one e-mail.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from consumers.deliver.message import build_message
from consumers.deliver.rendering import Renderer
from consumers.notification import Notification, Template
from ordernotify.config import Settings
from schemas.events import (
    Address,
    CancelReason,
    Customer,
    DateRange,
    DeliveryProblem,
    DeliveryProblemKind,
    Discount,
    EventType,
    ItemOutOfStock,
    LineItem,
    Money,
    OrderCancelled,
    OrderDelivered,
    OrderEvent,
    OrderPlaced,
    OrderShipped,
    OutForDelivery,
    OutOfStockItem,
    ParcelItem,
    Payload,
    PriceError,
    PriceResolution,
    RefundIssued,
    StockOption,
    Substitute,
)

log = logging.getLogger(__name__)

SIZE_LIMIT_BYTES = 102 * 1024  # Gmail clips a message whose HTML is larger
NOW = datetime(2030, 1, 10, 9, 30, tzinfo=UTC)
ORDER_ID = "100-4711"

# Language -> (customer name, locale, time zone, currency): a believable customer per catalog.
_CUSTOMERS = {
    "en": ("Ada Lovelace", "en-GB", "Europe/London", "GBP"),
    "de": ("Jürgen Weiß", "de-DE", "Europe/Berlin", "EUR"),
    "pl": ("Zofia Wójcik-Łęcka", "pl-PL", "Europe/Warsaw", "PLN"),
    "fr": ("Hélène Lefèvre-Garnier", "fr-FR", "Europe/Paris", "EUR"),
    "es": ("José Ángel Muñoz Peña", "es-ES", "Europe/Madrid", "EUR"),
    "it": ("Niccolò D'Alessandro", "it-IT", "Europe/Rome", "EUR"),
    "nl": ("Anneloes van der Heijden", "nl-NL", "Europe/Amsterdam", "EUR"),
}
_LONG_NAME = ("Handmade stoneware breakfast mug with extra-wide handle, speckled oatmeal glaze, 450 ml, "
              "dishwasher-safe (set of two)")
_LONG_WORD = "Donaudampfschifffahrtsgesellschaftskapitänsmützenaufbewahrungsbox"
_LONG_SHIP_ID = "SHIP-2-7F3A9C0D4E5B6A7F3A9C0D4E5B6A7F3A9C0D"


@dataclass(frozen=True, slots=True)
class Sample:
    template: Template
    case: str
    payloads: Callable[[str], list[tuple[EventType, Payload]]]  # currency -> the events' payloads


@dataclass(frozen=True, slots=True)
class GalleryEntry:
    template: str
    case: str
    language: str
    subject: str
    html_file: Path
    text_file: Path
    eml_file: Path
    html_bytes: int


def _money(minor: int, currency: str) -> Money:
    return Money(minor, currency)


def _line(n: int, name: str, quantity: int, price: int, currency: str) -> LineItem:
    return LineItem(f"SKU-{n}", name, quantity, _money(price, currency))


def _placed(names: list[str], currency: str) -> list[tuple[EventType, Payload]]:
    items = tuple(_line(n, name, 1 + n % 3, 1299 + 250 * n, currency) for n, name in enumerate(names, 1))
    subtotal = sum(i.unit_price.amount_minor * i.quantity for i in items)
    discount = Discount(_money(500, currency), code="WELCOME5")
    total = subtotal - 500 + 499
    tax = total * 19 // 119  # prices include 19 % VAT
    address = Address("Ada Lovelace", "12 St James's Square", "London", "SW1Y 4JH", "GB", line2="Flat 3")
    payload = OrderPlaced(items, _money(subtotal, currency), _money(499, currency), _money(tax, currency),
                          _money(total, currency), address, DateRange(date(2030, 1, 14), date(2030, 1, 16)),
                          prices_include_tax=True, discount=discount)
    return [(EventType.ORDER_PLACED, payload)]


def _out_of_stock(names: list[str], currency: str) -> list[tuple[EventType, Payload]]:
    events: list[tuple[EventType, Payload]] = []
    for n, name in enumerate(names, 1):
        substitute = Substitute(f"SKU-{n}B", f"{name} (green)", _money(1399, currency)) if n % 2 else None
        item = OutOfStockItem(f"SKU-{n}", name, n, _money(1299, currency),
                              date(2030, 1, 20 + n) if n != 2 else None, substitute)
        options = (StockOption.WAIT_FOR_RESTOCK, StockOption.TAKE_SUBSTITUTE, StockOption.CANCEL_ITEM)
        default = StockOption.WAIT_FOR_RESTOCK if n != 3 else StockOption.CANCEL_ITEM
        events.append((EventType.ITEM_OUT_OF_STOCK, ItemOutOfStock((item,), options, default, date(2030, 1, 13))))
    return events


def _price_errors(names: list[str], currency: str) -> list[tuple[EventType, Payload]]:
    resolutions = [PriceResolution.HELD_PENDING_CHOICE, PriceResolution.HONOURED, PriceResolution.CANCELLED_REFUNDED]
    return [
        (EventType.PRICE_ERROR, PriceError(ParcelItem(f"SKU-{n}", name, n), _money(200, currency),
                                           _money(20000, currency), resolutions[(n - 1) % 3], date(2030, 1, 13)))
        for n, name in enumerate(names, 1)
    ]


def _shipped(shipment: str, names: list[str], remaining: list[str], currency: str) -> tuple[EventType, Payload]:
    tracking = "TRK" + shipment.replace("-", "")
    return (EventType.ORDER_SHIPPED, OrderShipped(
        shipment, "DHL Paket", tracking, f"https://tracking.example/track?number={tracking}&lang=auto",
        tuple(ParcelItem(f"SKU-{n}", name, 1) for n, name in enumerate(names, 1)),
        tuple(ParcelItem(f"SKU-{n}", name, 1) for n, name in enumerate(remaining, 10)), date(2030, 1, 14)))


def _delivered(shipment: str, names: list[str], left_at: str | None) -> tuple[EventType, Payload]:
    return (EventType.ORDER_DELIVERED, OrderDelivered(
        shipment, datetime(2030, 1, 14, 13, 5, tzinfo=UTC),
        tuple(ParcelItem(f"SKU-{n}", name, 1) for n, name in enumerate(names, 1)), left_at))


def _parcel_items(names: list[str]) -> tuple[ParcelItem, ...]:
    return tuple(ParcelItem(f"SKU-{n}", name, 1) for n, name in enumerate(names, 1))


def _cancelled(names: list[str], reason: CancelReason, refund_minor: int | None,
               currency: str) -> tuple[EventType, Payload]:
    refund = None if refund_minor is None else _money(refund_minor, currency)
    return (EventType.ORDER_CANCELLED, OrderCancelled(reason, _parcel_items(names), refund))


def _refund(names: list[str], amount_minor: int, currency: str, shipping: bool = False) -> tuple[EventType, Payload]:
    return (EventType.REFUND_ISSUED, RefundIssued("RF-1", _money(amount_minor, currency), _parcel_items(names),
                                                  shipping, "Visa ending 4242", date(2030, 1, 17)))


def _out_for_delivery(shipment: str) -> tuple[EventType, Payload]:
    tracking = "TRK" + shipment.replace("-", "")
    return (EventType.OUT_FOR_DELIVERY, OutForDelivery(
        shipment, "DHL Paket", f"https://tracking.example/track?number={tracking}",
        datetime(2030, 1, 14, 9, 0, tzinfo=UTC), datetime(2030, 1, 14, 12, 0, tzinfo=UTC)))


def _problem(shipment: str, kind: DeliveryProblemKind, place: str = "DHL Packstation 112, Hauptstraße 5",
             ) -> tuple[EventType, Payload]:
    tracking = "TRK" + shipment.replace("-", "")
    url = f"https://tracking.example/track?number={tracking}"
    if kind is DeliveryProblemKind.ATTEMPTED:
        return (EventType.DELIVERY_PROBLEM, DeliveryProblem(shipment, kind, "DHL Paket", url, place,
                                                            date(2030, 1, 21), f"{url}&reschedule=1"))
    estimate = date(2030, 1, 17) if kind is DeliveryProblemKind.DELAYED else None
    return (EventType.DELIVERY_PROBLEM, DeliveryProblem(shipment, kind, "DHL Paket", url, new_estimate=estimate))


_MANY = [f"Product {n}: stoneware mug, {n * 50} ml" for n in range(1, 13)]

SAMPLES: tuple[Sample, ...] = (
    Sample(Template.ORDER_PLACED, "one-item", lambda c: _placed(["Blue mug"], c)),
    Sample(Template.ORDER_PLACED, "many-items", lambda c: _placed(_MANY, c)),
    Sample(Template.ORDER_PLACED, "long-names", lambda c: _placed([_LONG_NAME, _LONG_WORD], c)),
    Sample(Template.OUT_OF_STOCK, "one-item", lambda c: _out_of_stock(["Blue mug"], c)),
    Sample(Template.OUT_OF_STOCK, "many-items", lambda c: _out_of_stock(["Blue mug", "Teapot", "Kettle"], c)),
    Sample(Template.OUT_OF_STOCK, "long-names", lambda c: _out_of_stock([_LONG_NAME, _LONG_WORD], c)),
    Sample(Template.PRICE_ERROR, "one-item", lambda c: _price_errors(["Blue mug"], c)),
    Sample(Template.PRICE_ERROR, "many-items", lambda c: _price_errors(["Blue mug", "Teapot", "Kettle"], c)),
    Sample(Template.PRICE_ERROR, "long-names", lambda c: _price_errors([_LONG_NAME, _LONG_WORD], c)),
    Sample(Template.SHIPPED, "one-item", lambda c: [_shipped("SHIP-1", ["Blue mug"], [], c)]),
    Sample(Template.SHIPPED, "partial-shipment",
           lambda c: [_shipped("SHIP-1", ["Blue mug", "Teapot"], ["Kettle", "Egg cups (set of four)"], c)]),
    Sample(Template.SHIPPED, "many-parcels",
           lambda c: [_shipped("SHIP-1", ["Blue mug"], ["Teapot"], c), _shipped("SHIP-2", ["Teapot"], [], c)]),
    Sample(Template.SHIPPED, "long-names", lambda c: [_shipped(_LONG_SHIP_ID, [_LONG_NAME, _LONG_WORD], [], c)]),
    Sample(Template.DELIVERED, "one-item",
           lambda c: [_delivered("SHIP-1", ["Blue mug"], "With your neighbour at number 14")]),
    Sample(Template.DELIVERED, "partial-shipment",
           lambda c: [_shipped("SHIP-1", ["Blue mug"], [], c), _shipped("SHIP-2", ["Teapot"], ["Kettle"], c),
                      _delivered("SHIP-1", ["Blue mug"], "In the parcel box")]),
    Sample(Template.DELIVERED, "long-names",
           lambda c: [_delivered("SHIP-1", [_LONG_NAME, _LONG_WORD], f"Behind the bins, {_LONG_WORD}")]),
    Sample(Template.ORDER_CANCELLED, "whole-order-refunded",
           lambda c: [_cancelled([], CancelReason.CUSTOMER_REQUEST, 4797, c), _refund(["Blue mug", "Teapot"], 4797, c,
                                                                                   shipping=True)]),
    Sample(Template.ORDER_CANCELLED, "payment-failed",
           lambda c: [_cancelled([], CancelReason.PAYMENT_FAILED, None, c)]),
    Sample(Template.ORDER_CANCELLED, "some-items",
           lambda c: [_cancelled(["Teapot"], CancelReason.OUT_OF_STOCK, 2598, c)]),
    Sample(Template.ORDER_CANCELLED, "long-names",
           lambda c: [_cancelled([_LONG_NAME, _LONG_WORD], CancelReason.SHOP_DECISION, 8998, c)]),
    Sample(Template.REFUND_ISSUED, "one-item", lambda c: [_refund(["Blue mug"], 1299, c)]),
    Sample(Template.REFUND_ISSUED, "long-names", lambda c: [_refund([_LONG_NAME, _LONG_WORD], 8998, c)]),
    Sample(Template.REFUND_ISSUED, "amount-alone", lambda c: [_refund([], 500, c)]),  # goodwill, a corrected price
    Sample(Template.OUT_FOR_DELIVERY, "one-parcel", lambda c: [_out_for_delivery("SHIP-1")]),
    Sample(Template.OUT_FOR_DELIVERY, "another-on-its-way",
           lambda c: [_shipped("SHIP-2", ["Teapot"], [], c), _out_for_delivery("SHIP-1")]),
    Sample(Template.OUT_FOR_DELIVERY, "long-names",
           lambda c: [_shipped(_LONG_SHIP_ID, [_LONG_NAME, _LONG_WORD], [], c), _out_for_delivery("SHIP-1")]),
    Sample(Template.DELIVERY_PROBLEM, "attempted", lambda c: [_problem("SHIP-1", DeliveryProblemKind.ATTEMPTED)]),
    Sample(Template.DELIVERY_PROBLEM, "delayed", lambda c: [_problem("SHIP-1", DeliveryProblemKind.DELAYED)]),
    Sample(Template.DELIVERY_PROBLEM, "returned",
           lambda c: [_problem("SHIP-1", DeliveryProblemKind.RETURNED_TO_SENDER)]),
    Sample(Template.DELIVERY_PROBLEM, "lost", lambda c: [_problem("SHIP-1", DeliveryProblemKind.LOST)]),
    Sample(Template.DELIVERY_PROBLEM, "long-names",
           lambda c: [_problem(_LONG_SHIP_ID, DeliveryProblemKind.ATTEMPTED, f"Parcel shop {_LONG_WORD}")]),
)


def sample_notification(sample: Sample, language: str) -> Notification:
    name, locale, zone, currency = _CUSTOMERS.get(language, ("Ada Lovelace", language, "UTC", "EUR"))
    local_part = "".join(ch for ch in name.lower() if ch.isascii() and ch.isalpha()) or "customer"
    customer = Customer("cust-preview", f"{local_part}@example.org", name, locale, zone)
    events = tuple(
        OrderEvent(f"preview-{sample.template.value}-{sample.case}-{n}", event_type, NOW, ORDER_ID, customer, payload)
        for n, (event_type, payload) in enumerate(sample.payloads(currency))
    )
    return Notification(sample.template, events)


def write_gallery(out_dir: Path, settings: Settings) -> list[Path]:
    """Render every template x language x sample into ``out_dir``; returns the files written, index.html last."""
    renderer = Renderer(settings)
    entries: list[GalleryEntry] = []
    written: list[Path] = []
    for sample in SAMPLES:
        folder = out_dir / sample.template.value
        folder.mkdir(parents=True, exist_ok=True)
        for language in renderer.languages:
            notification = sample_notification(sample, language)
            rendered = renderer.render(notification)
            outgoing = build_message(rendered, notification, settings, now=NOW)
            stem = folder / f"{sample.case}.{language}"
            html_file, text_file, eml_file = (stem.with_name(f"{stem.name}.{ext}") for ext in ("html", "txt", "eml"))
            html_file.write_text(rendered.html, encoding="utf-8")
            text_file.write_text(rendered.text, encoding="utf-8")
            eml_file.write_bytes(outgoing.data)
            written += [html_file, text_file, eml_file]
            entries.append(GalleryEntry(sample.template.value, sample.case, language, rendered.subject,
                                        html_file, text_file, eml_file, len(rendered.html.encode())))
    index = out_dir / "index.html"
    index.write_text(_index(entries, out_dir, settings), encoding="utf-8")
    written.append(index)
    log.info("preview: %d e-mails written to %s", len(entries), out_dir)
    return written


def _index(entries: list[GalleryEntry], out_dir: Path, settings: Settings) -> str:
    def link(path: Path, label: str) -> str:
        return f'<a href="{html.escape(path.relative_to(out_dir).as_posix())}">{label}</a>'

    rows = []
    for e in entries:
        size = f"{e.html_bytes / 1024:.1f} KB"
        over = e.html_bytes >= SIZE_LIMIT_BYTES
        size_cell = (f'<td class="over" data-label="HTML size">{size} — over the limit</td>' if over
                     else f'<td class="size" data-label="HTML size">{size}</td>')
        rows.append(
            f'<tr><td data-label="template">{html.escape(e.template)}</td>'
            f'<td data-label="sample">{html.escape(e.case)}</td>'
            f'<td data-label="language">{html.escape(e.language)}</td>'
            f'<td class="subject">{link(e.html_file, html.escape(e.subject))}</td>{size_cell}'
            f'<td data-label="other parts">{link(e.text_file, "text")} · {link(e.eml_file, ".eml")}</td></tr>'
        )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(settings.shop_name)}: e-mail preview</title>
<style>
  body {{ font-family: Arial, Helvetica, sans-serif; margin: 24px; color: #1f2937; overflow-wrap: anywhere; }}
  table {{ border-collapse: collapse; width: 100%; }}
  th, td {{ text-align: left; padding: 6px 8px; border-bottom: 1px solid #e5e7eb; vertical-align: top; }}
  .size {{ white-space: nowrap; }}
  .over {{ white-space: nowrap; color: #b91c1c; font-weight: bold; }}
  /* A phone: one card per e-mail, each value under its column's name, nothing wider than the screen. */
  @media (max-width: 640px) {{
    body {{ margin: 16px; }}
    table, tbody, tr, td {{ display: block; }}
    thead {{ display: none; }}
    tr {{ padding: 10px 0; border-bottom: 1px solid #e5e7eb; }}
    td {{ padding: 2px 0; border: 0; }}
    td.subject {{ font-weight: bold; }}
    td[data-label]::before {{ content: attr(data-label) ": "; color: #6b7280; }}
  }}
</style>
</head>
<body>
<h1>{html.escape(settings.shop_name)}: every e-mail before it is sent</h1>
<p>{len(entries)} e-mails: each template in each language, with sample orders. Click a subject to see the HTML
part as a mail client shows it; <em>text</em> is the plain-text part, <em>.eml</em> the whole message
(open it in a mail client). HTML parts of {SIZE_LIMIT_BYTES // 1024} KB or more are clipped by Gmail.</p>
<table>
<thead>
<tr><th>template</th><th>sample</th><th>language</th><th>subject</th><th>HTML size</th><th>other parts</th></tr>
</thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</body>
</html>
"""
