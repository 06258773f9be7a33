"""One bounce, complaint or auto-reply from arrival to the suppression list, whichever road it came by.

For a message (LMTP/SMTP): the envelope recipient's VERP token says which e-mail it answers and that we made
it; the message is classified; the address it names must be the one the token was made for; the order and
customer come from the outbox row (while the state store keeps it); then the suppression list applies its
policy. Provider webhooks join at :meth:`FeedbackIntake.take`. What cannot be classified goes to the
dead-letter topic with its bytes (reason ``feedback_unknown``), so that nothing is dropped unseen.

Nothing here logs an address: notification ids, kinds and status codes say enough to follow a bounce.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from kafka.errors import KafkaError

from consumers.dead_letters import DeadLetters, SourceRecord
from consumers.deliver.verp import VerpToken, address_digest, read_token
from consumers.exceptions import DeadLetterError, ForgedBounce, StateStoreError
from consumers.state.outbox import NotificationOwner
from feedback.classify import Feedback, FeedbackKind, classify_message
from feedback.exceptions import FeedbackNotRecorded
from feedback.suppression_list import SuppressionRecord
from ordernotify.config import Settings
from ordernotify.metrics import Metrics

log = logging.getLogger(__name__)

UNKNOWN_REASON = "feedback_unknown"
#: where a dead-lettered bounce came from: no topic, so ``ordernotify dlq replay`` leaves it alone
DEAD_LETTER_SOURCE = "feedback.lmtp"
NOTIFICATION_HEADER = "feedback.notification_id"


class Result(enum.StrEnum):
    """What became of one piece of feedback."""

    SUPPRESSED = "suppressed"  # the list has a new record (suppressing now or counting towards it)
    NOTED = "noted"  # understood, nothing to suppress (an auto-reply)
    KEPT_UNKNOWN = "kept_unknown"  # not classified: dead-lettered with its bytes
    FORGED = "forged"  # no valid token: ignored
    RECIPIENT_MISMATCH = "recipient_mismatch"  # names another address than the token's: ignored


class Suppressions(Protocol):
    def apply(self, feedback: Feedback, token: VerpToken | None, order_id: str | None, customer_id: str | None,
              now: datetime) -> SuppressionRecord | None: ...


OwnerLookup = Callable[[str], NotificationOwner | None]


@dataclass(frozen=True, slots=True)
class Taken:
    result: Result
    record: SuppressionRecord | None = None


class FeedbackIntake:
    """Blocking (Kafka, the state store): the receiver runs it in a thread, one message at a time."""

    def __init__(self, settings: Settings, suppressions: Suppressions, dead_letters: DeadLetters, metrics: Metrics,
                 owner_of: OwnerLookup | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self._settings = settings
        self._suppressions = suppressions
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._owner_of = owner_of
        self._clock = clock or (lambda: datetime.now(UTC))

    def take_message(self, envelope_recipient: str, raw: bytes) -> Taken:
        """A bounce as the MTA delivered it: ``envelope_recipient`` is our VERP address it came back to."""
        try:
            token = read_token(envelope_recipient, self._settings)
        except ForgedBounce as exc:
            self._metrics.count_feedback_rejected("forged")
            log.warning("ignored a bounce without a valid token (%s); %d bytes, nothing applied", exc, len(raw))
            return Taken(Result.FORGED)
        return self.take(classify_message(raw), token, raw)

    def take(self, feedback: Feedback, token: VerpToken | None, raw: bytes | None = None) -> Taken:
        """Feedback classified already (a webhook's, or a message's): check, look up, apply, count.

        :class:`FeedbackNotRecorded` when the suppression or dead-letter topic did not take it."""
        owner = self._owner(token)
        redacted = feedback.recipient is None or (
            # complaint reports often replace the address by a placeholder of the mailbox provider's
            feedback.kind is FeedbackKind.COMPLAINT and token is not None
            and not _matches(feedback.recipient, token))
        if feedback.kind in (FeedbackKind.HARD_BOUNCE, FeedbackKind.SOFT_BOUNCE, FeedbackKind.COMPLAINT) \
                and redacted and owner is not None and owner.recipient:
            # the token says which e-mail, the outbox to whom it went
            feedback = _with_recipient(feedback, owner.recipient)
        if feedback.kind is FeedbackKind.UNKNOWN:
            return self._keep_unknown(feedback, token, raw)
        if feedback.kind is FeedbackKind.AUTO_REPLY:
            self._metrics.count_feedback(feedback.kind, feedback.source)
            log.info("auto-reply to notification %s: nothing to suppress", _nid(token))
            return Taken(Result.NOTED)
        if feedback.recipient is None:
            return self._keep_unknown(
                _with_detail(feedback, f"{feedback.kind} without a recipient, and no outbox row names it"),
                token, raw)
        if token is not None and not _matches(feedback.recipient, token):
            self._metrics.count_feedback_rejected("recipient_mismatch")
            log.warning("ignored a %s for notification %s: it names another recipient than the e-mail was sent to; "
                        "nothing applied", feedback.kind, token.notification_id)
            return Taken(Result.RECIPIENT_MISMATCH)
        try:
            record = self._suppressions.apply(feedback, token, owner.order_id if owner else None,
                                              owner.customer_id if owner else None, self._clock())
        except KafkaError as exc:
            raise FeedbackNotRecorded(f"the suppression topic did not take a {feedback.kind}: {exc}") from exc
        self._metrics.count_feedback(feedback.kind, feedback.source)
        log.info("%s (%s, %s) for notification %s, order %s: %s", feedback.kind, feedback.source,
                 feedback.status or "no status", _nid(token), owner.order_id if owner else "not in the store",
                 _told(record))
        return Taken(Result.SUPPRESSED if record is not None else Result.NOTED, record)

    def _owner(self, token: VerpToken | None) -> NotificationOwner | None:
        if token is None or self._owner_of is None:
            return None
        try:
            return self._owner_of(token.notification_id)
        except StateStoreError as exc:  # the bounce still counts; only the order and customer are missing
            log.warning("state store not readable (%s): notification %s applied without its order", exc,
                        token.notification_id)
            return None

    def _keep_unknown(self, feedback: Feedback, token: VerpToken | None, raw: bytes | None) -> Taken:
        headers = ((NOTIFICATION_HEADER, token.notification_id.encode()),) if token else ()
        try:
            self._dead_letters.publish(SourceRecord(DEAD_LETTER_SOURCE, -1, -1, None, raw, headers), UNKNOWN_REASON,
                                       f"{feedback.source}: {feedback.detail or 'not classified'}")
        except DeadLetterError as exc:
            raise FeedbackNotRecorded(str(exc)) from exc
        self._metrics.count_feedback(FeedbackKind.UNKNOWN, feedback.source)
        self._metrics.count_dead_letter(UNKNOWN_REASON)
        return Taken(Result.KEPT_UNKNOWN)


def _matches(recipient: str, token: VerpToken) -> bool:
    return address_digest(recipient)[:len(token.digest_prefix)] == token.digest_prefix


def _with_recipient(feedback: Feedback, recipient: str) -> Feedback:
    return Feedback(feedback.kind, recipient, feedback.status, feedback.diagnostic, feedback.source, feedback.detail)


def _with_detail(feedback: Feedback, detail: str) -> Feedback:
    return Feedback(FeedbackKind.UNKNOWN, None, feedback.status, feedback.diagnostic, feedback.source, detail)


def _nid(token: VerpToken | None) -> str:
    return token.notification_id if token else "(none named)"


def _told(record: SuppressionRecord | None) -> str:
    if record is None:
        return "nothing to suppress"
    until = "until lifted" if record.suppressed_until is None else f"until {record.suppressed_until:%Y-%m-%d %H:%M}"
    return f"{record.reason} #{record.count}, suppressed {until}"
