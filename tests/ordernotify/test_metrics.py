"""The metrics container: names, label sets and the exported-name list, each test on a fresh registry."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ordernotify.metrics import DecisionOutcome, FailureClass, GatewayOutcome, Metrics, bounded


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


EXPECTED = {
    # attribute: (family name, type, label names)
    "events_consumed": ("ordernotify_events_consumed", "counter", ("event_type",)),
    "decode_failures": ("ordernotify_decode_failures", "counter", ("reason",)),
    "decisions": ("ordernotify_decisions", "counter", ("outcome", "reason")),
    "emails_sent": ("ordernotify_emails_sent", "counter", ("template",)),
    "emails_failed": ("ordernotify_emails_failed", "counter", ("template", "failure_class")),
    "end_to_end_latency": ("ordernotify_end_to_end_latency_seconds", "histogram", ("template",)),
    "smtp_send_duration": ("ordernotify_smtp_send_duration_seconds", "histogram", ()),
    "consumer_lag": ("ordernotify_consumer_lag_records", "gauge", ("topic", "partition")),
    "dead_letters": ("ordernotify_dead_letters", "counter", ("reason",)),
    "in_flight": ("ordernotify_in_flight_records", "gauge", ()),
    "pending_notifications": ("ordernotify_pending_notifications", "gauge", ()),
    "outbox_entries": ("ordernotify_outbox_entries", "gauge", ()),
    "last_commit": ("ordernotify_last_commit_timestamp_seconds", "gauge", ()),
    "last_email_sent": ("ordernotify_last_email_sent_timestamp_seconds", "gauge", ()),
    "ready": ("ordernotify_ready", "gauge", ()),
    "stuck": ("ordernotify_stuck", "gauge", ()),
    "producer_sent": ("ordernotify_producer_events_sent", "counter", ("event_type",)),
    "producer_refused": ("ordernotify_producer_events_refused", "counter", ("reason",)),
    "feedback": ("ordernotify_feedback", "counter", ("kind", "source")),
    "feedback_rejected": ("ordernotify_feedback_rejected", "counter", ("reason",)),
    "suppressed_sends": ("ordernotify_suppressed_sends", "counter", ("reason",)),
    "gateway_requests": ("ordernotify_gateway_requests", "counter", ("source", "outcome")),
    "gateway_signature_failures": ("ordernotify_gateway_signature_failures", "counter", ("source",)),
    "gateway_produce_latency": ("ordernotify_gateway_produce_latency_seconds", "histogram", ()),
}


@pytest.mark.parametrize("attribute", sorted(EXPECTED))
def test_each_metric_has_its_name_type_and_fixed_labels(metrics: Metrics, attribute: str) -> None:
    name, kind, labels = EXPECTED[attribute]
    collector = getattr(metrics, attribute)
    assert collector._name == name
    assert collector._type == kind
    assert tuple(collector._labelnames) == labels


def test_no_metric_beyond_the_documented_ones(metrics: Metrics) -> None:
    assert {family.name for family in metrics.registry.collect()} == {name for name, _, _ in EXPECTED.values()}


def test_registry_is_fresh_per_container_and_never_the_global_one() -> None:
    from prometheus_client import REGISTRY

    first, second = Metrics(), Metrics()
    assert first.registry is not second.registry and first.registry is not REGISTRY
    first.events_consumed.labels(event_type="ORDER_PLACED").inc()
    assert second.registry.get_sample_value("ordernotify_events_consumed_total", {"event_type": "ORDER_PLACED"}) is None
    assert first.registry.get_sample_value("ordernotify_events_consumed_total", {"event_type": "ORDER_PLACED"}) == 1


def test_prefix_names_every_metric() -> None:
    names = Metrics(CollectorRegistry(), prefix="shopmail").exported_metric_names()
    assert "shopmail_emails_sent_total" in names
    assert not any(n.startswith("ordernotify_") for n in names)


def test_exported_names_include_every_sample_form(metrics: Metrics) -> None:
    names = metrics.exported_metric_names()
    assert {
        "ordernotify_events_consumed_total", "ordernotify_events_consumed_created",
        "ordernotify_end_to_end_latency_seconds_bucket", "ordernotify_end_to_end_latency_seconds_count",
        "ordernotify_end_to_end_latency_seconds_sum", "ordernotify_smtp_send_duration_seconds_bucket",
        "ordernotify_consumer_lag_records", "ordernotify_ready", "ordernotify_producer_events_refused_total",
    } <= names
    assert "ordernotify_events_consumed" not in names  # a counter is only ever exposed with a suffix


def test_exported_names_match_what_the_registry_really_exposes(metrics: Metrics) -> None:
    # Give every labelled metric a child, then compare with the text exposition itself.
    metrics.events_consumed.labels(event_type="ORDER_PLACED").inc()
    metrics.decode_failures.labels(reason="undecodable").inc()
    metrics.count_decision(DecisionOutcome.SENT)
    metrics.email_sent("order_placed", occurred_at_s=100.0, now_s=101.0)
    metrics.count_email_failed("shipped", FailureClass.TRANSIENT)
    with metrics.time_smtp_send():
        pass
    metrics.set_lag({("orders.events", 0): 3})
    metrics.count_dead_letter("render_failed")
    metrics.producer_sent.labels(event_type="ORDER_PLACED").inc()
    metrics.producer_refused.labels(reason="customer.email").inc()
    metrics.count_feedback("hard_bounce", "ses")
    metrics.count_feedback_rejected("bad_signature")
    metrics.count_suppressed_send("hard_bounce")
    metrics.count_gateway_request("events", GatewayOutcome.BAD_SIGNATURE)
    metrics.gateway_produce_latency.observe(0.004)
    text = generate_latest(metrics.registry).decode()
    exposed = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert exposed == metrics.exported_metric_names()


def test_decision_labels_use_the_enum_and_bound_the_reason(metrics: Metrics) -> None:
    metrics.count_decision(DecisionOutcome.SUPPRESSED, "duplicate")
    metrics.count_decision(DecisionOutcome.SUPPRESSED, "zoe@example.org said no")
    metrics.count_decision(DecisionOutcome.SENT)
    get = metrics.registry.get_sample_value
    assert get("ordernotify_decisions_total", {"outcome": "suppressed", "reason": "duplicate"}) == 1
    assert get("ordernotify_decisions_total", {"outcome": "suppressed", "reason": "other"}) == 1
    assert get("ordernotify_decisions_total", {"outcome": "sent", "reason": ""}) == 1
    with pytest.raises(ValueError):
        metrics.count_decision("bounced")  # type: ignore[arg-type]


def test_email_sent_feeds_counter_latency_and_timestamp(metrics: Metrics) -> None:
    metrics.email_sent("delivered", occurred_at_s=1_000.0, now_s=1_030.0)
    get = metrics.registry.get_sample_value
    assert get("ordernotify_emails_sent_total", {"template": "delivered"}) == 1
    assert get("ordernotify_last_email_sent_timestamp_seconds") == 1_030.0
    assert get("ordernotify_end_to_end_latency_seconds_sum", {"template": "delivered"}) == 30.0
    assert get("ordernotify_end_to_end_latency_seconds_bucket", {"template": "delivered", "le": "10.0"}) == 0
    assert get("ordernotify_end_to_end_latency_seconds_bucket", {"template": "delivered", "le": "60.0"}) == 1


def test_end_to_end_buckets_span_50_ms_to_an_hour(metrics: Metrics) -> None:
    metrics.end_to_end_latency.labels(template="shipped").observe(0.01)
    get = metrics.registry.get_sample_value
    labels = {"template": "shipped"}
    assert get("ordernotify_end_to_end_latency_seconds_bucket", {**labels, "le": "0.05"}) == 1
    assert get("ordernotify_end_to_end_latency_seconds_bucket", {**labels, "le": "3600.0"}) == 1
    assert get("ordernotify_end_to_end_latency_seconds_bucket", {**labels, "le": "0.025"}) is None


def test_smtp_timer_observes_failed_calls_too(metrics: Metrics) -> None:
    with pytest.raises(RuntimeError), metrics.time_smtp_send():
        raise RuntimeError("connection lost")
    assert metrics.registry.get_sample_value("ordernotify_smtp_send_duration_seconds_count") == 1


def test_set_lag_replaces_partitions(metrics: Metrics) -> None:
    metrics.set_lag({("orders.events", 0): 5, ("orders.events", 1): 2})
    metrics.set_lag({("orders.events", 1): 7})  # partition 0 was revoked
    get = metrics.registry.get_sample_value
    assert get("ordernotify_consumer_lag_records", {"topic": "orders.events", "partition": "0"}) is None
    assert get("ordernotify_consumer_lag_records", {"topic": "orders.events", "partition": "1"}) == 7


@pytest.mark.parametrize(("value", "expected"), [
    ("render_failed", "render_failed"),
    ("SMTP_Rejected", "smtp_rejected"),
    ("customer.email", "customer.email"),
    ("zoe@example.org", "other"),
    ("550 5.1.1 <zoe@example.org>: user unknown", "other"),
    ("x" * 100, "other"),
])
def test_bounded_label_values(value: str, expected: str) -> None:
    assert bounded(value) == expected


class _FakeFuture:
    """Already acknowledged: the producer's close() has nothing to wait for."""

    is_done = True

    def failed(self) -> bool:
        return False

    def add_callback(self, _callback: object) -> None: ...

    def add_errback(self, _errback: object) -> None: ...


