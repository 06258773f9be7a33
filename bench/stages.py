"""Each stage of the pipeline measured alone: CPU (and wall) microseconds per event or e-mail, median of repeats.

These are the "stage limits": what one core could do if a stage were all there was. The CPU-chain
limit is 1 / (sum of the per-e-mail CPU costs of the stages), see :func:`chain_limits`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from bench.events import Encoded, encode, produce_backlog
from bench.mime_variants import build_compat32, build_hand, build_hand_checked, build_hand_light_check
from bench.render_variants import WholeEmailInlining
from bench.sinks import Sink
from bench.timing import Cost, measure
from consumers.comms_log import CommsLog
from consumers.dead_letters import SourceRecord
from consumers.decide.decider import Decider
from consumers.deliver.class_styles import ClassStyles
from consumers.deliver.message import OutgoingEmail, build_message
from consumers.deliver.rendering import Renderer
from consumers.deliver.smtp_sender import SmtpSender
from consumers.notification import Notification
from consumers.service import RECORDS_LINGER_MS
from consumers.state.outbox import RenderedMail
from consumers.state.store import StateStore
from ordernotify.config import Settings
from ordernotify.topics import ensure_topics
from schemas.codec import AvroCodec, EventCodec
from schemas.events import OrderEvent
from schemas.registry import ORDER_EVENT

POSTGRES = "postgresql://postgres@127.0.0.1/test"


# -- Kafka --------------------------------------------------------------------------------------------
def kafka_stages(settings: Settings, records: list[Encoded], repeats: int) -> dict[str, Cost]:
    """Consume rate (whole topic, no group), synchronous commit, communications-log publish."""
    ensure_topics(settings)
    produce_backlog(settings, records)
    n = len(records)

    def consume(max_poll_records: int) -> int:
        consumer = KafkaConsumer(**settings.kafka_client_options(), enable_auto_commit=False,
                                 max_poll_records=max_poll_records, fetch_max_wait_ms=100)
        partitions = [TopicPartition(settings.events_topic, p)
                      for p in consumer.partitions_for_topic(settings.events_topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        got, deadline = 0, time.monotonic() + 120
        while got < n and time.monotonic() < deadline:
            got += sum(len(v) for v in consumer.poll(200).values())
        consumer.close()
        return got

    result = {
        "kafka consume (200/poll)": measure(lambda: consume(200), repeats),
        "kafka consume (1000/poll)": measure(lambda: consume(1000), repeats),
    }

    consumer = KafkaConsumer(**settings.kafka_client_options(), group_id=f"bench-{uuid.uuid4().hex[:6]}",
                             enable_auto_commit=False)
    tp = TopicPartition(settings.events_topic, 0)
    consumer.assign([tp])
    offset = iter(range(1, 10**9))

    def commits(k: int = 200) -> int:
        for _ in range(k):
            consumer.commit({tp: OffsetAndMetadata(next(offset), "", -1)})
        return k

    result["kafka sync commit (per call)"] = measure(commits, repeats)
    consumer.close()

    producer = KafkaProducer(**settings.kafka_client_options(), acks="all", linger_ms=RECORDS_LINGER_MS)
    comms = CommsLog(producer, settings.sent_topic)

    def publish(k: int = 2000) -> int:
        for i in range(k):
            _log_sent(comms, i)
        comms.flush(30)  # the log's own thread hands every record over, then the producer sends them
        return k

    result["comms log publish (per e-mail)"] = measure(publish, repeats)
    comms.close()
    producer.close(10)
    for linger_ms in (5, RECORDS_LINGER_MS):
        result[f"comms log publish, paced 250/s, linger {linger_ms} ms"] = _paced_publish(settings, linger_ms,
                                                                                         repeats)
    return result


def _log_sent(comms: CommsLog, i: int) -> None:
    comms.sent(order_id=f"o-{i}", customer_id="c-1", template="order_placed", locale="en-GB",
               subject="Your order o-1: confirmed", message_id=f"<m{i}@shop.example>", event_ids=[str(i)])


def _paced_publish(settings: Settings, linger_ms: int, repeats: int, k: int = 500, per_s: float = 250.0) -> Cost:
    """As the consumer publishes: one record per e-mail at a steady pace, so the linger decides how many records
    share a produce request (CPU includes the producer's sender thread)."""
    producer = KafkaProducer(**settings.kafka_client_options(), acks="all", linger_ms=linger_ms)
    comms = CommsLog(producer, settings.sent_topic)

    def run() -> int:
        start = time.perf_counter()
        for i in range(k):
            _log_sent(comms, i)
            time.sleep(max(0.0, start + (i + 1) / per_s - time.perf_counter()))
        comms.flush(30)
        return k

    cost = measure(run, repeats)
    comms.close()
    producer.close(10)
    return cost


# -- decode ---------------------------------------------------------------------------------------------
def decode_stages(records: list[Encoded], repeats: int) -> dict[str, Cost]:
    codec = EventCodec()
    avro = AvroCodec(ORDER_EVENT)
    values = [r.value for r in records]

    def full() -> int:
        for v in values:
            codec.decode(v)
        return len(values)

    def raw() -> int:
        for v in values:
            avro.decode(v)
        return len(values)

    return {"decode: fastavro only": measure(raw, repeats),
            "decode: EventCodec (fastavro + model + validation)": measure(full, repeats)}


# -- render and MIME ------------------------------------------------------------------------------------
def render_stages(settings: Settings, events: list[OrderEvent], repeats: int) -> tuple[dict[str, Cost], list[Any]]:
    renderer = Renderer(settings)
    notifications = [Notification.for_event(e) for e in events]
    for n in notifications[:20]:
        renderer.render(n)  # compile templates and catalogs outside the measurement

    def render_all() -> int:
        for n in notifications:
            renderer.render(n)
        return len(notifications)

    result = {"render: Renderer.render (Jinja + styles by class)": measure(render_all, repeats)}
    whole = WholeEmailInlining(settings)  # its renderer leaves the styles out: Jinja's cost alone
    raw_html = [whole.renderer.render(n).html for n in notifications]

    def render_unstyled() -> int:
        for n in notifications:
            whole.renderer.render(n)
        return len(notifications)

    result["render: Jinja only (html+text+subject)"] = measure(render_unstyled, repeats)
    styles = ClassStyles(renderer.stylesheet)

    def apply_all() -> int:
        for html in raw_html:
            styles.apply(html)
        return len(raw_html)

    result["render: styles by class attribute (product)"] = measure(apply_all, repeats)

    def inline_all() -> int:
        for html in raw_html:
            whole.inline(html)
        return len(raw_html)

    result["render: css-inline of the whole e-mail (before)"] = measure(inline_all, repeats)
    rendered = [(renderer.render(n), n) for n in notifications]
    now = datetime.now(UTC)
    for name, build in (("MIME: build_message (product: hand-assembled + read-back check)", build_message),
                        ("MIME: compat32 email.mime classes", build_compat32),
                        ("MIME: hand-assembled (bench prototype)", build_hand),
                        ("MIME: hand-assembled + product's header read-back check", build_hand_checked),
                        ("MIME: hand-assembled + compat32 read-back check (proposed)", build_hand_light_check)):
        def build_all(build: Any = build) -> int:
            for r, n in rendered:
                build(r, n, settings, now)
            return len(rendered)

        result[name] = measure(build_all, repeats)
    mails = [build_message(r, n, settings, now) for r, n in rendered]
    return result, mails


# -- policy and state store ---------------------------------------------------------------------------
class _NoLog:
    """The communications log's calls, going nowhere (its cost is measured on its own)."""

    def sent(self, **_: Any) -> None:
        return None

    def not_sent(self, **_: Any) -> None:
        return None


def postgres_schema_url() -> tuple[str, Any]:
    """A fresh schema on the machine's PostgreSQL: (state URL, drop function)."""
    import psycopg

    admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()

    return f"{POSTGRES}?options=-csearch_path%3D{schema}", drop


def policy_stages(settings: Settings, events: list[OrderEvent], mail: OutgoingEmail, repeats: int,
                  with_postgres: bool) -> dict[str, Cost]:
    """The deciding side's batch transactions, and all store transactions an e-mail costs in all: its batch's
    decisions, its claim, its rendered bytes stored, its outcome recorded."""
    codec = EventCodec()
    records = [SourceRecord("orders.events", 0, i, e.order_id.encode(), codec.encode(e), ())
               for i, e in enumerate(events)]
    rendered = RenderedMail(mail.message_id, "Your order", "en-GB", mail.sender, mail.recipient, mail.data)
    batch = settings.max_poll_records
    result: dict[str, Cost] = {}
    stores = ["sqlite"] + (["postgresql"] if with_postgres else [])
    for dialect in stores:
        state: dict[str, Any] = {}

        def setup(dialect: str = dialect, state: dict[str, Any] = state) -> None:
            if "close" in state:
                state.pop("close")()
            if dialect == "sqlite":
                tmp = tempfile.TemporaryDirectory(prefix="bench-state-")
                store = StateStore(f"sqlite:///{Path(tmp.name) / 'state.db'}")
                state["close"] = lambda: (store.close(), tmp.cleanup())
            else:
                url, drop = postgres_schema_url()
                store = StateStore(url)
                state["close"] = lambda: (store.close(), drop())
            state["store"] = store
            state["decider"] = Decider(settings, store, _NoLog())  # type: ignore[arg-type]

        def decide_all(state: dict[str, Any] = state) -> int:
            decider: Decider = state["decider"]
            for start in range(0, len(records), batch):
                decider.decide(records[start:start + batch])
            return len(records)

        def decide_and_deliver(state: dict[str, Any] = state) -> int:
            decide_all(state)
            store: StateStore = state["store"]
            while True:
                with store.transaction() as tx:
                    claimed = tx.outbox.claim(time.time(), "bench", time.time() + 30, settings.outbox_batch)
                if not claimed:
                    return len(records)
                with store.transaction() as tx:
                    for c in claimed:
                        tx.outbox.store_rendered(c.entry.notification_id, rendered, "bench")
                for c in claimed:
                    with store.transaction() as tx:
                        tx.outbox.mark_sent(c.entry.notification_id, time.time())

        result[f"policy: decide tx ({dialect})"] = measure(decide_all, repeats, setup)
        result[f"policy: all store tx per e-mail ({dialect})"] = measure(decide_and_deliver, repeats, setup)
        state.pop("close")()
    return result


def thread_hop_stage(repeats: int) -> dict[str, Cost]:
    """What one ``asyncio.to_thread`` costs (the product does several per e-mail)."""
    async def hops(k: int = 5000) -> int:
        for _ in range(k):
            await asyncio.to_thread(int)
        return k

    return {"asyncio.to_thread hop (per call)": measure(lambda: asyncio.run(hops()), repeats)}


# -- SMTP client ------------------------------------------------------------------------------------------
def smtp_stages(mails: list[OutgoingEmail], n: int, repeats: int, connections: tuple[int, ...]) -> dict[str, Cost]:
    """The product's SmtpSender with several pool sizes, and smtplib, against Postfix's smtp-sink."""
    batch = [mails[i % len(mails)] for i in range(n)]
    result: dict[str, Cost] = {}
    with Sink("smtp-sink") as sink:
        settings = Settings(smtp_host="127.0.0.1", smtp_port=sink.port)
        for k in connections:
            async def send_all(k: int = k) -> int:
                sender = SmtpSender(dataclasses.replace(settings, smtp_connections=k))
                await asyncio.gather(*(sender.send_once(m) for m in batch[:k]))  # connect outside the measure
                started_cpu, started = time.process_time(), time.perf_counter()
                await asyncio.gather(*(sender.send_once(m) for m in batch))
                send_all.cpu, send_all.wall = time.process_time() - started_cpu, time.perf_counter() - started  # type: ignore[attr-defined]
                await sender.close()
                return len(batch)

            cpu, wall = [], []
            for _ in range(repeats):
                asyncio.run(send_all())
                cpu.append(send_all.cpu * 1e6 / n)  # type: ignore[attr-defined]
                wall.append(send_all.wall * 1e6 / n)  # type: ignore[attr-defined]
            cpu.sort()
            wall.sort()
            result[f"SMTP: SmtpSender (aiosmtplib), {k} conn"] = Cost(
                round(cpu[len(cpu) // 2], 1), round(wall[len(wall) // 2], 1), [round(c, 1) for c in cpu], n)

        client: dict[str, smtplib.SMTP] = {}

        def persistent() -> int:
            smtp = client.setdefault("c", smtplib.SMTP("127.0.0.1", sink.port))
            for m in batch:
                smtp.sendmail(m.sender, [m.recipient], m.data)
            return len(batch)

        result["SMTP: smtplib, 1 persistent conn"] = measure(persistent, repeats)
        client["c"].quit()

        def per_mail(k: int = min(n, 500)) -> int:
            for m in batch[:k]:
                with smtplib.SMTP("127.0.0.1", sink.port) as smtp:
                    smtp.sendmail(m.sender, [m.recipient], m.data)
            return k

        result["SMTP: smtplib, new conn per e-mail"] = measure(per_mail, repeats)
    return result


def run_stages(settings: Settings, events: list[OrderEvent], repeats: int, smtp_n: int,
               with_postgres: bool = True) -> dict[str, Cost]:
    """Every stage alone; ``settings`` points at a running broker."""
    records = encode(events)
    costs: dict[str, Cost] = {}
    costs.update(kafka_stages(settings, records, repeats))
    costs.update(decode_stages(records, repeats))
    render_costs, mails = render_stages(settings, events[:1000], repeats)
    costs.update(render_costs)
    costs.update(policy_stages(settings, events[:1000], mails[0], repeats, with_postgres))
    costs.update(thread_hop_stage(repeats))
    costs.update(smtp_stages(mails, smtp_n, repeats, (1, 4, 8, 16)))
    return costs


def chain_limits(costs: dict[str, Cost], max_poll_records: int) -> dict[str, Any]:
    """e-mails/s of one core if it did nothing but the stages, as implemented and with the cheapest variants."""
    def c(name: str) -> float:
        return costs[name].cpu_us

    smtp_product = min(v.cpu_us for k, v in costs.items() if k.startswith("SMTP: SmtpSender"))
    common = {
        "kafka consume": c("kafka consume (200/poll)"),
        "decode": c("decode: EventCodec (fastavro + model + validation)"),
        "policy + store (sqlite)": c("policy: all store tx per e-mail (sqlite)"),
        "comms log publish": c("comms log publish (per e-mail)"),
        "offset commit (per poll / records per poll)": c("kafka sync commit (per call)") / max_poll_records,
    }
    as_implemented = {
        **common,
        "render (Jinja)": c("render: Jinja only (html+text+subject)"),
        "CSS inlining": c("render: styles by class attribute (product)"),
        "MIME": c("MIME: build_message (product: hand-assembled + read-back check)"),
        "SMTP client": smtp_product,
    }
    cheapest = {
        **common,
        "kafka consume": min(c("kafka consume (200/poll)"), c("kafka consume (1000/poll)")),
        "render (Jinja)": c("render: Jinja only (html+text+subject)"),
        "CSS inlining": c("render: styles by class attribute (product)"),
        "MIME": c("MIME: hand-assembled + compat32 read-back check (proposed)"),
        "SMTP client": min(smtp_product, c("SMTP: smtplib, 1 persistent conn")),
    }
    return {
        "as_implemented": {"stages_us": as_implemented, "sum_us": round(sum(as_implemented.values()), 1),
                           "emails_per_s": round(1e6 / sum(as_implemented.values()), 1)},
        "cheapest": {"stages_us": cheapest, "sum_us": round(sum(cheapest.values()), 1),
                     "emails_per_s": round(1e6 / sum(cheapest.values()), 1)},
    }
