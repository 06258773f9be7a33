"""Realistic, reproducible order lifecycles for demos and load tests.

Deterministic per ``(seed, now)``: the same seed gives the same orders, ids and
event ids (so re-running a simulation is deduplicated downstream, as a platform
retry would be). Every event lies within the hour before ``now``, so nothing is
stale, and every event passes :func:`schemas.validation.validate_event`.
"""

from __future__ import annotations

import random
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

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

OUT_OF_STOCK_SHARE = 0.15
PRICE_ERROR_SHARE = 0.05
SPLIT_PARCEL_SHARE = 0.15
IN_TRANSIT_SHARE = 0.08  # shipped, not yet delivered
DISCOUNT_SHARE = 0.25
# code, description, percent off the subtotal
_DISCOUNTS = (
    ("WELCOME10", "10% off your first order", 10),
    ("WINTER15", "Winter sale: 15% off", 15),
    (None, "Loyalty discount", 5),
)
CANCELLED_SHARE = 0.05  # whole orders cancelled before shipping (customer, payment, shop)
CANCEL_OUT_OF_STOCK_SHARE = 0.4  # customers who answer an out-of-stock e-mail with "cancel the item"
OUT_FOR_DELIVERY_SHARE = 0.7  # parcels whose carrier reports the last mile
DELIVERY_PROBLEM_SHARE = 0.06  # parcels with an attempted or delayed delivery before they arrive
LOST_SHARE = 0.01  # parcels lost: refunded instead of delivered
RETURN_SHARE = 0.04  # delivered orders with an item sent back and refunded

SHOP_ORDER_URL = "https://shop.example/orders/"
TRACKING_URL = "https://tracking.example.com/"
EMAIL_DOMAINS = ("example.org", "example.com", "example.net", "mail.example.org")


@dataclass(frozen=True)
class _Market:
    locale: str
    currency: str
    time_zones: tuple[str, ...]
    country: str
    fx: float  # catalogue price (EUR cents) -> this currency's minor units
    vat: float | None  # VAT included in prices (prices_include_tax); None: sales tax added on top
    sales_tax: float
    shipping_minor: int
    free_shipping_from_minor: int
    carriers: tuple[str, ...]
    names: tuple[str, ...]
    streets: tuple[str, ...]
    cities: tuple[tuple[str, str, str | None], ...]  # city, postal code, region
    share: float  # of the shop's customers: a European shop's mix, not an even split


