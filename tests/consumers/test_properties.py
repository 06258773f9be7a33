"""Properties of decode -> policy -> render -> MIME for any input: only the project's own errors, and
headers that always read back as intended.

The strategies are built from the dataclasses of :mod:`schemas.events` (their type hints), with text
that includes control characters, encoded-word openers, right-to-left text and emoji, integers over the
whole Avro int/long range, and any dates. Example counts stay modest so that the suite stays fast.
"""

from __future__ import annotations

import dataclasses
import email
import enum
import types
import typing
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from consumers.deliver.message import build_message, clean_header_text
from consumers.deliver.rendering import Renderer
from consumers.exceptions import RenderError
from consumers.notification import Notification
from consumers.policy.rules import Hold, SendNow, Suppress, compose, decide
from ordernotify.config import Settings
from ordernotify.errors import OrderNotifyError
from schemas.codec import MAGIC, EventCodec
from schemas.events import PAYLOAD_TYPE, Customer, EventType, Money, OrderEvent
from schemas.exceptions import DecodeError, EventValidationError
from schemas.registry import ORDER_EVENT, default_registry
from tests import factories as f

SETTINGS = Settings()
RENDERER = Renderer(SETTINGS)
CODEC = EventCodec()
FEW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
HOSTILE_TEXT = st.sampled_from([
    "Ada\r\nBcc: evil@example.com", "=?UTF-8?Q?=0A?=Bcc: x@y.z", "<script>alert(1)</script>", "{{ 7*7 }}",
    "{{ ''.__class__ }}", "مرحبا", "😀👩‍👩‍👧", "a\u2028b", "\x00\x85", " ", "", "alice@example.org(<bob@example.com>",
])
TEXT = st.one_of(st.text(max_size=40), HOSTILE_TEXT)  # every code point, control characters included
# One line of any script, emoji, markup and encoded-word openers, but no control character: what
# validation lets through into headers.
LINE = st.one_of(
    st.text(st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="\u2028\u2029"), min_size=1,
            max_size=40),
    st.sampled_from(["=?UTF-8?Q?=0A?=Bcc: x@y.z", "=?utf-8?b?DQpCY2M6IHhAeS56?=", "<b>x</b>", "{{ 7*7 }}",
                     "{{ ''.__class__ }}", "مرحبا", "😀👩‍👩‍👧", "\u202eevil", "Zoë \"Q\" <z@example.org>"]),
)
CURRENCIES = st.one_of(st.sampled_from(["EUR", "USD", "JPY", "KWD", "PLN", "GBP"]), st.text(max_size=4))
EMAILS = st.one_of(st.sampled_from(["ada@example.org", "zoe.u+tag@mail.example.co.uk"]), st.emails(), TEXT)
LOCALES = st.one_of(st.sampled_from(["en", "de-DE", "pl", "fr-FR", "ar-EG", "he", "zz-ZZ", "de_AT"]), TEXT)
ZONES = st.one_of(st.sampled_from(["Europe/Berlin", "America/New_York", "UTC", "Nowhere/Else"]), TEXT)
DATETIMES = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))
RECENT = st.builds(lambda minutes: datetime.now(UTC) - timedelta(minutes=minutes), st.integers(0, 600))

# Fields whose text is not free text: drawn from plausible values mixed with anything.
FIELD_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.one_of(st.uuids().map(str), TEXT),
    "occurred_at": st.one_of(RECENT, DATETIMES),
    "email": EMAILS,
    "locale": LOCALES,
    "time_zone": ZONES,
    "currency": CURRENCIES,
    "quantity": st.one_of(st.integers(1, 5), INT32),
    "amount_minor": st.one_of(st.integers(0, 10**6), INT64),
    "order_url": st.one_of(st.none(), st.just("https://shop.example/o/1"), TEXT),
    "tracking_url": st.one_of(st.just("https://tracking.example/1"), TEXT),
}


