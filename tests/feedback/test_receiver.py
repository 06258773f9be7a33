"""The bounce receiver over real LMTP and SMTP (aiosmtpd on a free port, Python's smtplib as the MTA), with the
suppression list and dead letters replaced by recorders: what each kind of message leads to, and what the
MTA is told."""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
import pytest_asyncio
from kafka.errors import KafkaTimeoutError

from consumers.dead_letters import SourceRecord
from consumers.deliver.verp import VerpToken, envelope_sender
from consumers.state.outbox import NotificationOwner
from feedback.classify import Feedback, FeedbackKind
from feedback.intake import DEAD_LETTER_SOURCE, UNKNOWN_REASON, FeedbackIntake
from feedback.receiver import BounceReceiver
from feedback.suppression_list import SuppressionReason, SuppressionRecord
from ordernotify.config import Secret, Settings
from ordernotify.metrics import Metrics
from tests.feedback.bounce_messages import NOT_A_BOUNCE, arf, dsn

NID = "0123456789abcdef0123456789abcdef"
CUSTOMER = "ann@example.net"
SETTINGS = dataclasses.replace(Settings(), bounce_domain="bounces.shop.example", verp_secret=Secret("k" * 32),
                               bounces_port=0, bounce_max_bytes=1024 * 1024)


class RecordingSuppressions:
    def __init__(self, fail: bool = False) -> None:
        self.applied: list[tuple[Feedback, VerpToken | None, str | None, str | None]] = []
        self.fail = fail

    def apply(self, feedback: Feedback, token: VerpToken | None, order_id: str | None, customer_id: str | None,
              now: datetime) -> SuppressionRecord | None:
        if self.fail:
            raise KafkaTimeoutError("no broker")
        self.applied.append((feedback, token, order_id, customer_id))
        return SuppressionRecord("d" * 64, SuppressionReason(feedback.kind.value), now, now, len(self.applied),
                                 None, token.notification_id if token else None, order_id, customer_id)


class RecordingDeadLetters:
    def __init__(self) -> None:
        self.published: list[tuple[SourceRecord, str, str]] = []

    def publish(self, record: SourceRecord, reason: str, detail: str) -> None:
        self.published.append((record, reason, detail))


