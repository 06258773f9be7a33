"""Bounces from a real MTA: Postfix writes the DSN, sends it to the VERP address, and hands it over LMTP to the
bounce service, which puts the address on the suppression topic.

ordernotify's SMTP sender sends through a private Postfix (tests/integration/postfix_instance.py). Postfix
relays ``refused.example`` to an aiosmtpd server that answers 550 5.1.1 and ``later.example`` to one that
answers 451 4.2.0; it then bounces (or, after ``delay_warning_time``, warns of the delay) to the envelope
sender, and its transport map sends the bounce domain to ``lmtp:127.0.0.1:PORT`` of the bounce service.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from cli.main import main
from consumers.deliver.message import OutgoingEmail
from consumers.deliver.smtp_sender import SmtpSender
from consumers.deliver.verp import address_digest, envelope_sender
from consumers.state.outbox import ReadyEntry
from consumers.state.store import open_store
from devstack.smtp_capture import SmtpCapture
from feedback.service import RunningBounces, run_bounces
from feedback.suppression_list import SuppressionList, SuppressionReason, SuppressionRecord
from ordernotify.config import Secret, Settings
from ordernotify.topics import ensure_topics
from producers.event_producer import OrderEventProducer
from tests import factories
from tests.consumer_runner import ConsumerRunner
from tests.integration.postfix_instance import PostfixInstance, available, free_port

pytestmark = [pytest.mark.integration, pytest.mark.skipif(available() is not None, reason=str(available()))]

BOUNCE_DOMAIN = "bounces.shop.example"


class RefusingServer:
    """The customer's mail server: unknown users at refused.example, a full mailbox at later.example."""

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address.endswith("@refused.example"):
            return "550 5.1.1 <" + address + ">: Recipient address rejected: User unknown"
        return "451 4.2.0 mailbox busy, try again later"