def _strategy(tp: Any, name: str = "") -> st.SearchStrategy[Any]:
    """A strategy for one type hint of the event model."""
    if name in FIELD_STRATEGIES:
        return FIELD_STRATEGIES[name]
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        inner = st.one_of(*(_strategy(m, name) for m in members))
        return st.one_of(st.none(), inner) if len(members) < len(typing.get_args(tp)) else inner
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(tp)
        return st.lists(_strategy(item_type), min_size=0, max_size=3).map(tuple)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return st.builds(tp, **{fl.name: _strategy(hints[fl.name], fl.name) for fl in dataclasses.fields(tp)})
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if tp is str:
        return TEXT
    if tp is int:
        return INT64
    if tp is bool:
        return st.booleans()
    if tp is datetime:
        return DATETIMES
    if tp is date:
        return st.dates()
    raise TypeError(f"no strategy for {tp!r}")  # pragma: no cover - the model gained a type


def _event(event_type: EventType) -> st.SearchStrategy[OrderEvent]:
    hints = typing.get_type_hints(OrderEvent)
    fields = {fl.name: _strategy(hints[fl.name], fl.name) for fl in dataclasses.fields(OrderEvent)}
    fields.update(event_type=st.just(event_type), payload=_strategy(PAYLOAD_TYPE[event_type]))
    return st.builds(OrderEvent, **fields)


ANY_EVENT = st.sampled_from(list(EventType)).flatmap(_event)


def _valid_base(event_type: EventType) -> OrderEvent:
    make = {
        EventType.ORDER_PLACED: f.placed_event, EventType.ITEM_OUT_OF_STOCK: f.out_of_stock_event,
        EventType.ORDER_SHIPPED: f.shipped_event, EventType.ORDER_DELIVERED: f.delivered_event,
        EventType.PRICE_ERROR: f.price_error_event, EventType.ORDER_CANCELLED: f.cancelled_event,
        EventType.REFUND_ISSUED: f.refund_event, EventType.OUT_FOR_DELIVERY: f.out_for_delivery_event,
        EventType.DELIVERY_PROBLEM: f.delivery_problem_event,
    }[event_type]
    return make()


@st.composite
def plausible_events(draw: st.DrawFn) -> OrderEvent:
    """A valid event of any type with hostile free text: order id, names, and any currency the model knows."""
    event = _valid_base(draw(st.sampled_from(list(EventType))))
    customer = Customer(
        customer_id=draw(LINE), email=draw(st.sampled_from(["ada@example.org", "z.u+t@mail.example.pl"])),
        display_name=draw(st.one_of(LINE, TEXT)),
        locale=draw(st.sampled_from(["en", "de-DE", "pl", "fr-FR", "ar-EG", "he", "zz-ZZ", "de_AT"])),
        time_zone=draw(ZONES),
    )
    name = draw(st.one_of(LINE, TEXT).filter(bool))  # product names may span lines; they are body text
    currency = draw(st.sampled_from(["EUR", "JPY", "KWD"]))
    payload = _rename_and_reprice(event.payload, name, currency)
    return dataclasses.replace(event, order_id=draw(LINE), customer=customer, payload=payload)


