"""Built messages parsed back as a mail client would: headers, parts, threading, and no header injection."""

from __future__ import annotations

import dataclasses
import email
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, MIMEPart

import pytest

from consumers.deliver.message import OutgoingEmail, build_message, clean_header_text, order_root_id
from consumers.deliver.rendering import RenderedEmail, Renderer
from consumers.deliver.verp import VerpToken, address_digest, envelope_sender, read_token
from consumers.exceptions import RenderError
from consumers.notification import Notification, Template
from ordernotify.config import Secret, Settings
from schemas.events import OrderEvent
from tests import factories as f

SETTINGS = Settings(shop_name="Bäckerei Müller", sender_address="orders@shop.example")
NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
ROOT_1234 = f"<order-{hashlib.sha256(b'1234').hexdigest()[:24]}@shop.example>"
EXPECTED_HEADERS = {"message-id", "date", "from", "to", "subject", "mime-version", "content-type",
                    "content-language", "auto-submitted"}
INJECTION = "x\r\nBcc: victim@evil.example\r\nX-Injected: yes\n\rCc: other@evil.example"


def _rendered(subject: str = "Ihre Bestellung 1234: versandt – Grüße", text: str = "Hallo Zoë,\n\nTschüss\n",
              html: str = "<p>Hallo Zoë</p>") -> RenderedEmail:
    return RenderedEmail(subject=subject, html=html, text=text, locale="de-DE")


def _build(event: OrderEvent, rendered: RenderedEmail | None = None, now: datetime = NOW) -> OutgoingEmail:
    notification = Notification.for_event(event)
    return build_message(rendered or _rendered(), notification, SETTINGS, now=now)


