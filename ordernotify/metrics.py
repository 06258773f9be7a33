"""Every Prometheus metric ordernotify exports, defined once, with fixed label sets.

The container takes an explicit :class:`CollectorRegistry` (a fresh one when
none is given, never the process-global default), so tests and several
consumers in one process never share counters. Labels carry only bounded
values -- event types, template names, reason codes, topic-partitions --
never order ids, customer ids or e-mail addresses: a label value is a new
time series, and personal data must not leak into the monitoring system.

Names follow Prometheus conventions: ``ordernotify_`` prefix, base units
(``_seconds``, ``_records``), ``_total`` on counters.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# From a quick 50 ms mail up to an hour: coalescing windows and quiet hours delay some mails on purpose.
END_TO_END_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
# From a broker on the same host (a few ms) to the gateway's answer timeout.
PRODUCE_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SMTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_LABEL_VALUE = re.compile(r"^[a-z0-9_.-]{0,48}$")
OTHER = "other"


class DecisionOutcome(StrEnum):
    """What the notification policy decided for one event."""

    SENT = "sent"
    SUPPRESSED = "suppressed"
    HELD = "held"
    COALESCED = "coalesced"
    THROTTLED = "throttled"
    DEAD_LETTERED = "dead_lettered"


class FailureClass(StrEnum):
    """Why an e-mail did not go out: retried later, refused for good, out of retries, or not renderable."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"
    EXHAUSTED = "exhausted"
    RENDER = "render"


class GatewayOutcome(StrEnum):
    """How the webhook gateway answered one request."""

    ACCEPTED = "accepted"  # 202: the broker acknowledged its events
    UNMAPPED = "unmapped"  # 200: a platform's webhook with nothing to tell a customer
    BAD_SIGNATURE = "bad_signature"  # 401
    MALFORMED = "malformed"  # 400: not JSON, not UTF-8, not what the platform sends
    INVALID = "invalid"  # 400: an event that breaks the contract (the answer names the field)
    NOT_CONFIGURED = "not_configured"  # 404: the source's secret is not set
    TOO_LARGE = "too_large"  # 413
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # 415
    UNAVAILABLE = "unavailable"  # 503: the broker did not acknowledge in time


def bounded(value: str) -> str:
    """A label value that cannot carry personal data or explode cardinality.

    Reason codes and template names are short snake_case identifiers; anything
    else (an exception message, an address that slipped through) becomes ``other``.
    """
    text = value.strip().lower()
    return text if _LABEL_VALUE.match(text) else OTHER