def _rename_and_reprice(value: Any, name: str, currency: str) -> Any:
    """Every ``name`` field set to ``name`` and every Money to ``currency``, recursively."""
    if isinstance(value, Money):
        return Money(value.amount_minor, currency)
    if isinstance(value, tuple):
        return tuple(_rename_and_reprice(v, name, currency) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {fl.name: _rename_and_reprice(getattr(value, fl.name), name, currency)
                   for fl in dataclasses.fields(value)}
        if "name" in changes:
            changes["name"] = name
        return dataclasses.replace(value, **changes)
    return value


def _notification(event: OrderEvent) -> Notification | None:
    """What the policy makes of a first event of its order: sent now, or one e-mail when its window closes."""
    decision = decide(event, frozenset(), opted_out=False, now=datetime.now(UTC), max_age=timedelta(days=3650))
    if isinstance(decision, SendNow):
        return decision.notification
    if isinstance(decision, Hold):
        return compose(decision.group, [event])
    assert isinstance(decision, Suppress)
    return None


def _parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# (a) arbitrary bytes ------------------------------------------------------------------------------

LATEST_FINGERPRINT = default_registry().latest(ORDER_EVENT).fingerprint
GOOD_BYTES = CODEC.encode(f.placed_event())


@st.composite
def mutated_good_bytes(draw: st.DrawFn) -> bytes:
    data = bytearray(GOOD_BYTES)
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(10, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) if draw(st.booleans()) else bytes(data)


ANY_BYTES = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=200).map(lambda tail: MAGIC + LATEST_FINGERPRINT + tail),
    mutated_good_bytes(),
)


@FEW
@given(ANY_BYTES)
def test_decoding_any_bytes_returns_an_event_or_raises_a_decode_error(data: bytes) -> None:
    try:
        event = CODEC.decode(data)
    except DecodeError as exc:
        assert exc.reason in {"undecodable", "unknown_schema", "invalid_event", "sums_do_not_add_up"}
        return
    assert isinstance(event, OrderEvent)


@FEW
@given(ANY_BYTES)
def test_any_bytes_through_decode_policy_render_and_mime_raise_only_our_own_errors(data: bytes) -> None:
    try:
        event = CODEC.decode(data)
        notification = _notification(event)
        if notification is not None:
            build_message(RENDERER.render(notification), notification, SETTINGS)
    except OrderNotifyError:
        pass


# (b) arbitrary schema-valid events -----------------------------------------------------------------

@FEW
@given(st.one_of(ANY_EVENT, plausible_events()))
def test_any_event_through_encode_decode_policy_render_and_mime_raises_only_our_own_errors(
    event: OrderEvent,
) -> None:
    try:
        data = CODEC.encode(event)
    except EventValidationError:
        return  # refused at the producer, naming the field: nothing reaches the topic
    try:
        decoded = CODEC.decode(data)
        notification = _notification(decoded)
        if notification is None:
            return
        mail = build_message(RENDERER.render(notification), notification, SETTINGS)
    except OrderNotifyError:
        return
    assert mail.recipient == event.customer.email
    (to,) = _parse(mail.data)["To"].addresses
    assert to.addr_spec == event.customer.email


# (c) rendered headers always read back as intended ---------------------------------------------------

@FEW
@given(plausible_events())
def test_rendered_headers_always_parse_back_to_the_intended_values(event: OrderEvent) -> None:
    """No validation here on purpose: whatever text reaches the message builder, the headers stay ours."""
    notification = Notification.for_event(event)
    try:
        rendered = RENDERER.render(notification)
        mail = build_message(rendered, notification, SETTINGS)
    except RenderError:
        assume(False)  # e.g. an address the header cannot carry: dead-lettered, never sent
        return
    parsed = _parse(mail.data)
    names = [name.lower() for name in parsed.keys()]
    assert len(names) == len(set(names)) and "bcc" not in names and "cc" not in names
    (to,) = parsed["To"].addresses
    assert to.addr_spec == event.customer.email == mail.recipient
    # Python 3.11 reads the space between two encoded words as text (gh-128110); the exact reading, by
    # RFC 2047 6.2, is checked in tests/consumers/deliver/test_header_lines.py.
    assert to.display_name.replace(" ", "") == clean_header_text(event.customer.display_name).replace(" ", "")
    subject = str(parsed["Subject"])
    assert "\n" not in subject and subject == clean_header_text(rendered.subject)
    assert parsed["Message-ID"] == mail.message_id
    again = build_message(rendered, notification, SETTINGS, now=datetime(2030, 1, 1, tzinfo=UTC))
    assert again.message_id == mail.message_id  # a resend carries the same Message-ID
    assert mail.data.isascii()
