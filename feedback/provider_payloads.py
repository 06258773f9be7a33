"""What a provider's (already authenticated) webhook payload says, as ``Feedback``: which address, which kind.

Amazon SES (the ``Message`` of an SNS notification): ``Bounce`` with ``bounceType`` Permanent (hard), Transient
(soft) or Undetermined (unknown), one feedback per ``bouncedRecipients`` entry; ``Complaint`` with
``complainedRecipients``. Postmark: ``RecordType`` Bounce by its ``Type`` (table below) and SpamComplaint. Mailgun:
``event`` failed by ``severity`` (permanent: hard, temporary: soft; a permanent failure after the retries ran out,
reason ``old``, is soft: the mailbox was not reached, not refused) and complained. Every other event (deliveries,
opens, clicks...) is ``ignored``: answered 200 so the provider does not retry it, counted as kind ``unknown``.

A ``VerpToken`` comes only from the envelope sender the provider reports (SES ``mail.source``, Mailgun
``envelope.sender``) and only when it is one of our signed bounce addresses; Postmark reports none (it uses its own
Return-Path), so its feedback carries the recipient only, which is what the suppression list keys on anyway.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from consumers.deliver.verp import VerpToken, read_token
from consumers.exceptions import ForgedBounce
from feedback.classify import Feedback, FeedbackKind
from feedback.exceptions import MalformedWebhook
from ordernotify.config import Settings

log = logging.getLogger(__name__)

_STATUS = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")
DIAGNOSTIC_CHARS = 200

_SES_BOUNCE = {"permanent": FeedbackKind.HARD_BOUNCE, "transient": FeedbackKind.SOFT_BOUNCE}
# Postmark's bounce types (https://postmarkapp.com/developer/api/bounce-api#bounce-types) -> our kinds; the rest
# (Unsubscribe, Subscribe, OpenRelayTest, Unknown, VirusNotification, SMTPApiError, ...) are unknown.
_POSTMARK_BOUNCE = {
    "HardBounce": FeedbackKind.HARD_BOUNCE,
    "BadEmailAddress": FeedbackKind.HARD_BOUNCE,
    "SoftBounce": FeedbackKind.SOFT_BOUNCE,
    "Transient": FeedbackKind.SOFT_BOUNCE,
    "DnsError": FeedbackKind.SOFT_BOUNCE,
    "SpamNotification": FeedbackKind.SOFT_BOUNCE,  # blocked or filtered as spam by the receiving server
    "Blocked": FeedbackKind.SOFT_BOUNCE,
    "AutoResponder": FeedbackKind.AUTO_REPLY,
    "AddressChange": FeedbackKind.AUTO_REPLY,
    "ChallengeVerification": FeedbackKind.AUTO_REPLY,
    "SpamComplaint": FeedbackKind.COMPLAINT,
}
_MAILGUN_PERMANENT_REASON = {"old": FeedbackKind.SOFT_BOUNCE, "suppress-complaint": FeedbackKind.COMPLAINT}


@dataclass(frozen=True, slots=True)
class ProviderFeedback:
    feedback: Feedback
    token: VerpToken | None


@dataclass(frozen=True, slots=True)
class ProviderEvents:
    """The feedback a payload carries, or (none) the name of the event type it was, which we do not act on."""

    feedback: tuple[ProviderFeedback, ...] = ()
    ignored: str = ""


def ses_events(notification: Any, settings: Settings) -> ProviderEvents:
    """One SES notification (the parsed ``Message`` of the SNS notification)."""
    body = _object(notification, "the SES notification")
    kind = body.get("notificationType") or body.get("eventType")
    mail = _object(body.get("mail", {}), "mail")
    token = _token(mail.get("source"), settings)
    if kind == "Bounce":
        bounce = _object(body.get("bounce"), "bounce")
        bounce_type = str(bounce.get("bounceType", ""))
        feedback_kind = _SES_BOUNCE.get(bounce_type.lower(), FeedbackKind.UNKNOWN)
        detail = "" if feedback_kind is not FeedbackKind.UNKNOWN else f"SES bounce type {bounce_type[:40]}"
        items = tuple(
            ProviderFeedback(Feedback(
                kind=feedback_kind, recipient=_address(entry.get("emailAddress")),
                status=_status(entry.get("status"), entry.get("diagnosticCode")),
                diagnostic=_one_line(entry.get("diagnosticCode")), source="ses", detail=detail), token)
            for entry in _objects(bounce.get("bouncedRecipients"), "bouncedRecipients"))
        return ProviderEvents(items)
    if kind == "Complaint":
        complaint = _object(body.get("complaint"), "complaint")
        diagnostic = _one_line(complaint.get("complaintFeedbackType"))
        items = tuple(
            ProviderFeedback(Feedback(kind=FeedbackKind.COMPLAINT, recipient=_address(entry.get("emailAddress")),
                                      status=None, diagnostic=diagnostic, source="ses"), token)
            for entry in _objects(complaint.get("complainedRecipients"), "complainedRecipients"))
        return ProviderEvents(items)
    return ProviderEvents(ignored=f"ses {str(kind)[:40]}")


def postmark_events(payload: Any) -> ProviderEvents:
    """One Postmark webhook: a Bounce or a SpamComplaint record (older payloads have no RecordType: a bounce)."""
    body = _object(payload, "the Postmark webhook")
    record_type = body.get("RecordType", "Bounce")
    if record_type not in ("Bounce", "SpamComplaint"):
        return ProviderEvents(ignored=f"postmark {str(record_type)[:40]}")
    bounce_type = "SpamComplaint" if record_type == "SpamComplaint" else str(body.get("Type", ""))
    kind = _POSTMARK_BOUNCE.get(bounce_type, FeedbackKind.UNKNOWN)
    recipient = _address(body.get("Email"))
    if recipient is None:
        raise MalformedWebhook(f"Postmark {record_type} has no Email")
    details = body.get("Details") or body.get("Description")
    detail = "" if kind is not FeedbackKind.UNKNOWN else \
        f"Postmark bounce type {bounce_type[:40]} (TypeCode {str(body.get('TypeCode'))[:10]})"
    feedback = Feedback(kind=kind, recipient=recipient, status=_status(None, details), diagnostic=_one_line(details),
                        source="postmark", detail=detail)
    return ProviderEvents((ProviderFeedback(feedback, None),))


def mailgun_events(event_data: Any, settings: Settings) -> ProviderEvents:
    """One Mailgun ``event-data`` object (its signature already verified)."""
    body = _object(event_data, "event-data")
    event = body.get("event")
    if event not in ("failed", "complained"):
        return ProviderEvents(ignored=f"mailgun {str(event)[:40]}")
    recipient = _address(body.get("recipient"))
    if recipient is None:
        raise MalformedWebhook(f"Mailgun {event} event has no recipient")
    envelope = _object(body.get("envelope", {}), "envelope")
    token = _token(envelope.get("sender"), settings)
    if event == "complained":
        return ProviderEvents((ProviderFeedback(
            Feedback(FeedbackKind.COMPLAINT, recipient, None, None, "mailgun"), token),))
    severity, reason = body.get("severity"), str(body.get("reason", ""))
    if severity == "permanent":
        kind = _MAILGUN_PERMANENT_REASON.get(reason, FeedbackKind.HARD_BOUNCE)
    elif severity == "temporary":
        kind = FeedbackKind.SOFT_BOUNCE
    else:
        kind = FeedbackKind.UNKNOWN
    status = _object(body.get("delivery-status", {}), "delivery-status")
    diagnostic = status.get("message") or status.get("description")
    feedback = Feedback(
        kind=kind, recipient=recipient, status=_status(status.get("enhanced-code"), diagnostic),
        diagnostic=_one_line(diagnostic), source="mailgun",
        detail="" if kind is not FeedbackKind.UNKNOWN else f"Mailgun failure severity {str(severity)[:20]}")
    return ProviderEvents((ProviderFeedback(feedback, token),))


def _token(envelope_sender: Any, settings: Settings) -> VerpToken | None:
    """Our token when the provider reports one of our bounce addresses as the envelope sender, else None."""
    if not isinstance(envelope_sender, str) or not settings.bounce_domain:
        return None
    try:
        return read_token(envelope_sender, settings)
    except ForgedBounce as exc:
        log.debug("envelope sender reported by the provider carries no token of ours: %s", exc)
        return None


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedWebhook(f"{what} is not a JSON object")
    return value


def _objects(value: Any, what: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not value or not all(isinstance(item, Mapping) for item in value):
        raise MalformedWebhook(f"{what} is not a list of objects")
    return value


def _address(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    address = parseaddr(value)[1].strip()
    return address if "@" in address else None


def _one_line(value: Any) -> str | None:
    if not isinstance(value, str | int) or value == "":
        return None
    return " ".join(str(value).split())[:DIAGNOSTIC_CHARS] or None


def _status(given: Any, diagnostic: Any) -> str | None:
    """The enhanced status code (RFC 3463, "5.1.1"): the provider's field, else the first one in the diagnostic."""
    for text in (given, diagnostic):
        if isinstance(text, str) and (match := _STATUS.search(text)):
            return match.group(0)
    return None