class _FakeKafkaProducer:
    def send(self, *_args: object, **_kwargs: object) -> _FakeFuture:
        return _FakeFuture()

    def flush(self, timeout: float | None = None) -> None: ...


def test_producer_counts_sent_and_refused_events_by_bounded_labels(metrics: Metrics) -> None:
    from ordernotify.config import Settings
    from producers.event_producer import OrderEventProducer
    from producers.exceptions import EventRefused
    from tests import factories

    producer = OrderEventProducer(Settings(), producer=_FakeKafkaProducer(), metrics=metrics)
    try:
        producer.send(factories.placed_event())
        producer.send(factories.shipped_event())
        with pytest.raises(EventRefused):
            producer.send(factories.placed_event(order_url="ftp://shop.example/o/1"))
    finally:
        producer.close()
    get = metrics.registry.get_sample_value
    assert get("ordernotify_producer_events_sent_total", {"event_type": "ORDER_PLACED"}) == 1
    assert get("ordernotify_producer_events_sent_total", {"event_type": "ORDER_SHIPPED"}) == 1
    assert get("ordernotify_producer_events_refused_total", {"reason": "order_url"}) == 1


def test_gateway_requests_count_signature_failures_apart_and_bound_the_source(metrics: Metrics) -> None:
    metrics.count_gateway_request("shopify", GatewayOutcome.BAD_SIGNATURE)
    metrics.count_gateway_request("shopify", GatewayOutcome.ACCEPTED)
    metrics.count_gateway_request("zoe@example.org", GatewayOutcome.ACCEPTED)
    get = metrics.registry.get_sample_value
    assert get("ordernotify_gateway_requests_total", {"source": "shopify", "outcome": "bad_signature"}) == 1
    assert get("ordernotify_gateway_signature_failures_total", {"source": "shopify"}) == 1
    assert get("ordernotify_gateway_requests_total", {"source": "other", "outcome": "accepted"}) == 1
    with pytest.raises(ValueError):
        metrics.count_gateway_request("events", "lost")  # type: ignore[arg-type]
