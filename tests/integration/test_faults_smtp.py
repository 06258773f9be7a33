"""SMTP faults in-process (real broker, real SMTP server, real state store): 4xx and 5xx replies, and the link
lost between the final "." and the 250 reply. Each test adds a row to the faults table."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from consumers.dead_letters import DETAIL, REASON
from devstack.smtp_capture import DROP_AFTER_DATA, SmtpCapture
from ordernotify.config import Settings
from tests.consumer_runner import ConsumerRunner
from tests.integration.fault_support import FaultResult, order_ids, produce_orders, record, wait_for_orders
from tests.kafka_reading import read_topic

pytestmark = pytest.mark.integration


def test_4xx_is_retried_and_5xx_dead_letters_that_message_only(settings: Settings, smtp_server: SmtpCapture) -> None:
    ids = order_ids("FR", 40)
    smtp_server.replies = ["451 4.3.0 mailbox busy", "452 4.2.2 over quota, try later", "451 4.3.0 mailbox busy",
                           "550 5.1.1 <zoe@example.org>: mailbox unavailable"]
    produce_orders(settings, ids)
    started = time.monotonic()
    with ConsumerRunner(settings) as runner:
        runner.wait_handled(len(ids), timeout_s=60)
        failed = runner.running.metrics.registry.get_sample_value
        transient = sum(failed("ordernotify_emails_failed_total", {"template": "order_placed", "failure_class": c})
                        or 0 for c in ("transient",))
    tally = wait_for_orders(lambda: smtp_server.messages, ids, timeout_s=5)
    (dead,) = read_topic(settings, settings.dlq_topic, expected=1)
    headers = dict(dead.headers)
    missing = [i for i in ids if tally.by_order[i] == 0]
    # The refused e-mail is not expected at the server: it is accounted for on the dead-letter topic.
    lost = len(set(missing) - {dead.key.decode()})
    record(FaultResult("3 SMTP 4xx x3, 5xx x1", len(ids), tally.expected - 1, tally.received, lost,
                       tally.duplicated, 1, round(time.monotonic() - started, 1), "the 5xx one dead-lettered"))
    assert missing == [dead.key.decode()]  # only the refused message is not delivered; the stream went on
    assert headers[REASON] == b"smtp_rejected" and headers[DETAIL].startswith(b"550 5.1.1")
    assert transient == 3
    assert tally.duplicated == 0



@pytest.mark.parametrize("drops", [3])
def test_link_lost_after_data_resends_the_same_message_id(settings: Settings, smtp_server: SmtpCapture,
                                                          drops: int) -> None:
    ids = order_ids("FD", 30)
    smtp_server.replies = [DROP_AFTER_DATA] * drops
    produce_orders(settings, ids)
    started = time.monotonic()
    with ConsumerRunner(settings) as runner:
        runner.wait_handled(len(ids), timeout_s=60)
    tally = wait_for_orders(lambda: smtp_server.messages, ids, timeout_s=5)
    message_ids: dict[str, Counter[str]] = {}
    for message in smtp_server.messages:
        order = message.subject.split()[2].rstrip(":")
        message_ids.setdefault(order, Counter())[str(message.message["Message-ID"])] += 1
    record(FaultResult(f"7 link lost after DATA x{drops}", len(ids), tally.expected, tally.received, tally.lost,
                       tally.duplicated, len(read_topic(settings, settings.dlq_topic, expected=0, timeout_s=1)),
                       round(time.monotonic() - started, 1), "resends carry the first attempt's Message-ID"))
    assert tally.lost == 0
    assert 0 < tally.duplicated <= drops
    doubled = {order: ids_ for order, ids_ in message_ids.items() if sum(ids_.values()) > 1}
    assert doubled and all(len(ids_) == 1 for ids_ in doubled.values()), doubled  # same Message-ID each time