def _parse(mail: OutgoingEmail) -> EmailMessage:
    parsed = email.message_from_bytes(mail.data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _content(part: MIMEPart) -> str:
    """The text of a part as written; the wire form has CRLF line ends."""
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def test_headers_round_trip_with_non_ascii_name_and_subject() -> None:
    customer = f.make_customer(display_name="Zoë Ünal", email="zoe@example.org")
    mail = _build(f.shipped_event(customer=customer))
    parsed = _parse(mail)
    assert parsed["Subject"] == "Ihre Bestellung 1234: versandt – Grüße"
    (to,) = parsed["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Zoë Ünal", "zoe@example.org")
    (sender,) = parsed["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Bäckerei Müller", "orders@shop.example")
    assert parsed["Date"].datetime == NOW
    assert parsed["Content-Language"] == "de-DE"
    assert (mail.sender, mail.recipient) == ("orders@shop.example", "zoe@example.org")
    assert mail.data.isascii()  # everything non-ASCII is encoded, for any SMTP server


def test_multipart_alternative_text_first_then_html() -> None:
    parsed = _parse(_build(f.placed_event()))
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert _content(parts[0]) == "Hallo Zoë,\n\nTschüss\n"
    assert _content(parts[1]).strip() == "<p>Hallo Zoë</p>"
    assert all(p.get_content_charset() == "utf-8" for p in parts)


def test_lines_end_in_crlf_for_smtp() -> None:
    data = _build(f.placed_event()).data
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")


def test_message_id_is_deterministic_per_notification() -> None:
    event = f.shipped_event()
    first = _build(event, now=NOW)
    again = _build(event, now=datetime(2031, 1, 1, tzinfo=UTC))
    other = _build(f.shipped_event())
    assert first.message_id == again.message_id == _parse(first)["Message-ID"]
    assert first.message_id != other.message_id
    expected = f"<{Notification.for_event(event).notification_id}@shop.example>"
    assert first.message_id == expected


@pytest.mark.parametrize("make", [f.out_of_stock_event, f.price_error_event, f.shipped_event, f.delivered_event])
def test_later_emails_of_an_order_reply_to_its_root(make: Callable[[], OrderEvent]) -> None:
    event = make()
    parsed = _parse(_build(event))
    assert parsed["In-Reply-To"] == ROOT_1234
    assert parsed["References"] == ROOT_1234
    assert parsed["Message-ID"] != ROOT_1234


def test_order_placed_email_is_the_root() -> None:
    parsed = _parse(_build(f.placed_event()))
    assert parsed["Message-ID"] == ROOT_1234 == order_root_id("1234", "shop.example")
    assert "In-Reply-To" not in parsed and "References" not in parsed


def test_root_id_differs_per_order() -> None:
    assert order_root_id("1234", "shop.example") != order_root_id("1235", "shop.example")


@pytest.mark.parametrize("where", ["display_name", "subject", "product_name"])
def test_line_breaks_never_inject_a_header_or_recipient(where: str) -> None:
    customer = f.make_customer(display_name=INJECTION if where == "display_name" else "Ada")
    item = f.parcel_item(name=INJECTION if where == "product_name" else "Blue mug")
    notification = Notification.for_event(f.shipped_event(customer=customer, items=(item,)))
    if where == "subject":
        rendered = _rendered(subject=INJECTION)
    else:
        rendered = Renderer(SETTINGS).render(notification)
    mail = build_message(rendered, notification, SETTINGS, now=NOW)
    parsed = _parse(mail)
    assert {k.lower() for k in parsed.keys()} == EXPECTED_HEADERS | {"in-reply-to", "references"}
    (to,) = parsed["To"].addresses
    assert to.addr_spec == customer.email == mail.recipient
    assert "\n" not in parsed["Subject"] and "\n" not in to.display_name
    for part in parsed.iter_parts():
        assert {k.lower() for k in part.keys()} <= {"content-type", "content-transfer-encoding", "mime-version"}


def test_control_characters_are_cleaned_from_header_text() -> None:
    assert clean_header_text(" a\r\nb\x00c\x85d\u2028e\tf  ") == "a b c d e f"


@pytest.mark.parametrize(
    "address",
    ["ada@example.org\r\nBcc: victim@evil.example", "a@b.org(<c@d.com>", "Ada <ada@example.org>",
     "one@example.org, two@example.org", ""],
)
def test_recipient_that_is_not_one_plain_address_is_refused(address: str) -> None:
    event = f.placed_event(customer=f.make_customer(email=address))
    with pytest.raises(RenderError):
        _build(event)


def test_with_the_real_renderer_the_whole_message_reads_back() -> None:
    customer = f.make_customer(display_name="Zoë Ünal", locale="de-DE", time_zone="Europe/Berlin")
    notification = Notification(Template.SHIPPED, (f.shipped_event(customer=customer),
                                                   f.shipped_event(customer=customer, shipment_id="SHIP-2")))
    rendered = Renderer(SETTINGS).render(notification)
    parsed = _parse(build_message(rendered, notification, SETTINGS))
    plain, html = (_content(p) for p in parsed.iter_parts())
    assert parsed["Subject"] == rendered.subject and "1234" in parsed["Subject"]
    assert "https://tracking.example/TRKSHIP2" in plain and "https://tracking.example/TRKSHIP2" in html
    assert html.rstrip("\n") == rendered.html.rstrip("\n") and plain == rendered.text


@pytest.mark.parametrize("locale", ["en", "de-DE", "pl-PL"])
def test_every_email_of_an_order_joins_one_thread(locale: str) -> None:
    customer = f.make_customer(locale=locale)
    renderer = Renderer(SETTINGS)
    events = [f.placed_event(customer=customer), f.out_of_stock_event(customer=customer),
              f.price_error_event(customer=customer), f.shipped_event(customer=customer),
              f.shipped_event(customer=customer, shipment_id="SHIP-2"), f.delivered_event(customer=customer)]
    parsed = []
    for event in events:
        notification = Notification.for_event(event)
        parsed.append(_parse(build_message(renderer.render(notification), notification, SETTINGS, now=NOW)))
    root, *later = parsed
    assert root["Message-ID"] == ROOT_1234 and "References" not in root
    ids = [m["Message-ID"] for m in parsed]
    assert len(set(ids)) == len(ids)  # two shipped e-mails of one order still differ
    for message in later:
        assert message["In-Reply-To"] == message["References"] == ROOT_1234
    prefixes = {m["Subject"].split(":")[0] for m in parsed}
    assert len(prefixes) == 1 and "1234" in prefixes.pop()  # "Your order 1234" / "Ihre Bestellung 1234"...


def test_non_ascii_subject_in_polish_is_encoded_and_reads_back() -> None:
    customer = f.make_customer(locale="pl-PL", display_name="Zofia Wójcik-Łęcka")
    notification = Notification.for_event(f.placed_event(customer=customer))
    mail = build_message(Renderer(SETTINGS).render(notification), notification, SETTINGS, now=NOW)
    parsed = _parse(mail)
    assert mail.data.isascii()
    assert parsed["Subject"] == "Twoje zamówienie 1234: potwierdzone"
    assert parsed["To"].addresses[0].display_name == "Zofia Wójcik-Łęcka"
    assert parsed["Content-Language"] == "pl-PL"


def test_with_a_bounce_domain_the_envelope_sender_is_the_signed_bounce_address_and_from_stays() -> None:
    verp = dataclasses.replace(SETTINGS, bounce_domain="bounces.shop.example",
                               verp_secret=Secret("a secret of at least 16 characters"))
    event = f.shipped_event(customer=f.make_customer(email="zoe@example.org"))
    notification = Notification.for_event(event)
    mail = build_message(_rendered(), notification, verp, now=NOW)
    assert mail.sender == envelope_sender(notification.notification_id, "zoe@example.org", verp)
    assert read_token(mail.sender, verp) == VerpToken(notification.notification_id,
                                                      address_digest("zoe@example.org")[:10])
    (sender,) = _parse(mail)["From"].addresses
    assert sender.addr_spec == "orders@shop.example" and "Return-Path" not in _parse(mail)
    assert mail.data == _build(event).data  # the same bytes and Message-ID: only the envelope differs
    assert _build(event).sender == "orders@shop.example"
