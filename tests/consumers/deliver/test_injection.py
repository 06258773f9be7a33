"""Hostile text in names and subjects: never an extra header or recipient, never executed, always literal.

The unit tests render with the real templates and build the real MIME message, bypassing
``validate_event`` on purpose (the validation refuses CR/LF, the message must be safe without it);
the integration test sends such events through the real broker, consumer and SMTP server and looks
at the SMTP envelope.
"""

from __future__ import annotations

import email
import html
from collections.abc import Callable
from email import policy
from email.message import EmailMessage

import pytest

from consumers.deliver.message import OutgoingEmail, build_message, clean_header_text
from consumers.deliver.rendering import RenderedEmail, Renderer
from consumers.deliver.word_breaks import SOFT_HYPHEN, ZERO_WIDTH_SPACE
from consumers.notification import Notification
from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Settings
from producers.event_producer import OrderEventProducer
from schemas.events import OrderEvent
from tests import factories as f
from tests.consumer_runner import ConsumerRunner

SETTINGS = Settings()
EMAIL = "ada@example.org"
ALLOWED_HEADERS = {"message-id", "date", "from", "to", "subject", "mime-version", "content-type",
                   "content-language", "auto-submitted", "in-reply-to", "references"}

HOSTILE = {
    "crlf bcc": "Ada\r\nBcc: evil@example.com",
    "lf only": "Ada\nBcc: evil@example.com\nX-Injected: yes",
    "cr only": "Ada\rCc: evil@example.com",
    "encoded newline q": "=?UTF-8?Q?=0A?=Bcc: x@y.z",
    "encoded newline b": "Ada =?UTF-8?B?DQpCY2M6IHhAeS56?= more",
    "encoded crlf in quotes": '"=?utf-8?q?=0D=0A?=Bcc: x@y.z" <x@y.z>',
    "unicode line separator": "Ada\u2028Bcc: evil@example.com",
    "nul and c1": "Ada\x00\x85Bcc: evil@example.com",
    "address-like": "bob@example.com, carol@example.com",
    "cve-2023-27043": "alice@example.org(<bob@example.com>",
    "html": "<script>alert(1)</script><b>bold</b>",
    "jinja arithmetic": "X{{ 7*7 }}Y",
    "jinja class": "{{ ''.__class__ }}",
    "jinja statement": "{% for x in range(3) %}loop{% endfor %}",
    "rtl": "مرحبا بالعالم",
    "rtl override": "abc\u202edcba",
    "emoji": "Zoë 😀👩‍👩‍👧 🇵🇱",
}


def _unbroken(markup: str) -> str:
    """Without the break opportunities written into long runs of text (invisible unless a line breaks there)."""
    return markup.replace(ZERO_WIDTH_SPACE, "").replace(SOFT_HYPHEN, "")


def _displayed(markup: str) -> str:
    return _unbroken(html.unescape(markup))


