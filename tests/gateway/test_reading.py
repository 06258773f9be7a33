"""The adapters' shared readers of platform payloads: what they take, and what they refuse naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.adapters.base import PlatformRefused
from gateway.adapters.reading import json_object, minor_units, whole_number


@pytest.mark.parametrize(("value", "expected"), [(2, 2), ("3", 3), (" 4 ", 4), (-1, -1), ("-1", -1), (2.0, 2),
                                                 ("5.00", 5), (None, 0), ("", 0)])
def test_whole_numbers_are_read_as_platforms_write_them(value: Any, expected: int) -> None:
    assert whole_number(value, "quantity") == expected


@pytest.mark.parametrize("value", ["two", 1.5, "1.5", True, "NaN", "Infinity", [1], {"n": 1}, 2**31, -2**31 - 1,
                                   "1e1000000000", "-1e1000000000"])
def test_anything_else_is_refused_naming_the_field(value: Any) -> None:
    with pytest.raises(PlatformRefused) as refused:
        whole_number(value, "line_items[3].quantity")
    assert refused.value.status == 400 and "line_items[3].quantity" in str(refused.value)


@pytest.mark.parametrize("amount", ["1e1000000", "-1e1000000", "9" * 40, "NaN", "Infinity", "twelve"])
def test_an_amount_no_order_has_is_refused_naming_the_field_not_a_failed_request(amount: str) -> None:
    """"1e1000000" once raised decimal.Overflow (a 500) instead of being refused."""
    with pytest.raises(PlatformRefused) as refused:
        minor_units(amount, "EUR", "total_price")
    assert refused.value.status == 400 and "total_price" in str(refused.value)


def test_an_amount_is_read_exactly() -> None:
    assert minor_units("19.99", "USD", "price") == 1999
    assert minor_units("-10.00", "EUR", "refunds[0].total") == -1000
    assert minor_units("1500", "JPY", "total") == 1500


def test_a_platform_body_nested_too_deeply_is_refused_as_not_json() -> None:
    with pytest.raises(PlatformRefused) as refused:
        json_object(b"[" * 100_000)
    assert refused.value.status == 400 and "not JSON" in str(refused.value)
