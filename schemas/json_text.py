"""Events as JSON text: the one strict decoder behind every reader of it (``emit``'s lines, the gateway's bodies).

Strict where :func:`json.loads` is lenient: ``NaN``, ``Infinity`` and ``-Infinity`` are refused (they are not JSON
numbers, and no field of the contract takes them), and so is nesting deeper than the decoder can follow: Python's
decoder recurses and would raise :class:`RecursionError`, which no reader expects (the relay would stop on such a
record, and again on it after every restart). Made once: ``json.loads`` with an option builds a new decoder
for every call.
"""

from __future__ import annotations

import json
from typing import Any


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def loads(text: str) -> Any:
    """The value ``text`` holds; raises :class:`json.JSONDecodeError` naming where it stops being JSON (a leading
    byte order mark included, as :func:`json.loads` says), or :class:`ValueError` for a non-number constant or
    nesting too deep to read."""
    if text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError("arrays or objects nested too deeply to read") from None
