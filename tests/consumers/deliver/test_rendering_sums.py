"""Order confirmations show sums that add up: the numbers are read back from the e-mail and added."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, replace
from decimal import Decimal

import pytest
from babel.numbers import parse_decimal

from consumers.deliver.rendering import RenderedEmail, Renderer
from consumers.exceptions import RenderError
from consumers.notification import Notification, Template
from ordernotify.config import Settings
from schemas.events import Discount, LineItem, OrderEvent, OrderPlaced
from tests import factories as f

ITEMS_EUR = (f.line_item("MUG", "Mug", 2, 1299), f.line_item("BTL", "Bottle", 1, 2799))  # 53.97


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(Settings())


@dataclass(frozen=True)
class Sums:
    case: str
    event: OrderEvent
    tax_included: bool
    discount_label: str | None  # the words of the discount line, code included
    included_words: str | None = None  # the words before the included tax ("incl. VAT")


def _items(currency: str) -> tuple[LineItem, ...]:
    return tuple(f.line_item(i.sku, i.name, i.quantity, i.unit_price.amount_minor, currency) for i in ITEMS_EUR)


CASES = [
    Sums("vat-included-de", f.placed_event(items=ITEMS_EUR, shipping_cost=f.money(490), tax=f.money(940),
                                           prices_include_tax=True, customer=f.make_customer(locale="de-DE")),
         tax_included=True, discount_label=None, included_words="inkl. MwSt."),
    Sums("vat-included-discount-pl", f.placed_event(
        items=_items("PLN"), shipping_cost=f.money(1499, "PLN"), tax=f.money(1122, "PLN"), prices_include_tax=True,
        discount=Discount(f.money(500, "PLN"), "WELCOME5"), customer=f.make_customer(locale="pl-PL")),
         tax_included=True, discount_label="Rabat (WELCOME5)", included_words="w tym VAT"),
    Sums("vat-included-discount-en", f.placed_event(
        items=ITEMS_EUR, shipping_cost=f.money(0), tax=f.money(780), prices_include_tax=True,
        discount=Discount(f.money(1000), None, "Loyalty discount")),
         tax_included=True, discount_label="Discount (Loyalty discount)", included_words="incl. VAT"),
    Sums("sales-tax-added-us", f.placed_event(
        items=_items("USD"), shipping_cost=f.money(599, "USD"), tax=f.money(432, "USD"),
        customer=f.make_customer(locale="en-US", time_zone="America/Chicago")),
         tax_included=False, discount_label=None),
    Sums("sales-tax-added-discount-de", f.placed_event(
        items=ITEMS_EUR, shipping_cost=f.money(490), tax=f.money(392), discount=Discount(f.money(500), "SOMMER"),
        customer=f.make_customer(locale="de-DE")),
         tax_included=False, discount_label="Rabatt (SOMMER)"),
]


def _amount(shown: str, locale: str) -> Decimal:
    """``−5,00 €`` -> Decimal('-5.00'), in the e-mail's locale."""
    digits = "".join(ch for ch in shown.replace("\u2212", "-") if ch.isdigit() or ch in ",.-")
    return parse_decimal(digits, locale=locale.replace("-", "_"), strict=False)


def _text_sums(email: RenderedEmail) -> tuple[list[tuple[str, Decimal]], list[Decimal], str]:
    """The lines of the sum block (label, amount), the item line totals, and what follows the total."""
    lines = email.text.splitlines()
    item_lines = [line for line in lines if line.startswith("  - ") and " x " in line]
    start = lines.index(item_lines[-1]) + 2  # a blank line, then the sums
    end = lines.index("", start)
    items = [_amount(line.rsplit(": ", 1)[1].split(" (")[0], email.locale) for line in item_lines]
    rows, after = [], ""
    for line in lines[start:end]:
        if line.startswith("("):
            after = line
        else:
            label, shown = line.rsplit(": ", 1)
            rows.append((label, _amount(shown, email.locale)))
    return rows, items, after


def _html_sums(email: RenderedEmail) -> tuple[list[tuple[str, Decimal]], str]:
    """The rows of the HTML sum table (label, amount; the total last) and the included-tax note."""
    rows = re.findall(r'<tr><td class="(?:sum-cell|total-cell)"[^>]*>(.*?)</td><td class="(?:sum|total)-cell num"'
                      r'[^>]*>(.*?)</td></tr>', email.html)
    notes = re.findall(r'<td class="sum-cell muted"[^>]*>(.*?)</td>', email.html)
    return ([(html.unescape(label), _amount(html.unescape(shown), email.locale)) for label, shown in rows],
            html.unescape(notes[0]) if notes else "")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.case)
def test_the_lines_shown_add_up_to_the_total_shown(renderer: Renderer, case: Sums) -> None:
    email = renderer.render(Notification(Template.ORDER_PLACED, (case.event,)))
    placed = case.event.payload
    assert isinstance(placed, OrderPlaced)
    text_rows, item_totals, after_total = _text_sums(email)
    html_rows, html_note = _html_sums(email)
    assert [label for label, _ in html_rows] == [label for label, _ in text_rows]
    for rows in (text_rows, html_rows):
        *terms, (_, total) = rows
        assert sum(amount for _, amount in terms) == total, rows  # every line shown is part of the sum
        assert total == Decimal(placed.total.amount_minor).scaleb(-2)
        assert terms[0][1] == sum(item_totals)  # the subtotal is the items' sum
        expected_rows = 3 + (placed.discount is not None) + (not case.tax_included)
        assert len(rows) == expected_rows, rows
        labels = [label for label, _ in rows]
        if case.discount_label is not None:
            assert labels[1] == case.discount_label
            assert rows[1][1] == -Decimal(placed.discount.amount.amount_minor).scaleb(-2)  # type: ignore[union-attr]
    tax = Decimal(placed.tax.amount_minor).scaleb(-2)
    if case.tax_included:
        assert case.included_words is not None
        for note in (after_total, html_note):
            assert case.included_words in note
            assert _amount(note.split(case.included_words)[1], email.locale) == tax
    else:
        assert (after_total, html_note) == ("", "")
        assert text_rows[-2][1] == tax  # tax: the line before the total


def test_a_discount_is_shown_with_a_minus_sign_where_the_locale_puts_it(renderer: Renderer) -> None:
    english, german = (
        renderer.render(Notification(Template.ORDER_PLACED, (f.placed_event(
            discount=Discount(f.money(500), "WELCOME5"), shipping_cost=f.money(1000),
            customer=f.make_customer(locale=locale)),)))
        for locale in ("en-GB", "de-DE")
    )
    assert "Discount (WELCOME5): \u2212\u20ac5.00" in english.text
    assert "Rabatt (WELCOME5): \u22125,00\xa0\u20ac" in german.text


def test_an_order_whose_sums_do_not_add_up_is_never_rendered(renderer: Renderer) -> None:
    """Events waiting in the state store are not validated again; the renderer still refuses a wrong sum."""
    event = f.placed_event(items=ITEMS_EUR, shipping_cost=f.money(490), tax=f.money(940), prices_include_tax=True)
    assert isinstance(event.payload, OrderPlaced)
    wrong = replace(event, payload=replace(event.payload, prices_include_tax=False))
    with pytest.raises(RenderError, match=r"sums do not add up: payload.total: total 58.87"):
        renderer.render(Notification(Template.ORDER_PLACED, (wrong,)))
