"""A rendered e-mail -> the exact bytes handed to SMTP, with headers that thread and cannot be injected.

Message-IDs are deterministic: a resend after a crash carries the same Message-ID (so
receivers can drop the duplicate), and every e-mail of an order points at the same
root id, the order-placed e-mail's, so mail clients show one conversation per order.

The order-placed e-mail *is* the thread root (its Message-ID is the order's root id), so
the root exists in the customer's mailbox and clients that thread only on messages they
have (Gmail) attach the later e-mails to it. A second order-placed e-mail for the same
order would reuse that id, but the notification policy never sends one (it suppresses
it as ``already_confirmed``); every other e-mail's Message-ID comes from its
notification id and carries ``In-Reply-To`` and ``References`` to the root. Subjects
all start with the same "Your order N" in every language, so they read as one thread too.
"""

from __future__ import annotations

import email
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from consumers.exceptions import RenderError
from consumers.notification import Notification, Template
from consumers.rendering import RenderedEmail
from ordernotify.config import Settings

# C0 and C1 controls, DEL and the Unicode line/paragraph separators: none may reach a header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# The opener of an RFC 2047 encoded word. Python's header parser decodes "=?UTF-8?Q?=0A?=" even inside
# quoted strings and (before 3.11.10, CVE-2024-6923) writes the decoded line break out as it is: a
# header injection through text that has no control character at all. A WORD JOINER (invisible)
# between "=" and "?" keeps the text as the customer sees it but makes it no encoded word.
_ENCODED_WORD_OPENER = "=?"
_DEFUSED_OPENER = "=\u2060?"
_HEADERS = frozenset({"message-id", "date", "from", "to", "subject", "in-reply-to", "references",
                      "auto-submitted", "mime-version", "content-type", "content-language"})


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """What the SMTP sender needs: envelope sender and recipient, and the message bytes (CRLF line ends)."""

    message_id: str
    sender: str
    recipient: str
    data: bytes


def build_message(
    rendered: RenderedEmail, notification: Notification, settings: Settings, now: datetime | None = None
) -> OutgoingEmail:
    """Raise :class:`RenderError` if an address cannot be written into a header as it is."""
    domain = settings.sender_address.rpartition("@")[2]
    root_id = order_root_id(notification.order_id, domain)
    if notification.template is Template.ORDER_PLACED:
        message_id = root_id
    else:
        message_id = f"<{notification.notification_id}@{domain}>"
    recipient = notification.customer.email
    sender = _address(settings.shop_name, settings.sender_address, "sender_address")
    to = _address(notification.customer.display_name, recipient, "customer.email")

    msg = EmailMessage(policy=policy.SMTP)
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = clean_header_text(rendered.subject)
    if message_id != root_id:
        msg["In-Reply-To"] = root_id
        msg["References"] = root_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies to a no-reply sender
    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    msg["Content-Language"] = clean_header_text(rendered.locale)  # after: set_content moves Content-* into parts
    data = msg.as_bytes()
    _check_headers(data, to, clean_header_text(rendered.subject))
    return OutgoingEmail(message_id=message_id, sender=settings.sender_address, recipient=recipient, data=data)


def order_root_id(order_id: str, domain: str) -> str:
    """The Message-ID every e-mail of ``order_id`` refers to; the order-placed e-mail carries it."""
    return f"<order-{hashlib.sha256(order_id.encode()).hexdigest()[:24]}@{domain}>"


def clean_header_text(text: str) -> str:
    """One line of literal text: control characters become spaces, runs of spaces one, no encoded words."""
    return " ".join(_CONTROL.sub(" ", text).split()).replace(_ENCODED_WORD_OPENER, _DEFUSED_OPENER)


def _check_headers(data: bytes, to: Address, subject: str) -> None:
    """Read the written headers back as a mail client would; refuse the e-mail if they say anything else.

    The last line of defence against header injection, whatever the email package's version does:
    exactly the headers we set, one To with exactly the validated address, the subject as one line.
    """
    head = data.split(b"\r\n\r\n", 1)[0]
    try:
        parsed = email.message_from_bytes(head + b"\r\n\r\n", policy=policy.default)
        names = sorted(name.lower() for name in parsed.keys())
        addresses = parsed["To"].addresses if parsed["To"] is not None else ()
        written_subject = str(parsed["Subject"])
    except (HeaderParseError, ValueError, IndexError, AttributeError) as exc:
        raise RenderError(f"the written headers do not parse back: {type(exc).__name__}") from exc
    if names != sorted(set(names)) or not set(names) <= _HEADERS:
        raise RenderError(f"the written headers are not the ones set: {names}")
    if [(a.display_name, a.addr_spec) for a in addresses] != [(to.display_name, to.addr_spec)]:
        raise RenderError("the To header does not read back as the one validated address")
    if written_subject != subject:
        raise RenderError("the Subject header does not read back as the rendered subject")


def _address(display_name: str, addr_spec: str, field: str) -> Address:
    if _CONTROL.search(addr_spec) or addr_spec != addr_spec.strip():
        raise RenderError(f"{field}: not a plain e-mail address")
    try:
        address = Address(display_name=clean_header_text(display_name), addr_spec=addr_spec)
    except (HeaderParseError, ValueError, IndexError) as exc:
        raise RenderError(f"{field}: not a plain e-mail address") from exc
    if address.addr_spec != addr_spec:
        raise RenderError(f"{field}: not a plain e-mail address")
    return address
