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
    return OutgoingEmail(message_id=message_id, sender=settings.sender_address, recipient=recipient,
                         data=msg.as_bytes())


def order_root_id(order_id: str, domain: str) -> str:
    """The Message-ID every e-mail of ``order_id`` refers to; the order-placed e-mail carries it."""
    return f"<order-{hashlib.sha256(order_id.encode()).hexdigest()[:24]}@{domain}>"


def clean_header_text(text: str) -> str:
    """One line of text: control characters become spaces, runs of spaces one."""
    return " ".join(_CONTROL.sub(" ", text).split())


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