_MARKETS = (
    _Market("en-GB", "GBP", ("Europe/London",), "GB", 0.86, 0.20, 0.0, 399, 5000, ("Royal Mail", "DPD"),
            ("Zoë Hartley", "Oliver Bennett", "Siobhán O'Connor", "Priya Natarajan", "Tom Ashworth"),
            ("12 Mill Lane", "4 Rosebery Avenue", "Flat 3, 27 Kingsway"),
            (("Manchester", "M1 4BT", None), ("Bristol", "BS1 5TR", None), ("Leeds", "LS2 7EY", None)), 0.18),
    _Market("en-US", "USD", ("America/New_York", "America/Chicago", "America/Los_Angeles"), "US", 1.08, None,
            0.08, 599, 7500, ("UPS", "USPS"),
            ("Ethan Walker", "Maya Rodríguez", "Jordan Lee", "Aaliyah Brooks", "Noah Kim"),
            ("221 Maple Street", "1600 Elm Avenue", "78 Harbor Road"),
            (("Portland", "97205", "OR"), ("Austin", "78701", "TX"), ("Albany", "12207", "NY")), 0.10),
    _Market("de-DE", "EUR", ("Europe/Berlin",), "DE", 1.0, 0.19, 0.0, 495, 6000, ("DHL", "Hermes"),
            ("Jürgen Müller", "Anna Schäfer", "Lena Groß", "Mehmet Yılmaz", "Katrin Weiß"),
            ("Hauptstraße 5", "Lindenallee 17", "Bergstraße 2a"),
            (("Berlin", "10115", None), ("München", "80331", None), ("Köln", "50667", None)), 0.22),
    _Market("pl-PL", "PLN", ("Europe/Warsaw",), "PL", 4.3, 0.23, 0.0, 1499, 20000, ("InPost", "DPD Polska"),
            ("Łukasz Wiśniewski", "Zofia Kowalska", "Małgorzata Nowak", "Paweł Zieliński", "Agnieszka Wójcik"),
            ("ul. Długa 8", "ul. Piękna 21/4", "al. Jerozolimskie 65"),
            (("Warszawa", "00-001", None), ("Kraków", "31-011", None), ("Gdańsk", "80-831", None)), 0.08),
    _Market("fr-FR", "EUR", ("Europe/Paris",), "FR", 1.0, 0.20, 0.0, 490, 6000, ("Colissimo", "Chronopost"),
            ("Chloé Dubois", "François Lefèvre", "Léa Martin", "Hélène Garnier", "Mathis Roux"),
            ("8 rue de la Paix", "14 avenue Jean Jaurès", "3 place du Marché"),
            (("Lyon", "69002", None), ("Paris", "75011", None), ("Nantes", "44000", None)), 0.16),
    _Market("es-ES", "EUR", ("Europe/Madrid", "Atlantic/Canary"), "ES", 1.0, 0.21, 0.0, 450, 5000, ("Correos", "SEUR"),
            ("Lucía Fernández", "Javier Gómez", "María José Ruiz", "Álvaro Muñoz", "Nuria Peña"),
            ("Calle Mayor 12, 3.º B", "Avenida de la Constitución 45", "Plaza de España 7"),
            (("Madrid", "28013", None), ("Sevilla", "41004", None), ("Valencia", "46002", None)), 0.10),
    _Market("it-IT", "EUR", ("Europe/Rome",), "IT", 1.0, 0.22, 0.0, 590, 5900, ("BRT", "Poste Italiane"),
            ("Giulia Esposito", "Niccolò Ricci", "Francesca De Luca", "Matteo Bianchi", "Chiara Galli"),
            ("Via Roma 21", "Corso Vittorio Emanuele II 118", "Piazza Garibaldi 4"),
            (("Milano", "20121", None), ("Bologna", "40121", None), ("Napoli", "80133", None)), 0.09),
    _Market("nl-NL", "EUR", ("Europe/Amsterdam",), "NL", 1.0, 0.21, 0.0, 495, 4000, ("PostNL", "DHL"),
            ("Sanne de Vries", "Daan Jansen", "Fleur van Dijk", "Bram Visser", "Emma Bakker"),
            ("Prinsengracht 263", "Kerkstraat 14", "Oudegracht 58A"),
            (("Amsterdam", "1015 DV", None), ("Utrecht", "3511 AB", None), ("Rotterdam", "3011 AD", None)), 0.07),
)

# sku, name, price in euro cents
_CATALOGUE = (
    ("MUG-350", "Stoneware mug, 350 ml", 1299),
    ("TEA-EG250", "Loose-leaf Earl Grey, 250 g", 899),
    ("LMP-DIM7", "Desk lamp with dimmer", 4999),
    ("BAG-TOTE3", "Waxed canvas tote", 3900),
    ("HPH-WL22", "Wireless headphones", 12900),
    ("BTL-750", "Insulated bottle, 750 ml", 2450),
    ("NTB-A5D", "Dotted notebook A5", 1150),
    ("CHG-USBC30", "USB-C charger, 30 W", 2199),
    ("SCK-MER2", "Merino socks, 2 pairs", 1800),
    ("PLT-SNAKE", "Potted snake plant", 2999),
    ("CAF-ESP1K", "Espresso beans, 1 kg", 2490),
)
_SUBSTITUTES = {
    "HPH-WL22": ("HPH-WL24", "Wireless headphones (2024 model)"),
    "MUG-350": ("MUG-400", "Stoneware mug, 400 ml"),
    "BTL-750": ("BTL-1000", "Insulated bottle, 1 l"),
}
_LEFT_AT = (None, None, "with a neighbour at no. 12", "in the porch", "at the parcel locker")


@dataclass(frozen=True)
class _Shopper:
    customer: Customer
    market: _Market
    address: Address


class _Clock:
    """Per-order time that only moves forward, in whole milliseconds (what Avro keeps)."""

    def __init__(self, start: datetime, rng: random.Random) -> None:
        self.now = start
        self._rng = rng

    def tick(self, low_s: float = 10, high_s: float = 80) -> datetime:
        self.now += timedelta(milliseconds=int(self._rng.uniform(low_s, high_s) * 1000))
        return self.now


