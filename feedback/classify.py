"""A message that came back to a bounce address -> what it says: hard or soft bounce, complaint, auto-reply, unknown.

Reads, in this order:

1. an RFC 5965 feedback report (ARF, ``multipart/report; report-type=feedback-report``): a complaint
   (``Feedback-Type: abuse`` or ``fraud``); the recipient is ``Original-Rcpt-To``, else the ``To`` of the returned
   message, else None (AOL and others redact it: the VERP token still names the e-mail);
2. an RFC 3464 delivery status notification (a ``message/delivery-status`` part, wherever it is nested): of several
   recipients, the **first whose Action is failed**, else the first delayed one; a recipient block without
   ``Final-Recipient`` does not count;
3. a bounce without a report part (Exim, older Gmail): ``X-Failed-Recipients`` names the recipient, the first
   enhanced status code (RFC 3463) of the explanation, above the returned copy, says why;
4. an auto-reply (RFC 3834 ``Auto-Submitted: auto-replied``, or the vacation markers of mailers that do not set it:
   ``X-Autoreply``, ``X-Autorespond``, ``Precedence: auto_reply``, an "Out of Office" or "Automatic reply" subject).

Hard or soft: ``Action: delayed`` and 4.x.x are soft; of the 5.x.x, a full mailbox (x.2.2) and a refusal for
policy or security (x.7.x, e.g. blocked as spam, our server not allowed) are soft too, since they are not about the
address existing (providers count them as transient); every other failure is hard.

Anything else is UNKNOWN with ``detail`` saying why, never an exception: the input is written by anyone who can send
mail. At most ``MAX_PARSED_BYTES`` are parsed (the report part comes before the returned message, RFC 6522), at most
``MAX_PARTS`` MIME parts looked at. The standard library's ``compat32`` policy: it reads headers as plain strings
(no structured header objects whose parsing can raise on hostile input, as ``policy.default``'s did in several
CVEs) and is about ten times faster (see consumers/deliver/message.py); the fields needed here are plain text.
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses

log = logging.getLogger(__name__)

MAX_PARSED_BYTES = 1024 * 1024
MAX_PARTS = 100
MAX_DIAGNOSTIC_CHARS = 200
MAX_TEXT_CHARS = 64 * 1024
_ENHANCED_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BASIC_REPLY = re.compile(r"\b([45])[0-5]\d[ -]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
# Where mailers start the copy of the returned message in a text-only bounce: status codes below are not the reason.
_RETURNED_COPY = re.compile(
    r"^-+ ?(original message|this is a copy of the message|below this line is a copy|undelivered message)",
    re.IGNORECASE | re.MULTILINE)
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[- ]?(reply|response)|auto:|autoreply|vacation|"
    r"abwesenheitsnotiz|r[ée]ponse automatique)", re.IGNORECASE)
_COMPLAINT_TYPES = frozenset({"abuse", "fraud"})


class FeedbackKind(enum.StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    AUTO_REPLY = "auto_reply"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Feedback:
    """What one bounce, complaint or auto-reply says about one recipient."""

    kind: FeedbackKind
    recipient: str | None
    status: str | None  # "5.1.1"
    diagnostic: str | None  # one line, truncated
    source: str  # "dsn", "arf", "auto_reply", "ses", "postmark", "mailgun", "unparsed"
    detail: str = ""  # why UNKNOWN


def classify_message(raw: bytes) -> Feedback:
    """What ``raw`` (a whole message as received) says; UNKNOWN with ``detail`` if unreadable, never raises."""
    try:
        return _classify(raw)
    except Exception as exc:  # noqa: BLE001 - hostile input must never stop the receiver
        log.warning("a returned message could not be parsed (%s); kept as unknown", type(exc).__name__)
        return _unknown(f"cannot be parsed: {type(exc).__name__}")


def _unknown(detail: str, recipient: str | None = None, source: str = "unparsed") -> Feedback:
    return Feedback(FeedbackKind.UNKNOWN, recipient, None, None, source, detail)


def _classify(raw: bytes) -> Feedback:
    if not raw.strip():
        return _unknown("empty message")
    message = BytesParser(policy=policy.compat32).parsebytes(raw[:MAX_PARSED_BYTES])
    parts = _parts(message)
    for part in parts:
        if part.get_content_type() == "message/feedback-report":
            return _from_feedback_report(part, parts)
    for part in parts:
        if part.get_content_type() == "message/delivery-status":
            return _from_delivery_status(part)
    failed = _addresses(message.get_all("X-Failed-Recipients", []))
    if failed:
        return _from_text_bounce(message, parts, failed[0])
    if _is_auto_reply(message):
        return Feedback(FeedbackKind.AUTO_REPLY, _first_address(message.get_all("From", [])), None,
                        _one_line(str(message.get("Subject", ""))) or None, "auto_reply")
    if not message.keys():
        return _unknown("no mail headers: not a message")
    return _unknown("neither a delivery status notification, a feedback report nor an auto-reply")


def _parts(message: Message) -> list[Message]:
    """Every MIME part, depth first, at most ``MAX_PARTS`` (a bomb of nested parts is cut, not followed)."""
    parts: list[Message] = []
    stack = [message]
    while stack and len(parts) < MAX_PARTS:
        part = stack.pop()
        parts.append(part)
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
    return parts


def _field_blocks(part: Message) -> list[Message]:
    """The header blocks of a report part: the email package parses them into messages; a part it left as text
    (a wrong transfer encoding, say) is split on blank lines and read here."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = part.get_payload(decode=True)
    if not isinstance(text, bytes):
        return []
    body = text[:MAX_TEXT_CHARS].decode("utf-8", "replace").replace("\r\n", "\n")
    parser = HeaderParser(policy=policy.compat32)
    return [parser.parsestr(block + "\n") for block in re.split(r"\n\s*\n", body) if block.strip()]