def _parse(mail: OutgoingEmail) -> EmailMessage:
    parsed = email.message_from_bytes(mail.data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _build(event: OrderEvent, rendered: RenderedEmail | None = None) -> tuple[RenderedEmail, OutgoingEmail]:
    notification = Notification.for_event(event)
    rendered = rendered or Renderer(SETTINGS).render(notification)
    return rendered, build_message(rendered, notification, SETTINGS)


def _assert_one_recipient_and_no_extra_header(mail: OutgoingEmail, rendered: RenderedEmail,
                                              display_name: str) -> EmailMessage:
    parsed = _parse(mail)
    names = [name.lower() for name in parsed.keys()]
    assert set(names) <= ALLOWED_HEADERS and len(names) == len(set(names)), names
    assert "bcc" not in names and "cc" not in names and "x-injected" not in names
    (to,) = parsed["To"].addresses
    assert to.addr_spec == EMAIL == mail.recipient
    assert to.display_name == clean_header_text(display_name)
    subject = str(parsed["Subject"])
    assert "\n" not in subject and "\r" not in subject
    assert subject == clean_header_text(rendered.subject)
    assert mail.data.isascii()
    for part in parsed.iter_parts():
        assert {k.lower() for k in part.keys()} <= {"content-type", "content-transfer-encoding", "mime-version"}
    return parsed


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_display_name_stays_in_the_to_header(text: str) -> None:
    event = f.shipped_event(customer=f.make_customer(display_name=text, email=EMAIL))
    rendered, mail = _build(event)
    _assert_one_recipient_and_no_extra_header(mail, rendered, text)


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_order_id_cannot_break_out_of_the_subject(text: str) -> None:
    event = f.shipped_event(order_id=text, customer=f.make_customer(email=EMAIL))
    rendered, mail = _build(event)
    parsed = _assert_one_recipient_and_no_extra_header(mail, rendered, "Ada Lovelace")
    assert str(parsed["Subject"]).startswith("Your order ")


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_subject_line_is_one_literal_line(text: str) -> None:
    event = f.placed_event(customer=f.make_customer(email=EMAIL))
    rendered = RenderedEmail(subject=f"Your order 1234: {text}", html="<p>x</p>", text="x\n", locale="en")
    rendered, mail = _build(event, rendered)
    _assert_one_recipient_and_no_extra_header(mail, rendered, "Ada Lovelace")


PRODUCT_EVENTS: dict[str, Callable[[str], OrderEvent]] = {
    "order_placed": lambda name: f.placed_event(items=(f.line_item(name=name),)),
    "out_of_stock": lambda name: f.out_of_stock_event(items=(f.out_of_stock_item(name=name),)),
    "price_error": lambda name: f.price_error_event(item=f.parcel_item(name=name)),
    "shipped": lambda name: f.shipped_event(items=(f.parcel_item(name=name),)),
    "delivered": lambda name: f.delivered_event(items=(f.parcel_item(name=name),)),
}


@pytest.mark.parametrize("template", PRODUCT_EVENTS)
@pytest.mark.parametrize("key", ["html", "jinja arithmetic", "jinja class", "jinja statement", "rtl", "emoji",
                                 "crlf bcc", "encoded newline q"])
def test_a_hostile_product_name_is_literal_text_in_both_parts(template: str, key: str) -> None:
    name = HOSTILE[key]
    rendered, mail = _build(PRODUCT_EVENTS[template](name))
    parsed = _assert_one_recipient_and_no_extra_header(mail, rendered, "Ada Lovelace")
    plain_part, html_part = parsed.iter_parts()
    plain = str(plain_part.get_content()).replace("\r\n", "\n")
    markup = str(html_part.get_content())
    shown = _displayed(markup)  # what a mail client displays
    if "\r" in name or "\n" in name:  # body text, not a header: the line break may stay
        assert "Bcc: evil@example.com" in plain and "Bcc: evil@example.com" in shown
    else:
        assert name in plain and name in shown
    assert "<script>" not in markup and "<b>bold</b>" not in markup
    assert "X49Y" not in plain and "X49Y" not in markup  # {{ 7*7 }} never ran
    assert "<class" not in plain and "&lt;class" not in markup  # {{ ''.__class__ }} never ran
    assert "looplooploop" not in plain and "looplooploop" not in markup


def test_html_part_escapes_markup_and_the_text_part_shows_it_as_written() -> None:
    rendered, _ = _build(f.shipped_event(items=(f.parcel_item(name=HOSTILE["html"]),)))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in _unbroken(rendered.html)
    assert "<script>" not in rendered.html and "<b>" not in rendered.html
    assert "<script>alert(1)</script><b>bold</b>" in rendered.text


def test_right_to_left_and_emoji_names_read_back_exactly() -> None:
    for name in (HOSTILE["rtl"], HOSTILE["emoji"]):
        event = f.shipped_event(customer=f.make_customer(display_name=name, email=EMAIL),
                                items=(f.parcel_item(name=name),))
        rendered, mail = _build(event)
        parsed = _parse(mail)
        assert parsed["To"].addresses[0].display_name == name
        assert name in rendered.text and name in rendered.html


def test_a_locale_that_does_not_exist_gets_the_default_locale() -> None:
    event = f.placed_event(customer=f.make_customer(locale="zz-ZZ", email=EMAIL))
    rendered, mail = _build(event)
    assert rendered.locale == "en"
    assert _parse(mail)["Content-Language"] == "en"


@pytest.mark.integration
def test_hostile_but_valid_events_reach_exactly_the_one_validated_address(
    settings: Settings, smtp_server: SmtpCapture
) -> None:
    """What validation lets through (no control characters) still never adds a recipient or a header."""
    customer = f.make_customer(email=EMAIL, display_name="=?UTF-8?Q?=0A?=Bcc: x@y.z مرحبا 😀")
    names = [HOSTILE[k] for k in ("html", "jinja arithmetic", "jinja class", "encoded newline q", "rtl", "emoji")]
    events = [
        f.placed_event(order_id="=?UTF-8?Q?=0A?=Bcc:x@y.z", customer=customer,
                       items=tuple(f.line_item(sku=f"S{i}", name=n) for i, n in enumerate(names))),
        f.shipped_event(order_id="INJ-2", customer=customer,
                        items=tuple(f.parcel_item(sku=f"S{i}", name=n) for i, n in enumerate(names))),
    ]
    with OrderEventProducer(settings) as producer:
        for event in events:
            producer.send_and_wait(event)
    with ConsumerRunner(settings) as runner:
        runner.wait_handled(len(events))
        messages = smtp_server.wait_for(len(events))
        runner.wait_idle()
    assert len(messages) == len(events)
    for captured in messages:
        assert captured.rcpt_tos == (EMAIL,)  # the SMTP envelope: the one validated address, nothing else
        parsed = captured.message
        names_seen = {name.lower() for name in parsed.keys()}
        assert names_seen <= ALLOWED_HEADERS and "bcc" not in names_seen
        (to,) = parsed["To"].addresses
        assert to.addr_spec == EMAIL
        assert "\n" not in to.display_name and "\n" not in captured.subject
        plain, markup = captured.body("plain"), captured.body("html")
        assert "X{{ 7*7 }}Y" in plain and "X49Y" not in plain + markup
        assert "<script>" not in markup and "&lt;script&gt;" in markup
        assert "مرحبا بالعالم" in plain and "😀" in plain


CONTROLS = {"bare cr": "\r", "nul": "\x00", "escape": "\x1b", "vertical tab": "\x0b", "form feed": "\x0c",
            "del": "\x7f", "nel": "\x85", "csi": "\x9b", "line separator": "\u2028", "paragraph separator": "\u2029"}
_ANY_CONTROL = ("\r", "\x00", "\x1b", "\x0b", "\x0c", "\x7f", "\x85", "\x9b", "\u2028", "\u2029")


def _no_bare_cr(data: bytes) -> bool:
    return data.count(b"\r") == data.count(b"\r\n")


@pytest.mark.parametrize("control", CONTROLS.values(), ids=CONTROLS.keys())
@pytest.mark.parametrize("template", PRODUCT_EVENTS)
def test_control_characters_in_an_item_name_reach_neither_body_raw(template: str, control: str) -> None:
    """Validation lets line breaks into item names; in the e-mail they are line breaks, other controls spaces."""
    rendered, mail = _build(PRODUCT_EVENTS[template](f"Blue{control}mug"))
    assert _no_bare_cr(mail.data)  # SMTP forbids a bare CR; quoted-printable passes one through as it is
    parsed = _parse(mail)
    plain_part, html_part = parsed.iter_parts()
    for written in (rendered.text, rendered.html, str(plain_part.get_content()), str(html_part.get_content())):
        body = written.replace("\r\n", "\n")  # the wire form's line ends
        assert not any(c in body for c in _ANY_CONTROL), [c for c in _ANY_CONTROL if c in body]
        assert "Blue" in body and "mug" in body


@pytest.mark.parametrize("control", CONTROLS.values(), ids=CONTROLS.keys())
def test_control_characters_in_text_given_to_the_builder_never_reach_the_wire_raw(control: str) -> None:
    """Whatever a renderer hands over: CRLF line ends only in the bodies, a clean one-line subject."""
    event = f.placed_event(customer=f.make_customer(email=EMAIL))
    rendered = RenderedEmail(subject=f"Your order 1234: Blue{control}mug", html=f"<p>Blue{control}mug</p>",
                             text=f"Blue{control}mug\n", locale="en")
    _, mail = _build(event, rendered)
    assert _no_bare_cr(mail.data)
    parsed = _parse(mail)
    subject = str(parsed["Subject"])
    assert subject == "Your order 1234: Blue mug"
    plain = str(next(parsed.iter_parts()).get_content())
    assert "Blue" in plain and "mug" in plain and "\r" not in plain.replace("\r\n", "")
