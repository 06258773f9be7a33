"""Reading a platform's payload into ordernotify's types: JSON, money, times, ids, and the checks at the end.

Every problem is a :class:`PlatformRefused` (400) naming the platform's own field, so the shop owner can find it
in their platform's webhook log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import get_currency_precision

from gateway.adapters.base import PlatformRefused
from schemas import json_text
from schemas.events import OrderEvent
from schemas.exceptions import EventValidationError
from schemas.validation import validate_event

# The namespace of every event id the gateway derives; fixed forever, so that ids stay the same across releases.
EVENT_ID_NAMESPACE = uuid.UUID("6f0c3f8e-3c1a-5b8e-9a57-2c1d0a4e7b11")


def refused(field: str, problem: str) -> PlatformRefused:
    return PlatformRefused(400, "malformed", f"{field}: {problem}")


def event_id(platform: str, identity: str, kind: str) -> str:
    """The same delivery (and the same news) always gets the same id: the consumer's dedupe drops a retry."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{platform}\n{identity}\n{kind}"))


def json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json_text.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise refused("body", f"is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise refused("body", f"is a JSON {type(data).__name__}, not an object")
    return data


def header(headers: Mapping[str, str], name: str) -> str:
    """A header by name, any case (aiohttp's headers are case-insensitive already; a plain dict is not)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return ""


def hmac_sha256_base64_matches(secret: str, body: bytes, given: str) -> bool:
    """Whether ``given`` is the base64 HMAC-SHA256 of ``body``; compared in constant time."""
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, given.strip().encode("ascii", "replace"))


def field(data: Mapping[str, Any], name: str, path: str = "") -> Any:
    """A field the mapping needs: present and not null, else refused naming it."""
    value = data.get(name)
    if value is None or value == "":
        raise refused(f"{path}{name}", "is missing")
    return value


def text(data: Mapping[str, Any], name: str, path: str = "") -> str:
    return str(field(data, name, path))


#: a count is an Avro int in the events (quantities): anything beyond could not be sent anyway
LARGEST_COUNT = 2**31 - 1


def whole_number(value: Any, name: str) -> int:
    """A count such as a quantity: an integer or its decimal string (``"2"``, ``2.0``), missing as 0; anything else
    is refused naming the field rather than failing the request. So is a count beyond an Avro int, checked before
    it is made an int: ``"1e1000000000"`` is a few bytes, but as an int a billion digits that would hold the event
    loop for minutes."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        number = Decimal("NaN")
    elif isinstance(value, int):
        number = Decimal(value)
    else:
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            number = Decimal("NaN")
    if not number.is_finite() or number != number.to_integral_value():
        raise refused(name, f"{str(value)[:40]!r} is not a whole number")
    if number.copy_abs() > LARGEST_COUNT:  # exact: abs() rounds to the context, overflowing such a number
        raise refused(name, f"{str(value)[:40]!r} is more than {LARGEST_COUNT}")
    return int(number)


MAX_AMOUNT = Decimal(2**63 - 1).scaleb(-4)  # the largest that fits a long in minor units, whatever the currency


def minor_units(amount: Any, currency: str, name: str) -> int:
    """``"19.99"`` USD -> ``1999``: decimal strings read exactly (never through a float); an amount with more
    digits than the currency has, or not a number, is refused naming the field."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation as exc:
        raise refused(name, f"{str(amount)[:40]!r} is not an amount") from exc
    if not value.is_finite() or value.copy_abs() > MAX_AMOUNT:
        raise refused(name, f"{str(amount)[:40]!r} is not an amount")
    scaled = value.scaleb(get_currency_precision(currency))
    if scaled != scaled.to_integral_value():
        raise refused(name, f"{amount} has more decimals than {currency} has")
    return int(scaled)


def timestamp(value: Any, name: str, assume_utc: bool = False) -> datetime:
    """An ISO 8601 time; one without an offset is UTC only when the platform says so (``assume_utc``)."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise refused(name, f"{value!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        if not assume_utc:
            raise refused(name, f"{value!r} has no UTC offset")
        moment = moment.replace(tzinfo=UTC)
    return moment


def checked(event: OrderEvent, names: Mapping[str, str], now: datetime | None = None) -> OrderEvent:
    """The event if it keeps every rule of the contract (sums included); else refused naming the platform's
    field (``names`` maps ordernotify's field to it) and ordernotify's, so that nothing invalid is produced."""
    try:
        validate_event(event, now)
    except EventValidationError as exc:
        theirs = names.get(exc.field, "")
        where = f"{theirs} ({exc.field})" if theirs else exc.field or "event"
        raise PlatformRefused(400, "malformed", f"{where}: {exc.problem}") from exc
    return event