def _from_feedback_report(part: Message, parts: list[Message]) -> Feedback:
    blocks = _field_blocks(part)
    fields = blocks[0] if blocks else Message()
    feedback_type = _one_line(str(fields.get("Feedback-Type", ""))).lower()
    recipient = _first_address(fields.get_all("Original-Rcpt-To", []))
    if recipient is None:
        returned = next((p for p in parts if p.get_content_type() in ("message/rfc822", "text/rfc822-headers")), None)
        inner = _field_blocks(returned) if returned is not None else []
        recipient = _first_address(inner[0].get_all("To", [])) if inner else None
    agent = _one_line(str(fields.get("User-Agent", "")))
    diagnostic = f"{feedback_type or 'no type'} report" + (f" ({agent})" if agent else "")
    if feedback_type not in _COMPLAINT_TYPES:
        return Feedback(FeedbackKind.UNKNOWN, recipient, None, diagnostic, "arf",
                        f"feedback report of type {feedback_type or '(none)'!r}, not a complaint")
    return Feedback(FeedbackKind.COMPLAINT, recipient, None, diagnostic, "arf")


def _from_delivery_status(part: Message) -> Feedback:
    recipients = [b for b in _field_blocks(part)[1:] if b.get("Final-Recipient") and b.get("Action")]
    if not recipients:
        return _unknown("a delivery status without a recipient block (Final-Recipient and Action)", source="dsn")
    chosen = next((b for b in recipients if _action(b) == "failed"), None) or \
        next((b for b in recipients if _action(b) == "delayed"), None)
    if chosen is None:
        actions = sorted({_action(b) for b in recipients})
        return _unknown(f"a delivery status with no failed or delayed recipient (action {', '.join(actions)})",
                        _final_recipient(recipients[0]), source="dsn")
    diagnostic = _one_line(str(chosen.get("Diagnostic-Code", ""))).partition(";")[2].strip() or None
    status = _status(str(chosen.get("Status", ""))) or _status(diagnostic or "")
    if _action(chosen) == "delayed":
        kind = FeedbackKind.SOFT_BOUNCE
    else:
        kind = _kind_of_failure(status)
    return Feedback(kind, _final_recipient(chosen), status, diagnostic, "dsn")


def _from_text_bounce(message: Message, parts: list[Message], recipient: str) -> Feedback:
    text = next((_text(p) for p in parts if p.get_content_type() == "text/plain"), "")
    explanation = _RETURNED_COPY.split(text, maxsplit=1)[0]
    status = _status(explanation)
    diagnostic = next((_one_line(line) for line in explanation.splitlines() if status and status in line), None)
    if status is None:
        reply = _BASIC_REPLY.search(explanation)
        if reply is None:
            return _unknown("a bounce without a status code", recipient, source="dsn")
        status = f"{reply.group(1)}.0.0"
        diagnostic = _one_line(explanation[reply.start():].splitlines()[0])
    return Feedback(_kind_of_failure(status), recipient, status, diagnostic, "dsn")


def _kind_of_failure(status: str | None) -> FeedbackKind:
    if status is None:
        return FeedbackKind.HARD_BOUNCE  # Action: failed is permanent by definition (RFC 3464 2.3.3)
    klass, subject, _ = status.split(".")
    if klass == "4" or subject == "7" or status[2:] == "2.2":
        return FeedbackKind.SOFT_BOUNCE
    return FeedbackKind.HARD_BOUNCE


def _is_auto_reply(message: Message) -> bool:
    submitted = _one_line(str(message.get("Auto-Submitted", ""))).lower()
    if submitted.startswith("auto-replied"):
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond") or \
            _one_line(str(message.get("Precedence", ""))).lower() == "auto_reply":
        return True
    return bool(_AUTO_REPLY_SUBJECT.match(_one_line(str(message.get("Subject", "")))))


def _action(block: Message) -> str:
    return _one_line(str(block.get("Action", ""))).lower().split(" ")[0]


def _final_recipient(block: Message) -> str | None:
    """``Final-Recipient: rfc822; addr`` -> addr (an address type other than rfc822 is read the same way)."""
    value = _one_line(str(block.get("Final-Recipient", "")))
    return _plain_address(value.partition(";")[2] if ";" in value else value)


def _status(text: str) -> str | None:
    found = _ENHANCED_STATUS.search(text)
    return ".".join(found.groups()) if found else None


def _addresses(values: list[str]) -> list[str]:
    found = (_plain_address(addr) for _, addr in getaddresses([_one_line(str(v)) for v in values]))
    return [addr for addr in found if addr]


def _first_address(values: list[str]) -> str | None:
    addresses = _addresses(values)
    return addresses[0] if addresses else None


def _plain_address(value: str) -> str | None:
    """An address as a bounce names it, without brackets or spaces; None unless it looks like one."""
    address = value.strip().strip("<>").strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or len(address) > 254 or any(c.isspace() for c in address):
        return None
    return address


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload[:MAX_TEXT_CHARS].decode(charset, "replace")
    except LookupError:  # an unknown charset name: the status codes are ASCII anyway
        return payload[:MAX_TEXT_CHARS].decode("ascii", "replace")


def _one_line(value: str) -> str:
    """Unfolded, control characters gone, at most ``MAX_DIAGNOSTIC_CHARS``."""
    return " ".join(_CONTROL.sub(" ", value).split())[:MAX_DIAGNOSTIC_CHARS]
