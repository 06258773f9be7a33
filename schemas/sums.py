"""The sum rule of an order's money, in one place.

    subtotal = sum(quantity x unit price) over the items
    total    = subtotal - discount + shipping_cost (+ tax, only when the prices exclude it)

With ``prices_include_tax`` the unit prices, subtotal and shipping already contain the tax and
``tax`` is the share they contain (VAT), shown beside the total but never added to it. Events
written before schema version 3 could not say which (``None``): either reading that adds up is
taken, so that a shop's old producer keeps working after the upgrade. An
order whose numbers do not add up is refused by the producer and dead-lettered by the consumer
(``sums_do_not_add_up``), so that no customer is ever shown a sum that is wrong.
"""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import get_currency_precision

from schemas.events import Money, OrderPlaced
from schemas.exceptions import SumsError


def tax_included(placed: OrderPlaced) -> bool:
    """Whether the prices include the tax: as the event says, or, when it cannot say (written before
    schema version 3), as its sums add up (included when the total leaves the tax out)."""
    if placed.prices_include_tax is not None:
        return placed.prices_include_tax
    discount = placed.discount.amount.amount_minor if placed.discount is not None else 0
    base = placed.subtotal.amount_minor - discount + placed.shipping_cost.amount_minor
    return placed.total.amount_minor == base and placed.tax.amount_minor > 0


def check_sums(placed: OrderPlaced, path: str = "payload") -> None:
    """Raise :class:`SumsError` naming the fields and their amounts if ``placed`` does not add up.

    All amounts must be in one currency (checked by :mod:`schemas.validation` before this).
    """
    included = tax_included(placed)
    currency = placed.total.currency
    items = sum(item.unit_price.amount_minor * item.quantity for item in placed.items)
    if placed.subtotal.amount_minor != items:
        raise SumsError(
            f"{path}.subtotal",
            f"subtotal {_major(placed.subtotal)} \u2260 sum of quantity \u00d7 unit_price over {path}.items = "
            f"{_major(Money(items, currency))} {currency}",
            (f"{path}.subtotal", f"{path}.items"),
        )
    discount = placed.discount.amount if placed.discount is not None else Money(0, currency)
    base = placed.subtotal.amount_minor - discount.amount_minor + placed.shipping_cost.amount_minor
    expected = base if included else base + placed.tax.amount_minor
    if placed.total.amount_minor == expected:
        if included and placed.tax.amount_minor > placed.total.amount_minor:
            raise SumsError(
                f"{path}.tax",
                f"tax {_major(placed.tax)} included in the prices is more than total {_major(placed.total)} "
                f"{currency}",
                (f"{path}.tax", f"{path}.total"),
            )
        return
    terms = (f"total {_major(placed.total)} \u2260 subtotal {_major(placed.subtotal)} "
             f"\u2212 discount {_major(discount)} + shipping_cost {_major(placed.shipping_cost)}")
    if included:
        problem = (f"{terms} = {_major(Money(expected, currency))} {currency} "
                   f"(tax {_major(placed.tax)} included in the prices, not added: prices_include_tax is true)")
        other = base + placed.tax.amount_minor
    else:
        said = "false" if placed.prices_include_tax is False else "not given"
        problem = (f"{terms} + tax {_major(placed.tax)} = {_major(Money(expected, currency))} {currency} "
                   f"(tax added: prices_include_tax is {said})")
        other = base
    if placed.total.amount_minor == other:
        problem += f"; with prices_include_tax {str(not included).lower()} it would add up"
    fields = [f"{path}.total", f"{path}.subtotal"]
    if placed.discount is not None:
        fields.append(f"{path}.discount.amount")
    fields += [f"{path}.shipping_cost", f"{path}.tax", f"{path}.prices_include_tax"]
    raise SumsError(f"{path}.total", problem, tuple(fields))


def _major(money: Money) -> str:
    """``5897`` EUR -> ``58.97``: the amount as the customer reads it, without locale formatting."""
    return str(Decimal(money.amount_minor).scaleb(-get_currency_precision(money.currency)))