class Metrics:
    """The consumer's and the producer's metrics on one registry.

    Attribute names are the API the consumer loop, handler and producer use;
    the exported names are in :meth:`exported_metric_names` and the README.
    """

    def __init__(self, registry: CollectorRegistry | None = None, prefix: str = "ordernotify") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.prefix = prefix
        r = self.registry
        p = prefix
        # -- consuming ------------------------------------------------------
        self.events_consumed = Counter(
            f"{p}_events_consumed", "Order events decoded from the events topic, by event type.",
            ["event_type"], registry=r)
        self.decode_failures = Counter(
            f"{p}_decode_failures", "Records that could not be decoded into an order event, by reason.",
            ["reason"], registry=r)
        self.decisions = Counter(
            f"{p}_decisions", "Notification policy decisions, by outcome and reason ('' when none).",
            ["outcome", "reason"], registry=r)
        # -- sending --------------------------------------------------------
        self.emails_sent = Counter(
            f"{p}_emails_sent", "E-mails accepted by the SMTP server, by template.", ["template"], registry=r)
        self.emails_failed = Counter(
            f"{p}_emails_failed",
            "E-mail attempts that failed, by template and failure class (transient, permanent, exhausted, render).",
            ["template", "failure_class"], registry=r)
        self.end_to_end_latency = Histogram(
            f"{p}_end_to_end_latency_seconds",
            "From the event's occurred_at to the SMTP server's acceptance of its e-mail.",
            ["template"], buckets=END_TO_END_BUCKETS, registry=r)
        self.smtp_send_duration = Histogram(
            f"{p}_smtp_send_duration_seconds", "Duration of one SMTP send (one attempt, DATA included).",
            buckets=SMTP_BUCKETS, registry=r)
        self.last_email_sent = Gauge(
            f"{p}_last_email_sent_timestamp_seconds", "Unix time the SMTP server last accepted an e-mail.",
            registry=r)
        # -- Kafka progress -------------------------------------------------
        self.consumer_lag = Gauge(
            f"{p}_consumer_lag_records", "Records between the committed (or current) offset and the log end.",
            ["topic", "partition"], registry=r)
        self.dead_letters = Counter(
            f"{p}_dead_letters", "Records written to the dead-letter topic, by reason.", ["reason"], registry=r)
        self.in_flight = Gauge(
            f"{p}_in_flight_records", "Outbox entries this consumer holds: being rendered, sent or dead-lettered.",
            registry=r)
        self.outbox_entries = Gauge(
            f"{p}_outbox_entries", "Outbox entries not yet done (ready, sending, failed): work between the stages.",
            registry=r)
        self.pending_notifications = Gauge(
            f"{p}_pending_notifications", "Notifications waiting in a coalescing window or quiet hours.",
            registry=r)
        self.last_commit = Gauge(
            f"{p}_last_commit_timestamp_seconds", "Unix time of the last successful offset commit.", registry=r)
        self.ready = Gauge(
            f"{p}_ready", "1 when the consumer has joined its group and broker and SMTP are reachable, else 0.",
            registry=r)
        self.stuck = Gauge(
            f"{p}_stuck", "1 when the watchdog saw no offset commit for too long while records were waiting.",
            registry=r)
        # -- bounces, complaints and the suppression list ------------------
        self.feedback = Counter(
            f"{p}_feedback", "Bounces, complaints and auto-replies received, by kind (hard_bounce, soft_bounce, "
            "complaint, auto_reply, unknown) and source (dsn, arf, ses, postmark, mailgun...).",
            ["kind", "source"], registry=r)
        self.feedback_rejected = Counter(
            f"{p}_feedback_rejected", "Bounces and webhooks refused unapplied, by reason (forged, "
            "recipient_mismatch, too_large, bad_signature, malformed).", ["reason"], registry=r)
        self.suppressed_sends = Counter(
            f"{p}_suppressed_sends", "E-mails not sent because their address is on the suppression list, by the "
            "suppression's reason (hard_bounce, soft_bounce, complaint, manual).", ["reason"], registry=r)
        # -- producing (when the producer runs as a service) ---------------
        self.producer_sent = Counter(
            f"{p}_producer_events_sent", "Order events handed to Kafka by the producer, by event type.",
            ["event_type"], registry=r)
        self.producer_refused = Counter(
            f"{p}_producer_events_refused", "Events the producer refused before sending, by reason.",
            ["reason"], registry=r)
        # -- the webhook gateway -------------------------------------------
        self.gateway_requests = Counter(
            f"{p}_gateway_requests", "Webhook gateway requests, by source (events, shopify, woocommerce, saleor) "
            "and outcome (accepted, unmapped, bad_signature, malformed, invalid, too_large, unavailable...).",
            ["source", "outcome"], registry=r)
        self.gateway_signature_failures = Counter(
            f"{p}_gateway_signature_failures", "Gateway requests refused for a missing, wrong or expired signature, "
            "by source.", ["source"], registry=r)
        self.gateway_produce_latency = Histogram(
            f"{p}_gateway_produce_latency_seconds", "From handing a request's events to the producer to the "
            "broker's acknowledgement of all of them, failures and timeouts included.", buckets=PRODUCE_BUCKETS,
            registry=r)

    # -- small helpers for the call sites ---------------------------------

    def count_decision(self, outcome: DecisionOutcome, reason: str = "") -> None:
        self.decisions.labels(outcome=DecisionOutcome(outcome).value, reason=bounded(reason) if reason else "").inc()

    def count_email_failed(self, template: str, failure_class: FailureClass) -> None:
        self.emails_failed.labels(template=bounded(template), failure_class=FailureClass(failure_class).value).inc()

    def count_feedback(self, kind: str, source: str) -> None:
        self.feedback.labels(kind=bounded(kind), source=bounded(source)).inc()

    def count_feedback_rejected(self, reason: str) -> None:
        self.feedback_rejected.labels(reason=bounded(reason)).inc()

    def count_gateway_request(self, source: str, outcome: GatewayOutcome) -> None:
        self.gateway_requests.labels(source=bounded(source), outcome=GatewayOutcome(outcome).value).inc()
        if outcome is GatewayOutcome.BAD_SIGNATURE:
            self.gateway_signature_failures.labels(source=bounded(source)).inc()

    def count_dead_letter(self, reason: str) -> None:
        self.dead_letters.labels(reason=bounded(reason)).inc()

    def count_suppressed_send(self, reason: str) -> None:
        self.suppressed_sends.labels(reason=bounded(reason)).inc()

    def email_sent(self, template: str, occurred_at_s: float | None = None, now_s: float | None = None) -> None:
        """Count an accepted e-mail; ``occurred_at_s`` (Unix seconds) feeds the end-to-end histogram."""
        now = time.time() if now_s is None else now_s
        self.emails_sent.labels(template=bounded(template)).inc()
        self.last_email_sent.set(now)
        if occurred_at_s is not None:
            self.end_to_end_latency.labels(template=bounded(template)).observe(max(0.0, now - occurred_at_s))

    @contextmanager
    def time_smtp_send(self) -> Iterator[None]:
        """Observe one SMTP call's duration, failed calls included."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.smtp_send_duration.observe(time.perf_counter() - start)

    def set_lag(self, lag: dict[tuple[str, int], int]) -> None:
        """Replace the lag gauges by ``{(topic, partition): records}``; revoked partitions disappear."""
        self.consumer_lag.clear()
        for (topic, partition), records in lag.items():
            self.consumer_lag.labels(topic=topic, partition=str(partition)).set(records)

    def exported_metric_names(self) -> set[str]:
        """Every sample name this registry can expose, whether or not a labelled child exists yet.

        Counters expose ``_total`` and ``_created``; histograms ``_bucket``,
        ``_count``, ``_sum`` and ``_created``; gauges their own name. Used to
        check that dashboards and alert rules name only metrics that exist.
        """
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("", "_count", "_sum", "_created"),
            "gauge": ("",),
        }
        names: set[str] = set()
        for family in self.registry.collect():
            names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        return names
