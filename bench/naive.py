"""The naive baseline: the consumer a team writes in an afternoon. Run as its own process.

Poll one record, decode it, render it (the product's templates; css-inline over each whole e-mail, as the
product did before it inlined styles once per shop),
build the message with the standard library's EmailMessage (as the product itself did before the bench
showed it to be the largest cost; kept here so the baseline does not move when the product gets faster),
open a new smtplib connection per e-mail, send, commit the offset synchronously. No policy, no state
store, no concurrency.

``python -m bench.naive --bootstrap-servers HOST:PORT --smtp-port P --group-id G``
"""

from __future__ import annotations

import argparse
import signal
import smtplib
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from kafka import KafkaConsumer

from bench.render_variants import WholeEmailInlining
from consumers.deliver.message import order_root_id
from consumers.deliver.rendering import RenderedEmail
from consumers.notification import Notification
from ordernotify.config import Settings
from schemas.codec import EventCodec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--group-id", required=True)
    parser.add_argument("--topic", default="orders.events")
    args = parser.parse_args()
    settings = Settings()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    consumer = KafkaConsumer(args.topic, bootstrap_servers=args.bootstrap_servers, group_id=args.group_id,
                             enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=6000,
                             max_poll_records=1)
    codec, renderer = EventCodec(), WholeEmailInlining(settings)
    while not stopping:
        for records in consumer.poll(timeout_ms=500, max_records=1).values():
            for record in records:
                event = codec.decode(record.value)
                notification = Notification.for_event(event)
                data = _email_message(renderer.render(notification), notification, settings)
                with smtplib.SMTP("127.0.0.1", args.smtp_port) as smtp:
                    smtp.sendmail(settings.sender_address, [event.customer.email], data)
                consumer.commit()
    consumer.close(autocommit=False)



def _email_message(rendered: RenderedEmail, notification: Notification, settings: Settings) -> bytes:
    """The afternoon's MIME: EmailMessage with policy.SMTP, headers as the product writes them."""
    domain = settings.sender_address.rpartition("@")[2]
    msg = EmailMessage(policy=policy.SMTP)
    msg["Message-ID"] = order_root_id(notification.order_id, domain)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["From"] = Address(settings.shop_name, addr_spec=settings.sender_address)
    msg["To"] = Address(notification.customer.display_name, addr_spec=notification.customer.email)
    msg["Subject"] = rendered.subject
    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()


if __name__ == "__main__":
    main()
