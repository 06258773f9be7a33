"""The naive baseline: the consumer a team writes in an afternoon. Run as its own process.

Poll one record, decode it, render it (the product's Renderer: same templates, same CSS inlining),
build the message with EmailMessage (the product's build_message), open a new smtplib connection per
e-mail, send, commit the offset synchronously. No policy, no state store, no concurrency.

``python -m bench.naive --bootstrap-servers HOST:PORT --smtp-port P --group-id G``
"""

from __future__ import annotations

import argparse
import signal
import smtplib

from kafka import KafkaConsumer

from consumers.message import build_message
from consumers.notification import Notification
from consumers.rendering import Renderer
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
    codec, renderer = EventCodec(), Renderer(settings)
    while not stopping:
        for records in consumer.poll(timeout_ms=500, max_records=1).values():
            for record in records:
                event = codec.decode(record.value)
                notification = Notification.for_event(event)
                mail = build_message(renderer.render(notification), notification, settings)
                with smtplib.SMTP("127.0.0.1", args.smtp_port) as smtp:
                    smtp.sendmail(mail.sender, [mail.recipient], mail.data)
                consumer.commit()
    consumer.close(autocommit=False)


if __name__ == "__main__":
    main()
