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

import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.parser import BytesHeaderParser
from email.utils import format_datetime, getaddresses

from consumers.deliver.header_lines import MAX_LINE_OCTETS, mailbox, unstructured
from consumers.deliver.rendering import RenderedEmail
from consumers.deliver.verp import envelope_sender
from consumers.exceptions import RenderError
from consumers.notification import Notification, Template
from ordernotify.config import Settings

# C0 and C1 controls, DEL and the Unicode line/paragraph separators: none may reach a header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# The opener of an RFC 2047 encoded word. Python's header parser decodes "=?UTF-8?Q?=0A?=" even inside
# quoted strings and (before 3.11.10, CVE-2024-6923) writes the decoded line break out as it is: a
# header injection through text that has no control character at all. A WORD JOINER (invisible)
# between "=" and "?" keeps the text as the customer sees it but makes it no encoded word.
_ENCODED_WORD_OPENER = "=?"
_DEFUSED_OPENER = "=\u2060?"
CRLF = "\r\n"
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_HEADERS = frozenset({"message-id", "date", "from", "to", "subject", "in-reply-to", "references",
                      "auto-submitted", "mime-version", "content-type", "content-language"})


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """What the SMTP sender needs: envelope sender and recipient, and the message bytes (CRLF line ends).

    ``sender`` is the MAIL FROM: the e-mail's own signed bounce address when ``--bounce-domain`` is set
    (:mod:`consumers.deliver.verp`), else ``--sender-address``; the From: header is always the shop's address. No
    Return-Path is written: the receiving server adds it from the MAIL FROM."""

    message_id: str
    sender: str
    recipient: str
    data: bytes


def build_message(
    rendered: RenderedEmail, notification: Notification, settings: Settings, now: datetime | None = None
) -> OutgoingEmail:
    """Raise :class:`RenderError` if an address cannot be written into a header as it is.

    The bytes are assembled here rather than by ``EmailMessage``, which costs ~2.5 ms an e-mail (the
    largest stage of the pipeline, see bench/): headers written by ``header_lines`` (lines of at most 78
    characters, encoded words of at most 75, never raw non-ASCII, no control characters), addresses validated
    by ``_address``, bodies quoted-printable by ``binascii.b2a_qp`` (C), CRLF line ends; then read back by
    ``_check_headers``.
    """
    domain = settings.sender_address.rpartition("@")[2]
    root_id = order_root_id(notification.order_id, domain)
    if notification.template is Template.ORDER_PLACED:
        message_id = root_id
    else:
        message_id = f"<{notification.notification_id}@{domain}>"
    recipient = notification.customer.email
    sender = _address(settings.shop_name, settings.sender_address, "sender_address")
    to = _address(notification.customer.display_name, recipient, "customer.email")
    subject = clean_header_text(rendered.subject)
    # "=_" never occurs in quoted-printable bodies (QP writes "=" as "=3D"), so the boundary can be
    # derived from the Message-ID: the same e-mail, the same bytes.
    boundary = "=_" + hashlib.sha256(message_id.encode()).hexdigest()[:24]
    head = [
        _header("Message-ID", message_id),
        _header("Date", format_datetime(now or datetime.now(UTC))),
        mailbox("From", sender.display_name, sender.addr_spec),
        mailbox("To", to.display_name, to.addr_spec),
        unstructured("Subject", subject),
    ]
    if message_id != root_id:
        head += [_header("In-Reply-To", root_id), _header("References", root_id)]
    head += [
        b"Auto-Submitted: auto-generated\r\n",  # RFC 3834: no vacation auto-replies to a no-reply sender
        b"MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'.encode("ascii"),
        unstructured("Content-Language", clean_header_text(rendered.locale)),
        b"\r\n",
    ]
    parts = [
        f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode("ascii") + _quoted_printable(body) + b"\r\n"
        for body, subtype in ((rendered.text, "plain"), (rendered.html, "html"))
    ]
    data = b"".join(head) + b"".join(parts) + f"--{boundary}--\r\n".encode("ascii")
    _check_headers(data, to, subject)
    mail_from = envelope_sender(notification.notification_id, recipient, settings)
    return OutgoingEmail(message_id=message_id, sender=mail_from, recipient=recipient, data=data)


def _header(name: str, value: str) -> bytes:
    """One header line of our own ASCII (Message-ID, Date, References): short, never folded."""
    return f"{name}: {value}\r\n".encode("ascii")


def _quoted_printable(text: str) -> bytes:
    """CRLF line ends only: quoted-printable would pass a bare CR through to SMTP, which forbids it."""
    crlf = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", CRLF).encode("utf-8")
    return binascii.b2a_qp(crlf, quotetabs=False, istext=True, header=False)


def order_root_id(order_id: str, domain: str) -> str:
    """The Message-ID every e-mail of ``order_id`` refers to; the order-placed e-mail carries it."""
    return f"<order-{hashlib.sha256(order_id.encode()).hexdigest()[:24]}@{domain}>"


def clean_header_text(text: str) -> str:
    """One line of literal text: control characters become spaces, runs of spaces one, no encoded words."""
    return " ".join(_CONTROL.sub(" ", text).split()).replace(_ENCODED_WORD_OPENER, _DEFUSED_OPENER)


def _check_headers(data: bytes, to: Address, subject: str) -> None:
    """Read the written headers back as a mail client would; refuse the e-mail if they say anything else.

    The last line of defence against header injection and broken folding, whatever the email package's
    version does: no line longer than RFC 5322 allows; exactly the headers we set, once each; one To with
    exactly the validated address; the subject as one line. The compat32 parser does this in ~60 µs
    (policy.default: ~670 µs) and decodes encoded words explicitly, so an encoded line break would show up as
    a different subject or name; it leaves folded lines folded, so they are unfolded here (RFC 5322 2.2.3).
    """
    head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    longest = max(len(line) for line in head.split(b"\r\n"))
    if longest > MAX_LINE_OCTETS:
        raise RenderError(f"a written header line is {longest} octets long; at most {MAX_LINE_OCTETS}")
    try:
        parsed = BytesHeaderParser(policy=policy.compat32).parsebytes(head)
        names = sorted(name.lower() for name in parsed.keys())
        addresses = [(str(make_header(decode_header(name))), addr) for name, addr in
                     getaddresses([_unfold(value) for value in parsed.get_all("To", [])])]
        written_subject = str(make_header(decode_header(_unfold(parsed.get("Subject", "")))))
    except (HeaderParseError, ValueError, IndexError, LookupError, UnicodeError) as exc:
        raise RenderError(f"the written headers do not parse back: {type(exc).__name__}") from exc
    if names != sorted(set(names)) or not set(names) <= _HEADERS:
        raise RenderError(f"the written headers are not the ones set: {names}")
    if addresses != [(to.display_name, to.addr_spec)]:
        raise RenderError("the To header does not read back as the one validated address")
    if written_subject != subject:
        raise RenderError("the Subject header does not read back as the rendered subject")


def _unfold(value: str) -> str:
    return _FOLD.sub("", value)


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
