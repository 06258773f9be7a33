"""The suppression list: which addresses get no more e-mail, and why. Its home is a compacted topic.

``customers.suppressions`` holds one record per address, keyed by the address's digest (never the
address): why, since when, how often, until when, from which e-mail. This class reads it to its end into
memory (:meth:`SuppressionList.load`), turns each bounce or complaint into the address's next record
(:meth:`SuppressionList.apply`, the policy), and publishes that record, waiting for the broker's
acknowledgement, before it says so. Consumers keep a table of their state store in step with the topic
(``consumers/decide/suppressions_reader.py``) and check it before each send.

The policy and why its defaults are what they are (providers' practice; feedback/README.md has the sources):

- **Hard bounce** (5.x.x: no such mailbox or domain): suppressed until an operator lifts it. Amazon SES's
  account-level list (reason BOUNCE), Postmark's inactive recipients, Mailgun's and SendGrid's bounce lists
  all stop a hard-bounced address at once: mailbox providers read mail to dead addresses as a sign of a
  stale list, and it counts towards the bounce rate SES reviews at 5 %.
- **Soft bounce** (4.x.x that ended in a DSN: mailbox full, disabled for now): counted; at
  ``soft_bounce_limit`` (3) within ``soft_bounce_window_days`` (14) the address is suppressed for
  ``soft_bounce_suppress_days`` (7), then tried again. Three in two weeks is the common guideline (M3AAWG
  suggests at least two over at least two weeks, ESPs 3 to 5): fewer would stop a customer for one full
  mailbox, spread over less time a single outage of their provider. Seven days, not for ever: a full
  mailbox gets emptied, and a customer's order news matters; the count starts over after it.
- **Complaint** (ARF, a provider's feedback loop): the news the customer can switch off stops until lifted,
  as SES (reason COMPLAINT) and Postmark (which lets nobody reactivate it) do. Must-send e-mails (order
  placed, a choice to make, a refund) still go unless ``complaint_blocks_must_send``: the customer needs
  them to get their money or goods, and a complaint about a shipping update is not a refusal of the refund.
- **Manual** (``ordernotify suppressions add``): stops everything until lifted, with who and why.
- **Auto-replies and what could not be classified** change nothing.

A stronger suppression is never replaced by a weaker one in force (a late soft bounce does not shorten a
hard one); a lifted one is forgotten by the next bounce, which starts afresh.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from consumers.deliver.verp import VerpToken, address_digest
from feedback.classify import Feedback, FeedbackKind
from feedback.exceptions import SuppressionListUnreadable, SuppressionNotPublished
from ordernotify.config import Settings
from ordernotify.errors import OrderNotifyError
from ordernotify.kafka_closing import close_consumer
from ordernotify.reachability import reaching_broker
from schemas.suppressions import SuppressionCodec, SuppressionReason, SuppressionRecord

__all__ = ["SuppressionList", "SuppressionReason", "SuppressionRecord"]

log = logging.getLogger(__name__)

POLL_MS = 200
EMPTY_POLLS_DONE_S = 1.5  # the dev broker's end offsets can be wrong (cli/history.py): stop after this long idle
LOAD_TIMEOUT_S = 120.0
DETAIL_CHARS = 200
_ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>@]+>?")

# Which reason may replace one in force: a weaker one never does.
_RANK = {SuppressionReason.SOFT_BOUNCE: 1, SuppressionReason.COMPLAINT: 2, SuppressionReason.HARD_BOUNCE: 3,
         SuppressionReason.MANUAL: 3}
_REASON_OF = {FeedbackKind.HARD_BOUNCE: SuppressionReason.HARD_BOUNCE,
              FeedbackKind.SOFT_BOUNCE: SuppressionReason.SOFT_BOUNCE,
              FeedbackKind.COMPLAINT: SuppressionReason.COMPLAINT}


def without_addresses(text: str) -> str:
    """A diagnostic as the topic may keep it: one line, every address replaced, cut to DETAIL_CHARS."""
    return _ADDRESS.sub("<address>", " ".join(text.split()))[:DETAIL_CHARS]


class SuppressionList:
    """The list in memory, and the one way to change it: publish the address's next record.

    Not safe for several threads changing the same address at once; a lock serialises this instance's
    changes. Two bounce services changing one address at the same moment: the later record wins on the
    compacted topic (both are suppressions; at worst a count is one short)."""

    def __init__(self, settings: Settings, producer: Any | None = None) -> None:
        self._settings = settings
        self._producer = producer
        self._own_producer = producer is None
        self._codec = SuppressionCodec()
        self._records: dict[str, SuppressionRecord] = {}
        self._lock = threading.Lock()

    # -- reading --------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Read the topic from its beginning to its end into memory (no consumer group). A missing topic is
        an empty list."""
        topic = self._settings.suppressions_topic
        with reaching_broker(self._settings):
            consumer = KafkaConsumer(**self._settings.kafka_consumer_options(), group_id=None,
                                     enable_auto_commit=False, client_id="ordernotify-suppressions")
        try:
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                log.info("suppressions topic %s does not exist yet: the list is empty", topic)
                return
            assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            consumer.seek_to_beginning(*assigned)
            behind = consumer.end_offsets(assigned)
            started = last_data = time.monotonic()
            loaded: dict[str, SuppressionRecord] = {}
            while True:
                batch = consumer.poll(POLL_MS)
                now = time.monotonic()
                if batch:
                    last_data = now
                for records in batch.values():
                    for record in records:
                        self._read_one(record, loaded)
                behind = {tp: end for tp, end in behind.items() if consumer.position(tp) < end}
                if not batch and (not behind or now - last_data >= EMPTY_POLLS_DONE_S):
                    break
                if now - started > LOAD_TIMEOUT_S:
                    raise SuppressionListUnreadable(
                        f"reading {topic} at {self._settings.bootstrap_servers} took over {LOAD_TIMEOUT_S:.0f} s "
                        "without reaching its end; is the broker overloaded?")
        except KafkaError as exc:
            raise SuppressionListUnreadable(
                f"cannot read {topic} at {self._settings.bootstrap_servers}: {exc}") from exc
        finally:
            close_consumer(consumer)
        with self._lock:
            self._records = loaded
        log.info("suppression list loaded: %d records", len(loaded))

    def _read_one(self, record: Any, into: dict[str, SuppressionRecord]) -> None:
        key = (record.key or b"").decode("utf-8", "replace")
        if record.value is None:  # a tombstone: the address is forgotten
            into.pop(key, None)
            return
        try:
            into[key] = self._codec.decode(record.value)
        except OrderNotifyError as exc:
            log.warning("skipping suppression record %s[%d]@%d: %s", record.topic, record.partition, record.offset,
                        exc)

    def get(self, address_digest: str) -> SuppressionRecord | None:
        return self._records.get(address_digest)

    def records(self) -> list[SuppressionRecord]:
        """Every record, the newest change first."""
        return sorted(self._records.values(), key=_changed_at, reverse=True)

    # -- the policy ------------------------------------------------------------------------------------------
    def apply(self, feedback: Feedback, token: VerpToken | None, order_id: str | None, customer_id: str | None,
              now: datetime) -> SuppressionRecord | None:
        """The address's next record for this bounce or complaint, published; None if nothing changes (an
        auto-reply, an unknown message, no recipient, or a weaker reason than one in force)."""
        reason = _REASON_OF.get(feedback.kind)
        if reason is None or not feedback.recipient:
            return None
        digest = address_digest(feedback.recipient)
        with self._lock:
            record = self._next(self._records.get(digest), reason, digest, feedback, token, order_id, customer_id,
                                now)
            if record is not None:
                self._publish(record)
        return record

    def _next(self, prev: SuppressionRecord | None, reason: SuppressionReason, digest: str, feedback: Feedback,
              token: VerpToken | None, order_id: str | None, customer_id: str | None,
              now: datetime) -> SuppressionRecord | None:
        settings = self._settings
        if prev is not None and prev.lifted_at is not None:
            prev = None  # lifted: a new bounce starts afresh
        if prev is not None and prev.in_force(now) and _RANK[reason] < _RANK[prev.reason]:
            log.info("%s for an address already suppressed for a %s: kept as it is", reason, prev.reason)
            return None
        if prev is not None and reason is SuppressionReason.SOFT_BOUNCE and prev.in_force(now):
            return None  # a late DSN of an e-mail sent before: the suppression in force stays as it is
        same = prev is not None and prev.reason is reason
        first_at, count = (prev.first_at, prev.count + 1) if same and prev is not None else (now, 1)
        until: datetime | None = None
        if reason is SuppressionReason.SOFT_BOUNCE:
            counting = (same and prev is not None and not prev.in_force(prev.last_at)
                        and now - prev.first_at <= timedelta(days=settings.soft_bounce_window_days))
            if not counting:  # a new window: the first soft bounce, or the last suppression has ended
                first_at, count = now, 1
            until = now + timedelta(days=settings.soft_bounce_suppress_days) \
                if count >= settings.soft_bounce_limit else now
        status = f"{feedback.status} " if feedback.status else ""
        detail = without_addresses(f"{status}{feedback.diagnostic or ''}".strip() or feedback.source)
        return SuppressionRecord(
            address_digest=digest, reason=reason, first_at=first_at, last_at=now, count=count,
            suppressed_until=until, notification_id=token.notification_id if token else None, order_id=order_id,
            customer_id=customer_id, detail=detail)

    # -- operators ---------------------------------------------------------------------------------------
    def add(self, address: str, by: str, why: str, now: datetime) -> SuppressionRecord:
        """Suppress an address until lifted, saying who and why."""
        digest = address_digest(address)
        with self._lock:
            prev = self._records.get(digest)
            same = prev is not None and prev.lifted_at is None and prev.reason is SuppressionReason.MANUAL
            record = SuppressionRecord(
                address_digest=digest, reason=SuppressionReason.MANUAL,
                first_at=prev.first_at if same and prev is not None else now, last_at=now,
                count=prev.count + 1 if same and prev is not None else 1, suppressed_until=None,
                detail=without_addresses(f"by {by}: {why}"))
            self._publish(record)
        return record

    def remove(self, address: str, by: str, why: str, now: datetime) -> SuppressionRecord | None:
        """Lift the address's suppression, saying who and why; None if it had none in force. The record
        stays (lifted), so that the history of the address is kept."""
        digest = address_digest(address)
        with self._lock:
            prev = self._records.get(digest)
            if prev is None or not prev.in_force(now):
                return None
            record = dataclasses.replace(prev, lifted_at=now, lifted_by=by, lifted_why=without_addresses(why))
            self._publish(record)
        return record

    def of_customer(self, customer_id: str) -> list[str]:
        """The digests whose record names this customer (set from a bounce's VERP token), for an erasure."""
        return sorted(digest for digest, record in self._records.items() if record.customer_id == customer_id)

    def forget(self, address_digest: str) -> None:
        """Erase the address from the list (right to erasure): a tombstone, which compaction turns into nothing.

        Unlike :meth:`remove`, nothing of the address stays, not even who lifted it: the digest, the customer
        and order ids of a record are personal data. Readers drop the address on the tombstone."""
        with self._lock:
            self._send(address_digest, None)
            self._records.pop(address_digest, None)
        log.info("suppression erased")

    # -- the topic ------------------------------------------------------------------------------------------
    def _publish(self, record: SuppressionRecord) -> None:
        """Publish and wait for the acknowledgement; only then does the list in memory change."""
        self._send(record.address_digest, self._codec.encode(record))
        self._records[record.address_digest] = record
        log.info("suppression %s: %s", record.reason, "lifted" if record.lifted_at else record.describe())

    def _send(self, address_digest: str, value: bytes | None) -> None:
        """One record (``None``: a tombstone) for the address, acknowledged by the broker."""
        topic = self._settings.suppressions_topic
        headers = [] if value is None else [("content-type", b"application/vnd.ordernotify.customer-suppression+avro")]
        try:
            if self._producer is None:
                with reaching_broker(self._settings):
                    self._producer = KafkaProducer(**self._settings.kafka_producer_options(), acks="all",
                                                   client_id="ordernotify-suppressions")
            future = self._producer.send(topic, key=address_digest.encode("ascii"), value=value, headers=headers)
            future.get(timeout=self._settings.produce_timeout_s)
        except KafkaError as exc:
            raise SuppressionNotPublished(
                f"{topic} at {self._settings.bootstrap_servers} did not take the suppression: {exc}") from exc

    def close(self) -> None:
        if self._own_producer and self._producer is not None:
            self._producer.close(10)
            self._producer = None


def _changed_at(record: SuppressionRecord) -> datetime:
    return max(record.last_at, record.lifted_at or record.last_at)


def utc_now() -> datetime:
    return datetime.now(UTC)