@pytest.fixture
def refusing_server() -> Iterator[int]:
    controller = Controller(RefusingServer(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


@pytest.fixture
def bounce_settings(settings: Settings) -> Settings:
    configured = dataclasses.replace(
        settings, bounce_domain=BOUNCE_DOMAIN, verp_secret=Secret("test-secret-" + "x" * 20),
        suppressions_topic=settings.preferences_topic.replace("preferences", "suppressions"), bounces_port=0)
    ensure_topics(configured, partitions=3)
    return configured


def _queue_notification(settings: Settings, notification_id: str, order_id: str) -> None:
    """The outbox row the consumer wrote for the e-mail: its order and customer."""
    store = open_store(settings.state_url)
    try:
        with store.transaction() as tx:
            tx.outbox.add_ready(ReadyEntry(notification_id, order_id, "C-42", "order_placed", False, ("e-1",)), [],
                                time.time())
    finally:
        store.close()


async def _send_and_wait_for_suppression(settings: Settings, postfix: PostfixInstance, recipient: str,
                                         notification_id: str, timeout_s: float) -> SuppressionRecord:
    stop = asyncio.Event()
    started: asyncio.Future[RunningBounces] = asyncio.get_running_loop().create_future()
    service = asyncio.create_task(run_bounces(settings, stop, started.set_result))
    await asyncio.wait([started, service], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if service.done():
        service.result()  # its error
    running = started.result()
    try:
        postfix_settings = dataclasses.replace(settings, smtp_port=postfix.port)
        postfix.write_transport(BOUNCE_DOMAIN, f"lmtp:inet:127.0.0.1:{running.receiver.port}")
        postfix.start()
        sender = SmtpSender(postfix_settings)
        try:
            data = (f"From: Example Shop <orders@shop.example>\r\nTo: {recipient}\r\nSubject: Your order\r\n"
                    f"Message-ID: <{notification_id}@shop.example>\r\n\r\nThank you.\r\n").encode()
            await sender.send_once(OutgoingEmail(f"<{notification_id}@shop.example>",
                                                 envelope_sender(notification_id, recipient, settings), recipient,
                                                 data))
        finally:
            await sender.close()
        deadline = time.monotonic() + timeout_s
        digest = address_digest(recipient)
        while time.monotonic() < deadline:
            record = running.suppressions.get(digest)
            if record is not None:
                return record
            await asyncio.sleep(0.5)
            postfix.flush()
        raise AssertionError(f"no suppression within {timeout_s} s; Postfix's log:\n{postfix.log()[-4000:]}")
    finally:
        stop.set()
        await service


def _from_the_topic(settings: Settings, recipient: str) -> SuppressionRecord | None:
    """What a fresh reader of the compacted topic sees: the consumers' view."""
    fresh = SuppressionList(settings)
    fresh.load()
    return fresh.get(address_digest(recipient))


@pytest.fixture
def postfix_dir() -> Iterator[Path]:
    """Postfix's daemons run as the postfix user and must reach their queue: pytest's tmp_path lies under a
    directory only root may enter, so this one is a temporary directory of its own, open to read."""
    with tempfile.TemporaryDirectory(prefix="ordernotify-postfix-") as name:
        Path(name).chmod(0o755)
        yield Path(name)


def _postfix(directory: Path, refusing_port: int, main: dict[str, str]) -> PostfixInstance:
    return PostfixInstance(directory / "postfix", {
        "refused.example": f"smtp:[127.0.0.1]:{refusing_port}",
        "later.example": f"smtp:[127.0.0.1]:{refusing_port}",
    }, main)


def test_postfix_bounces_an_unknown_user_the_address_is_suppressed_and_the_next_email_not_sent(
        bounce_settings: Settings, refusing_server: int, postfix_dir: Path, smtp_server: SmtpCapture,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    postfix = _postfix(postfix_dir, refusing_server, {})
    notification_id = "a1" * 16
    _queue_notification(bounce_settings, notification_id, "A-9001")
    assert postfix.check() is not None  # exits 0 (raises otherwise)
    try:
        record = asyncio.run(_send_and_wait_for_suppression(
            bounce_settings, postfix, "nobody@refused.example", notification_id, 60))
    finally:
        postfix.stop()
    assert record.reason is SuppressionReason.HARD_BOUNCE and record.suppressed_until is None
    assert (record.notification_id, record.order_id, record.customer_id) == (notification_id, "A-9001", "C-42")
    assert "5.1.1" in record.detail
    landed = _from_the_topic(bounce_settings, "nobody@refused.example")
    assert landed is not None and landed.reason is SuppressionReason.HARD_BOUNCE
    assert "status=sent" in postfix.log() and "lmtp" in postfix.log()  # Postfix delivered its DSN over LMTP

    # The loop closed: a consumer reads the list, the next e-mail to that address is not sent, history says why.
    customer = factories.make_customer(customer_id="C-42", email="nobody@refused.example")
    # a consumer with a store of its own: the outbox row above stands for an e-mail already sent, not one to send
    next_consumer = dataclasses.replace(bounce_settings, state_url=f"sqlite:///{tmp_path / 'next.db'}")
    with ConsumerRunner(next_consumer) as runner:
        deadline = time.monotonic() + 15
        while runner.running.suppressions.applied < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert runner.running.suppressions.applied == 1
        with OrderEventProducer(bounce_settings) as producer:
            producer.send_and_wait(factories.placed_event(order_id="A-9003", customer=customer))
        runner.wait_handled(1)
        runner.wait_idle()
        assert runner.not_sent_when(lambda counts: counts.get("address_suppressed") == 1).get("address_suppressed") == 1
    assert smtp_server.messages == []
    history = main(["history", "--order", "A-9003", "--bootstrap-servers", bounce_settings.bootstrap_servers,
                    "--sent-topic", bounce_settings.sent_topic])
    assert history == 0
    assert "not sent: address suppressed (hard bounce on" in capsys.readouterr().out


def test_a_4xx_that_lasts_becomes_a_delayed_dsn_and_a_soft_bounce(
        bounce_settings: Settings, refusing_server: int, postfix_dir: Path) -> None:
    postfix = _postfix(postfix_dir, refusing_server, {"delay_warning_time": "1s"})
    notification_id = "b2" * 16
    _queue_notification(bounce_settings, notification_id, "A-9002")
    try:
        record = asyncio.run(_send_and_wait_for_suppression(
            bounce_settings, postfix, "busy@later.example", notification_id, 90))
    finally:
        postfix.stop()
    assert record.reason is SuppressionReason.SOFT_BOUNCE and record.count == 1
    assert record.order_id == "A-9002"
    landed = _from_the_topic(bounce_settings, "busy@later.example")
    assert landed is not None and landed.reason is SuppressionReason.SOFT_BOUNCE
