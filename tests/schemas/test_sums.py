"""The sum rule: tables of orders that add up and orders that do not, each refused naming fields and numbers."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.codec import EventCodec
from schemas.events import Discount, EventType, OrderEvent, OrderPlaced
from schemas.exceptions import EventValidationError, SumsError
from schemas.sums import check_sums
from schemas.validation import validate_event
from tests import factories as f

ITEMS = (f.line_item("MUG", "Mug", 2, 1299), f.line_item("BTL", "Bottle", 1, 2799))  # 53.97 EUR


def _placed(**changes: Any) -> OrderPlaced:
    """53.97 of items, 4.90 shipping, 9.40 VAT included: total 58.87, unless ``changes`` say otherwise."""
    fields: dict[str, Any] = {
        "items": ITEMS, "subtotal": f.money(5397), "shipping_cost": f.money(490), "tax": f.money(940),
        "total": f.money(5887), "shipping_address": f.make_address(), "prices_include_tax": True,
    }
    fields.update(changes)
    return OrderPlaced(**fields)


GOOD = [
    ("tax-included", _placed()),
    ("tax-excluded", _placed(prices_include_tax=False, tax=f.money(432), total=f.money(6319))),
    ("tax-included-discount", _placed(discount=Discount(f.money(500), "WELCOME5"), tax=f.money(860),
                                      total=f.money(5387))),
    ("tax-excluded-discount", _placed(prices_include_tax=False, discount=Discount(f.money(500)), tax=f.money(392),
                                      total=f.money(5779))),
    ("free-shipping-zero-tax", _placed(shipping_cost=f.money(0), tax=f.money(0), total=f.money(5397))),
    ("discount-of-everything", _placed(discount=Discount(f.money(5887)), tax=f.money(0), total=f.money(0))),
    ("yen-no-minor-units", OrderPlaced((f.line_item(price_minor=1500, currency="JPY"),), f.money(1500, "JPY"),
                                       f.money(500, "JPY"), f.money(160, "JPY"), f.money(2160, "JPY"),
                                       f.make_address())),
]


@pytest.mark.parametrize("placed", [pytest.param(p, id=i) for i, p in GOOD])
def test_orders_that_add_up_pass(placed: OrderPlaced) -> None:
    check_sums(placed)
    validate_event(f.make_event(EventType.ORDER_PLACED, placed))


BAD = [
    ("subtotal-not-the-items", _placed(subtotal=f.money(5000), total=f.money(5490)), "payload.subtotal",
     ("payload.subtotal", "payload.items"),
     "subtotal 50.00 \u2260 sum of quantity \u00d7 unit_price over payload.items = 53.97 EUR"),
    ("included-tax-shown-as-added", _placed(prices_include_tax=False), "payload.total",
     ("payload.total", "payload.subtotal", "payload.shipping_cost", "payload.tax", "payload.prices_include_tax"),
     "total 58.87 \u2260 subtotal 53.97 \u2212 discount 0.00 + shipping_cost 4.90 + tax 9.40 = 68.27 EUR "
     "(tax added: prices_include_tax is false); with prices_include_tax true it would add up"),
    ("excluded-tax-not-added", _placed(total=f.money(6827)), "payload.total",
     ("payload.total", "payload.subtotal", "payload.shipping_cost", "payload.tax", "payload.prices_include_tax"),
     "total 68.27 \u2260 subtotal 53.97 \u2212 discount 0.00 + shipping_cost 4.90 = 58.87 EUR (tax 9.40 included in "
     "the prices, not added: prices_include_tax is true); with prices_include_tax false it would add up"),
    ("discount-not-taken-off", _placed(discount=Discount(f.money(500), "WELCOME5")), "payload.total",
     ("payload.total", "payload.subtotal", "payload.discount.amount", "payload.shipping_cost", "payload.tax",
      "payload.prices_include_tax"),
     "total 58.87 \u2260 subtotal 53.97 \u2212 discount 5.00 + shipping_cost 4.90 = 53.87 EUR"),
    ("off-by-one-cent", _placed(total=f.money(5888)), "payload.total",
     ("payload.total", "payload.subtotal", "payload.shipping_cost", "payload.tax", "payload.prices_include_tax"),
     "total 58.88 \u2260"),
    ("included-tax-above-total", _placed(tax=f.money(9000)), "payload.tax", ("payload.tax", "payload.total"),
     "tax 90.00 included in the prices is more than total 58.87 EUR"),
]


@pytest.mark.parametrize(("placed", "field", "fields", "message"),
                         [pytest.param(p, fd, fs, m, id=i) for i, p, fd, fs, m in BAD])
def test_orders_that_do_not_add_up_are_refused_naming_fields_and_numbers(
    placed: OrderPlaced, field: str, fields: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SumsError) as caught:
        check_sums(placed)
    assert caught.value.field == field
    assert caught.value.fields == fields
    assert message in caught.value.problem
    assert str(caught.value).startswith(f"{field}: ")


def test_the_hint_is_given_only_when_the_other_reading_adds_up() -> None:
    with pytest.raises(SumsError) as caught:
        check_sums(_placed(total=f.money(1)))
    assert "would add up" not in caught.value.problem


@pytest.mark.parametrize("changes", [{"discount": Discount(f.money(500, "USD"))}, {"tax": f.money(940, "USD")}],
                         ids=["discount", "tax"])
def test_an_amount_in_another_currency_is_refused_before_the_sums(changes: dict[str, Any]) -> None:
    event = f.make_event(EventType.ORDER_PLACED, _placed(**changes))
    with pytest.raises(EventValidationError) as caught:
        validate_event(event)
    assert not isinstance(caught.value, SumsError)
    assert "mixes currencies ['EUR', 'USD']" in str(caught.value)


def test_producer_side_encode_refuses_an_order_that_does_not_add_up() -> None:
    event: OrderEvent = f.make_event(EventType.ORDER_PLACED, _placed(prices_include_tax=False))
    with pytest.raises(SumsError, match="payload.total: total 58.87"):
        EventCodec().encode(event)


def test_discount_texts_are_single_line() -> None:
    placed = _placed(discount=Discount(f.money(500), "WELCOME\r\nBcc: x@example.com"), tax=f.money(860),
                     total=f.money(5387))
    event = f.make_event(EventType.ORDER_PLACED, placed)
    with pytest.raises(EventValidationError, match="payload.discount.code: must not contain line breaks"):
        validate_event(event)
