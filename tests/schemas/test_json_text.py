"""The strict JSON decoder that emit's lines and the gateway's bodies go through."""

from __future__ import annotations

import json

import pytest

from schemas import json_text


def test_an_object_is_read_as_json_loads_reads_it() -> None:
    text = '{"a": [1, 2.5, "x", null, true], "b": {"c": "\\u00e9"}}'
    assert json_text.loads(text) == json.loads(text)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_constants_that_are_not_json_numbers_are_refused(constant: str) -> None:
    with pytest.raises(ValueError, match=f"{constant} is not a JSON number"):
        json_text.loads(f'{{"amount": {constant}}}')


def test_a_byte_order_mark_is_named_not_reported_as_a_missing_value() -> None:
    with pytest.raises(json.JSONDecodeError, match="Unexpected UTF-8 BOM"):
        json_text.loads('\ufeff{"a": 1}')


@pytest.mark.parametrize("nested", ["[" * 100_000, '{"a": ' * 100_000])
def test_nesting_deeper_than_the_decoder_reads_is_refused_as_not_json(nested: str) -> None:
    # a RecursionError would end the relay on this record, and again on every restart
    with pytest.raises(ValueError, match="nested"):
        json_text.loads(nested)