def simulate_orders(n_orders: int, seed: int = 0, now: datetime | None = None) -> list[OrderEvent]:
    """Lifecycles of ``n_orders`` orders, in the order they should be produced (orders interleaved)."""
    if n_orders < 0:
        raise ValueError("n_orders must not be negative")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    rng = random.Random(seed)
    shoppers = [_shopper(rng, i) for i in range(max(1, n_orders * 2 // 3))]
    events: list[tuple[datetime, int, int, OrderEvent]] = []
    for number in range(n_orders):
        order_events = _order(rng, number, rng.choice(shoppers), now)
        events.extend((event.occurred_at, number, seq, event) for seq, event in enumerate(order_events))
    events.sort(key=lambda item: item[:3])
    return [event for *_, event in events]


def _shopper(rng: random.Random, number: int) -> _Shopper:
    market = rng.choices(_MARKETS, weights=[m.share for m in _MARKETS])[0]
    name = rng.choice(market.names)
    local = ".".join(_ascii(part) for part in name.lower().replace("'", "").split())
    email = f"{local}{rng.randint(1, 99)}@{rng.choice(EMAIL_DOMAINS)}"
    customer = Customer(f"c-{number + 1:05d}", email, name, market.locale, rng.choice(market.time_zones))
    city, postal_code, region = rng.choice(market.cities)
    address = Address(name, rng.choice(market.streets), city, postal_code, market.country, region=region)
    return _Shopper(customer, market, address)


def _ascii(text: str) -> str:
    text = text.replace("ł", "l").replace("ß", "ss").replace("ı", "i")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _order(rng: random.Random, number: int, shopper: _Shopper, now: datetime) -> list[OrderEvent]:
    market = shopper.market
    out_of_stock = rng.random() < OUT_OF_STOCK_SHARE
    price_error = rng.random() < PRICE_ERROR_SHARE
    split = rng.random() < SPLIT_PARCEL_SHARE
    in_transit = rng.random() < IN_TRANSIT_SHARE
    n_items = max(rng.randint(1, 3), 1 + out_of_stock + price_error + split)
    items = tuple(
        LineItem(sku, name, rng.choice((1, 1, 1, 2, 3)), Money(_price(eur_cents, market), market.currency))
        for sku, name, eur_cents in rng.sample(_CATALOGUE, n_items)
    )
    order_id = f"o-{rng.getrandbits(24):06x}-{number + 1}"
    clock = _Clock(now - timedelta(milliseconds=rng.randint(30 * 60_000, 55 * 60_000)), rng)
    emit = _Emitter(rng, order_id, shopper.customer)
    placed = _placed(items, shopper, clock.now.date(), _discount(order_id, items, market))
    placed_total = placed.total
    events = [emit(EventType.ORDER_PLACED, clock.tick(0, 1), placed)]

    to_ship = [ParcelItem(item.sku, item.name, item.quantity) for item in items]
    if out_of_stock:
        item = items[-1]
        to_ship.pop()
        events.append(emit(EventType.ITEM_OUT_OF_STOCK, clock.tick(), _out_of_stock(rng, item, clock.now.date())))
    if price_error:
        item = items[0]
        resolution = rng.choice(tuple(PriceResolution))
        correct = Money(item.unit_price.amount_minor + rng.choice((200, 500, 1000)), item.unit_price.currency)
        respond_by = clock.now.date() + timedelta(days=3) if resolution is PriceResolution.HELD_PENDING_CHOICE else None
        payload = PriceError(ParcelItem(item.sku, item.name, item.quantity), item.unit_price, correct, resolution,
                             respond_by)
        events.append(emit(EventType.PRICE_ERROR, clock.tick(), payload))
        if resolution is PriceResolution.CANCELLED_REFUNDED:
            to_ship.pop(0)

    prices = {item.sku: item.unit_price for item in items}
    if rng.random() < CANCELLED_SHARE:
        events.extend(_cancel_order(rng, emit, clock, items, placed_total))
        return events
    if out_of_stock and rng.random() < CANCEL_OUT_OF_STOCK_SHARE:  # the customer's answer: cancel that item
        item = items[-1]
        cancelled = (ParcelItem(item.sku, item.name, item.quantity),)
        refund = _money_of(cancelled, prices)
        events.append(emit(EventType.ORDER_CANCELLED, clock.tick(),
                           OrderCancelled(CancelReason.CUSTOMER_REQUEST, cancelled, refund)))
        events.append(emit(EventType.REFUND_ISSUED, clock.tick(5, 20), _refund(rng, order_id, 1, refund, cancelled,
                                                                               clock.now.date())))

    parcels = [to_ship[: len(to_ship) // 2], to_ship[len(to_ship) // 2:]] if split else [to_ship]
    shipments = []
    for k, parcel in enumerate(parcels, start=1):
        remaining = tuple(item for later in parcels[k:] for item in later)
        shipment = _shipped(rng, order_id, k, parcel, remaining, market, clock.now.date())
        shipments.append(shipment)
        events.append(emit(EventType.ORDER_SHIPPED, clock.tick(30, 120), shipment))
    if not in_transit:
        delivered_any = False
        for shipment in shipments:
            if rng.random() < LOST_SHARE:
                events.extend(_lost(rng, emit, clock, order_id, shipment, prices))
                continue
            events.extend(_last_mile(rng, emit, clock, shipment))
            delivered_at = clock.tick(60, 240)
            delivered = OrderDelivered(shipment.shipment_id, delivered_at, shipment.items, rng.choice(_LEFT_AT))
            events.append(emit(EventType.ORDER_DELIVERED, delivered_at, delivered))
            delivered_any = True
        if delivered_any and rng.random() < RETURN_SHARE:
            returned = shipments[0].items[:1]
            events.append(emit(EventType.REFUND_ISSUED, clock.tick(60, 180),
                               _refund(rng, order_id, 9, _money_of(returned, prices), returned, clock.now.date())))
    return events


def _cancel_order(rng: random.Random, emit: _Emitter, clock: _Clock, items: tuple[LineItem, ...],
                  total: Money) -> list[OrderEvent]:
    """The whole order cancelled before it ships, and (unless the payment failed) its money refunded."""
    reason = rng.choice((CancelReason.CUSTOMER_REQUEST, CancelReason.CUSTOMER_REQUEST, CancelReason.PAYMENT_FAILED,
                         CancelReason.SHOP_DECISION))
    paid = None if reason is CancelReason.PAYMENT_FAILED else total
    cancelled = [emit(EventType.ORDER_CANCELLED, clock.tick(), OrderCancelled(reason, (), paid))]
    if paid is not None:
        all_items = tuple(ParcelItem(i.sku, i.name, i.quantity) for i in items)
        refund = _refund(rng, emit.order_id, 1, paid, all_items, clock.now.date(), shipping=True)
        cancelled.append(emit(EventType.REFUND_ISSUED, clock.tick(5, 20), refund))
    return cancelled


def _last_mile(rng: random.Random, emit: _Emitter, clock: _Clock, shipment: OrderShipped) -> list[OrderEvent]:
    """Out for delivery (most carriers say so), sometimes a missed or late delivery first."""
    events = []
    parcel_id, carrier, tracking_url = shipment.shipment_id, shipment.carrier, shipment.tracking_url
    if rng.random() < DELIVERY_PROBLEM_SHARE:
        at = clock.tick(30, 120)
        if rng.random() < 0.5:
            problem = DeliveryProblem(parcel_id, DeliveryProblemKind.DELAYED, carrier, tracking_url,
                                      new_estimate=at.date() + timedelta(days=rng.randint(1, 4)))
        else:
            problem = DeliveryProblem(parcel_id, DeliveryProblemKind.ATTEMPTED, carrier, tracking_url,
                                      pickup_location=f"{shipment.carrier} pick-up point",
                                      pickup_by=at.date() + timedelta(days=7),
                                      reschedule_url=f"{shipment.tracking_url}/reschedule")
        events.append(emit(EventType.DELIVERY_PROBLEM, at, problem))
    if rng.random() < OUT_FOR_DELIVERY_SHARE:
        at = clock.tick(30, 120)
        start = at.replace(minute=0, second=0, microsecond=0)
        events.append(emit(EventType.OUT_FOR_DELIVERY, at,
                           OutForDelivery(parcel_id, carrier, tracking_url, start, start + timedelta(hours=3))))
    return events


def _lost(rng: random.Random, emit: _Emitter, clock: _Clock, order_id: str, shipment: OrderShipped,
          prices: dict[str, Money]) -> list[OrderEvent]:
    lost = DeliveryProblem(shipment.shipment_id, DeliveryProblemKind.LOST, shipment.carrier, shipment.tracking_url)
    refund = _refund(rng, order_id, 5, _money_of(shipment.items, prices), shipment.items, clock.now.date())
    return [emit(EventType.DELIVERY_PROBLEM, clock.tick(30, 120), lost),
            emit(EventType.REFUND_ISSUED, clock.tick(30, 120), refund)]


def _money_of(items: tuple[ParcelItem, ...] | list[ParcelItem], prices: dict[str, Money]) -> Money:
    currency = prices[items[0].sku].currency
    return Money(sum(prices[i.sku].amount_minor * i.quantity for i in items), currency)


def _refund(rng: random.Random, order_id: str, number: int, amount: Money, items: tuple[ParcelItem, ...],
            today: date, shipping: bool = False) -> RefundIssued:
    method = rng.choice(("Visa ending 4242", "Mastercard ending 5100", "PayPal", None))
    return RefundIssued(f"{order_id}-r{number}", amount, items, shipping, method,
                        today + timedelta(days=rng.randint(3, 10)))


class _Emitter:
    def __init__(self, rng: random.Random, order_id: str, customer: Customer) -> None:
        self._rng = rng
        self.order_id = order_id
        self._customer = customer

    def __call__(self, event_type: EventType, at: datetime, payload: Payload) -> OrderEvent:
        event_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        return OrderEvent(event_id, event_type, at, self.order_id, self._customer, payload,
                          SHOP_ORDER_URL + self.order_id)


def _price(eur_cents: int, market: _Market) -> int:
    """Converted, then rounded to a shop-like .99 / .49 price."""
    whole = round(eur_cents * market.fx / 100)
    return max(whole, 1) * 100 - (1 if whole % 2 else 51)


def _discount(order_id: str, items: tuple[LineItem, ...], market: _Market) -> Discount | None:
    """Some orders carry a discount; drawn from the order id, so the rest of the simulation stays as it was."""
    rng = random.Random(order_id)
    if rng.random() >= DISCOUNT_SHARE:
        return None
    code, description, percent = rng.choice(_DISCOUNTS)
    subtotal = sum(item.unit_price.amount_minor * item.quantity for item in items)
    return Discount(Money(subtotal * percent // 100, market.currency), code, description)


def _placed(items: tuple[LineItem, ...], shopper: _Shopper, today: date, discount: Discount | None) -> OrderPlaced:
    """Sums that add up (:mod:`schemas.sums`): VAT markets include the tax in their prices, the US adds it."""
    market = shopper.market
    subtotal = sum(item.unit_price.amount_minor * item.quantity for item in items)
    off = discount.amount.amount_minor if discount else 0
    shipping = 0 if subtotal - off >= market.free_shipping_from_minor else market.shipping_minor
    if market.vat is not None:  # prices include VAT; tax shows the VAT share of what is paid
        total = subtotal - off + shipping
        tax = round(total * market.vat / (1 + market.vat))
    else:
        tax = round((subtotal - off) * market.sales_tax)
        total = subtotal - off + shipping + tax

    def money(amount: int) -> Money:
        return Money(amount, market.currency)

    estimate = DateRange(today + timedelta(days=2), today + timedelta(days=5))
    return OrderPlaced(items, money(subtotal), money(shipping), money(tax), money(total), shopper.address, estimate,
                       prices_include_tax=market.vat is not None, discount=discount)


def _out_of_stock(rng: random.Random, item: LineItem, today: date) -> ItemOutOfStock:
    substitute = None
    options = [StockOption.WAIT_FOR_RESTOCK, StockOption.CANCEL_ITEM]
    if item.sku in _SUBSTITUTES and rng.random() < 0.7:
        sku, name = _SUBSTITUTES[item.sku]
        substitute = Substitute(sku, name, Money(item.unit_price.amount_minor + 300, item.unit_price.currency))
        options.insert(1, StockOption.TAKE_SUBSTITUTE)
    missing = OutOfStockItem(item.sku, item.name, item.quantity, item.unit_price,
                             today + timedelta(days=rng.randint(5, 21)), substitute)
    default = rng.choice((StockOption.WAIT_FOR_RESTOCK, StockOption.CANCEL_ITEM))
    return ItemOutOfStock((missing,), tuple(options), default, today + timedelta(days=3))


def _shipped(rng: random.Random, order_id: str, k: int, parcel: list[ParcelItem], remaining: tuple[ParcelItem, ...],
             market: _Market, today: date) -> OrderShipped:
    carrier = rng.choice(market.carriers)
    tracking = f"{carrier[:2].upper()}{rng.randint(10**9, 10**10 - 1)}"
    slug = "".join(ch for ch in carrier.lower() if ch.isalnum())
    return OrderShipped(f"{order_id}-p{k}", carrier, tracking, f"{TRACKING_URL}{slug}/{tracking}", tuple(parcel),
                        remaining, today + timedelta(days=rng.randint(1, 3)))