@dataclasses.dataclass
class Running:
    receiver: BounceReceiver
    suppressions: RecordingSuppressions
    dead_letters: RecordingDeadLetters
    metrics: Metrics

    def value(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


def _owner(notification_id: str) -> NotificationOwner | None:
    return NotificationOwner("A-1001", "C-77", CUSTOMER) if notification_id == NID else None


async def _start(settings: Settings, fail: bool = False) -> Running:
    metrics = Metrics()
    suppressions, dead_letters = RecordingSuppressions(fail), RecordingDeadLetters()
    receiver = BounceReceiver(settings, FeedbackIntake(settings, suppressions, dead_letters, metrics, _owner),
                              metrics)
    await receiver.start()
    return Running(receiver, suppressions, dead_letters, metrics)


@pytest_asyncio.fixture
async def lmtp() -> AsyncIterator[Running]:
    running = await _start(SETTINGS)
    yield running
    await running.receiver.stop()


def _deliver(port: int, rcpt: str | list[str], data: bytes, protocol: str = "lmtp") -> dict[str, Any]:
    """What an MTA does: one transaction; the refusals it got (smtplib raises on a refused DATA)."""
    client = smtplib.LMTP("127.0.0.1", port) if protocol == "lmtp" else smtplib.SMTP("127.0.0.1", port)
    try:
        return dict(client.sendmail("", rcpt, data))
    finally:
        client.quit()


async def deliver(port: int, rcpt: str | list[str], data: bytes, protocol: str = "lmtp") -> dict[str, Any]:
    return await asyncio.to_thread(_deliver, port, rcpt, data, protocol)


def verp() -> str:
    return envelope_sender(NID, CUSTOMER, SETTINGS)


async def test_a_hard_bounce_is_applied_with_its_order_and_customer(lmtp: Running) -> None:
    assert await deliver(lmtp.receiver.port, verp(), dsn(CUSTOMER)) == {}
    [(feedback, token, order_id, customer_id)] = lmtp.suppressions.applied
    assert (feedback.kind, feedback.recipient, feedback.status) == (FeedbackKind.HARD_BOUNCE, CUSTOMER, "5.1.1")
    assert token is not None and token.notification_id == NID
    assert (order_id, customer_id) == ("A-1001", "C-77")
    assert lmtp.value("ordernotify_feedback_total", kind="hard_bounce", source="dsn") == 1


async def test_a_delayed_dsn_is_a_soft_bounce(lmtp: Running) -> None:
    await deliver(lmtp.receiver.port, verp(), dsn(CUSTOMER, "4.4.1", "delayed", "smtp; 451 try later"))
    [(feedback, *_)] = lmtp.suppressions.applied
    assert feedback.kind is FeedbackKind.SOFT_BOUNCE
    assert lmtp.value("ordernotify_feedback_total", kind="soft_bounce", source="dsn") == 1


@pytest.mark.parametrize("rcpt", [
    "bounces@bounces.shop.example",  # no token
    "bounces+" + "a" * 50 + "@bounces.shop.example",  # a token not signed with our secret
    "orders@shop.example",  # not the bounce domain
], ids=["no-token", "bad-signature", "other-domain"])
async def test_a_forged_bounce_is_taken_counted_and_changes_nothing(lmtp: Running, rcpt: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    assert await deliver(lmtp.receiver.port, rcpt, dsn(CUSTOMER)) == {}  # 250: a forger learns nothing
    assert lmtp.suppressions.applied == [] and lmtp.dead_letters.published == []
    assert lmtp.value("ordernotify_feedback_rejected_total", reason="forged") == 1
    assert "without a valid token" in caplog.text and CUSTOMER not in caplog.text


async def test_a_dsn_naming_another_recipient_than_its_token_is_ignored(
        lmtp: Running, caplog: pytest.LogCaptureFixture) -> None:
    await deliver(lmtp.receiver.port, verp(), dsn("victim@example.org"))
    assert lmtp.suppressions.applied == []
    assert lmtp.value("ordernotify_feedback_rejected_total", reason="recipient_mismatch") == 1
    assert "another recipient" in caplog.text and "victim@example.org" not in caplog.text


async def test_what_cannot_be_classified_is_dead_lettered_with_its_bytes(lmtp: Running) -> None:
    await deliver(lmtp.receiver.port, verp(), NOT_A_BOUNCE)
    [(record, reason, _detail)] = lmtp.dead_letters.published
    assert reason == UNKNOWN_REASON and record.value == NOT_A_BOUNCE and record.topic == DEAD_LETTER_SOURCE
    assert record.key is None  # no address on the dead-letter topic's key
    assert lmtp.suppressions.applied == []
    assert lmtp.value("ordernotify_feedback_total", kind="unknown", source="unparsed") == 1


async def test_malformed_mime_is_kept_as_unknown_and_the_receiver_goes_on(lmtp: Running) -> None:
    broken = b'Content-Type: multipart/report; report-type=delivery-status; boundary="X"\r\n\r\n--X\r\n\xff\xfe\0'
    await deliver(lmtp.receiver.port, verp(), broken)
    await deliver(lmtp.receiver.port, verp(), dsn(CUSTOMER))
    assert [reason for _, reason, _ in lmtp.dead_letters.published] == [UNKNOWN_REASON]
    assert len(lmtp.suppressions.applied) == 1


async def test_a_complaint_with_the_address_redacted_is_tied_to_the_recipient_by_its_token(lmtp: Running) -> None:
    await deliver(lmtp.receiver.port, verp(), arf(None))
    [(feedback, *_)] = lmtp.suppressions.applied
    assert (feedback.kind, feedback.recipient) == (FeedbackKind.COMPLAINT, CUSTOMER)


def _deliver_without_size(port: int, rcpt: str, data: bytes) -> int:
    """An MTA that does not announce the size: the receiver finds out while reading DATA."""
    client = smtplib.LMTP("127.0.0.1", port)
    try:
        client.ehlo_or_helo_if_needed()
        client.mail("")
        client.rcpt(rcpt)
        code, _ = client.data(data)
        return code
    finally:
        client.quit()


async def test_a_10_mb_bounce_is_refused_while_read_and_counted_and_nothing_applied(lmtp: Running) -> None:
    big = dsn(CUSTOMER, padding=10 * 1024 * 1024)
    assert await asyncio.to_thread(_deliver_without_size, lmtp.receiver.port, verp(), big) == 552
    assert lmtp.suppressions.applied == [] and lmtp.dead_letters.published == []
    assert lmtp.value("ordernotify_feedback_rejected_total", reason="too_large") == 1
    await deliver(lmtp.receiver.port, verp(), dsn(CUSTOMER))  # the receiver takes the next one as before
    assert len(lmtp.suppressions.applied) == 1


async def test_a_bounce_announced_as_too_large_is_refused_before_its_data(lmtp: Running) -> None:
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        await deliver(lmtp.receiver.port, verp(), dsn(CUSTOMER, padding=2 * 1024 * 1024))  # MAIL FROM SIZE=...
    assert refused.value.smtp_code == 552
    assert lmtp.suppressions.applied == []
    assert lmtp.value("ordernotify_feedback_rejected_total", reason="too_large") == 1


async def test_a_second_recipient_in_one_transaction_is_deferred(lmtp: Running) -> None:
    refused = await deliver(lmtp.receiver.port, [verp(), verp()], dsn(CUSTOMER))
    assert [code for code, _ in refused.values()] == [452]
    assert len(lmtp.suppressions.applied) == 1


async def test_a_suppression_topic_that_is_down_makes_the_mta_try_again() -> None:
    running = await _start(SETTINGS, fail=True)
    try:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            await deliver(running.receiver.port, verp(), dsn(CUSTOMER))
        assert refused.value.smtp_code == 451
        assert running.value("ordernotify_feedback_total", kind="hard_bounce", source="dsn") == 0
    finally:
        await running.receiver.stop()


async def test_plain_smtp_takes_bounces_too() -> None:
    running = await _start(dataclasses.replace(SETTINGS, bounces_protocol="smtp"))
    try:
        assert await deliver(running.receiver.port, verp(), dsn(CUSTOMER), protocol="smtp") == {}
        assert len(running.suppressions.applied) == 1
    finally:
        await running.receiver.stop()
