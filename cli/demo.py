"""Run the whole pipeline on this machine: a real Kafka-protocol broker, the simulator, the consumer
and an SMTP capture server writing every e-mail into ``./outbox/`` (open ``outbox/index.html``).

With ``--bootstrap-servers`` (or ORDERNOTIFY_BOOTSTRAP_SERVERS) it uses that Kafka instead of
starting the embedded broker. Everything it started is stopped before it returns.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from consumers.service import RunningConsumer, run_consumer
from consumers.state.store import open_store
from devstack.broker import EmbeddedBroker
from devstack.outbox_pages import MailLabel, write_outbox_pages
from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Settings, env_name
from ordernotify.errors import OrderNotifyError
from ordernotify.topics import ensure_topics
from producers.event_producer import OrderEventProducer
from producers.simulator import simulate_orders

log = logging.getLogger(__name__)


class DemoError(OrderNotifyError):
    """The demo did not see every expected e-mail in time."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--orders", type=int, default=30, help="orders to simulate (default: 30)")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed (default: 1)")
    parser.add_argument("--outbox", type=Path, default=Path("outbox"), help="where e-mails land (default: ./outbox)")
    parser.add_argument("--window", type=float, default=2.0,
                        help="coalescing window for the demo, seconds (default: 2; production default 90)")
    parser.add_argument("--timeout", type=float, default=50.0, help="give up after this many seconds (default: 50)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    started_at = time.monotonic()
    external_kafka = args.bootstrap_servers is not None or env_name("bootstrap_servers") in os.environ
    _empty_outbox(args.outbox)
    with ExitStack() as stack:
        capture = stack.enter_context(SmtpCapture(outbox=args.outbox))
        settings = dataclasses.replace(
            settings, smtp_host="127.0.0.1", smtp_port=capture.port, smtp_tls="none", smtp_username="",
            group_id=f"ordernotify-demo-{uuid.uuid4().hex[:8]}", session_timeout_ms=6000,
            # a fresh state store and short windows, so the demo finishes in seconds
            state_url=f"sqlite:///{args.outbox.resolve()}/state.db", coalesce_window_s=args.window,
            metrics_port=settings.metrics_port if args.metrics_port is not None else 0,
        )
        if not external_kafka:
            broker = stack.enter_context(EmbeddedBroker())
            settings = dataclasses.replace(settings, bootstrap_servers=broker.bootstrap_servers)
        print(f"Kafka at {settings.bootstrap_servers}, SMTP capture at 127.0.0.1:{capture.port} -> {args.outbox}/")
        ensure_topics(settings)

        events = simulate_orders(args.orders, seed=args.seed)
        with OrderEventProducer(settings) as producer:
            for handle in [producer.send(event) for event in events]:
                handle.result()
        produced = Counter(e.event_type.value for e in events)
        print(f"produced {len(events)} events for {args.orders} orders: {dict(sorted(produced.items()))}")

        running, held = asyncio.run(_consume_all(settings, len(events), args.timeout - (time.monotonic() - started_at)))
    elapsed = time.monotonic() - started_at
    sent = running.dispatcher.sent_by_template
    print(f"sent {sum(sent.values())} e-mails in {elapsed:.1f} s: {dict(sorted(sent.items()))}")
    if not_sent := running.not_sent_by_reason():
        print(f"not e-mailed (policy): {dict(sorted(not_sent.items()))}")
    if held:
        print(f"held for later: {held} shipping updates (at most {settings.throttle_per_hour} per customer and hour)")
    index = write_outbox_pages(args.outbox, capture.messages, _labels(settings))[-1]
    print(f"received by the SMTP server: {len(capture.messages)}; open {index}")
    if running.loop.handled < len(events):
        raise DemoError(f"only {running.loop.handled} of {len(events)} events were handled within {args.timeout:.0f} s")
    return 0


def _empty_outbox(outbox: Path) -> None:
    """Each demo run starts from nothing: no old e-mails, no old policy state."""
    if outbox.is_dir():
        for old in [*outbox.glob("*.eml"), *outbox.glob("*.html"), *outbox.glob("state.db*")]:
            old.unlink(missing_ok=True)


def _labels(settings: Settings) -> dict[str, MailLabel]:
    """Each sent e-mail's kind and order, by Message-ID, from the demo's state store (its headers say neither)."""
    store = open_store(settings.state_url)
    try:
        with store.transaction() as tx:
            return {mail.message_id: MailLabel(mail.template, mail.order_id) for mail in tx.outbox.sent()}
    finally:
        store.close()


async def _consume_all(settings: Settings, expected_events: int, timeout_s: float) -> tuple[RunningConsumer, int]:
    """Consume until every event was handled, every coalescing window closed and the outbox has drained."""
    stop = asyncio.Event()
    started: list[RunningConsumer] = []
    task = asyncio.create_task(run_consumer(settings, stop, on_start=started.append))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not task.done():
        if started and started[0].loop.handled >= expected_events:
            due_soon = settings.coalesce_window_s + 1.0
            running = started[0]
            if (await asyncio.to_thread(running.pending_count, due_soon) == 0
                    and await asyncio.to_thread(running.outbox_backlog) == 0):
                break
        await asyncio.sleep(0.2)
    held = await asyncio.to_thread(started[0].pending_count) if started else 0
    stop.set()
    return await task, held
