"""The tuned baseline (bench/tuned.py): its MIME read back as a mail client would, and the loop itself against the
real broker and SMTP server: e-mails out, offsets committed only once every e-mail of the batch was accepted."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench.tuned import build_mail
from consumers.deliver.message import order_root_id
from consumers.deliver.rendering import RenderedEmail
from consumers.notification import Notification
from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Settings
from producers.event_producer import OrderEventProducer
from tests import factories as f

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


def test_build_mail_reads_back_with_both_parts_and_non_ascii_headers() -> None:
    settings = Settings(shop_name="Bäckerei Müller", sender_address="orders@shop.example")
    event = f.placed_event(order_id="1234", customer=f.make_customer(email="zoe@example.org",
                                                                     display_name="Zoë Ünal"))
    rendered = RenderedEmail(subject="Ihre Bestellung 1234: bestätigt – Grüße", html="<p>Hallo Zoë</p>",
                             text="Hallo Zoë,\n\nTschüss\n", locale="de-DE")
    mail = build_mail(rendered, Notification.for_event(event), settings, now=NOW)

    assert (mail.sender, mail.recipient) == ("orders@shop.example", "zoe@example.org")
    assert b"\r\n\r\n" in mail.data and b"\n" not in mail.data.replace(b"\r\n", b"")
    assert mail.data.split(b"\r\n\r\n", 1)[0].isascii()
    parsed = email.message_from_bytes(mail.data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == rendered.subject
    assert parsed["To"].addresses[0].display_name == "Zoë Ünal"
    assert parsed["From"].addresses[0].display_name == "Bäckerei Müller"
    assert parsed["Message-ID"] == order_root_id("1234", "shop.example")
    assert parsed["Date"].datetime == NOW
    assert parsed.get_content_type() == "multipart/alternative"
    plain, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content() == rendered.text
    assert html.get_content() == rendered.html


def _committed(settings: Settings) -> int:
    reader = KafkaConsumer(**settings.kafka_client_options(), group_id=settings.group_id, enable_auto_commit=False)
    try:
        partitions = reader.partitions_for_topic(settings.events_topic) or set()
        return sum(reader.committed(TopicPartition(settings.events_topic, p)) or 0 for p in partitions)
    finally:
        reader.close(autocommit=False)


def _wait_committed(settings: Settings, expected: int, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    while (done := _committed(settings)) < expected and time.monotonic() < deadline:
        time.sleep(0.3)
    return done


@pytest.fixture
def tuned(settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m bench.tuned`` on this test's topic, group and SMTP server; stopped with SIGTERM."""
    with open(tmp_path / "tuned.stderr", "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.tuned", "--bootstrap-servers", settings.bootstrap_servers,
             "--smtp-port", str(settings.smtp_port), "--group-id", settings.group_id,
             "--topic", settings.events_topic],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.integration
def test_sends_every_event_skips_undecodable_and_commits(settings: Settings, smtp_server: SmtpCapture,
                                                         tuned: subprocess.Popen[bytes]) -> None:
    events = [f.placed_event(order_id=f"T-{i}", customer=f.make_customer(email=f"c{i}@example.org"))
              for i in range(30)]
    with OrderEventProducer(settings) as producer:
        for event in events:
            producer.send_and_wait(event)
    raw = KafkaProducer(**settings.kafka_client_options(), acks="all")
    try:
        raw.send(settings.events_topic, key=b"T-bad", value=b"not avro").get(10)
    finally:
        raw.close()
    smtp_server.replies = ["451 try again later"]  # one transient refusal: retried on a new connection

    messages = smtp_server.wait_for(len(events), timeout_s=60)
    assert _wait_committed(settings, len(events) + 1) == len(events) + 1
    assert sorted(m.rcpt_tos[0] for m in messages) == sorted(e.customer.email for e in events)
    assert all(e.order_id in m.subject for m in messages for e in events if m.rcpt_tos[0] == e.customer.email)
    assert tuned.poll() is None
    tuned.terminate()
    assert tuned.wait(30) == 0


@pytest.mark.integration
def test_commits_nothing_while_an_email_of_the_batch_is_refused(settings: Settings, smtp_server: SmtpCapture,
                                                                tuned: subprocess.Popen[bytes]) -> None:
    smtp_server.replies = ["451 try again later"] * 1000
    with OrderEventProducer(settings) as producer:
        for i in range(5):
            producer.send_and_wait(f.placed_event(order_id=f"R-{i}"))

    assert tuned.wait(60) != 0  # every attempt refused: the loop gives up instead of committing
    assert smtp_server.messages == []
    assert _committed(settings) == 0
