"""A Kafka broker that cannot be reached at start, told as one line a user can act on.

kafka-python clients bootstrap in their constructor and raise ``KafkaTimeoutError`` after
``--kafka-connect-timeout-s``; no other call of theirs bootstraps. Wrapping the constructors is therefore
enough to tell "not reachable" from every later Kafka error, which the commands report as their own.

Of those later errors, only the ones that say the broker was not reached (a timeout, a connection refused or
lost, a node not connected) mean "start again once it is back"; any other is the broker's answer
(authorization, unknown topic...) or a client setting, which waiting does not fix: :func:`is_unreachable`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kafka.errors import (
    BrokerResponseError,
    Cancelled,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)

from ordernotify.config import Settings
from ordernotify.errors import DependencyUnreachable
from ordernotify.retry import Backoff

BOOTSTRAP_FAILURES = (KafkaTimeoutError, KafkaConnectionError)
#: a Kafka call that failed because no broker answered it, at start or later
UNREACHED = (*BOOTSTRAP_FAILURES, NodeNotReadyError)
#: what a consumer's poll or commit lets out while no broker answers: besides those, a request the client gave up
#: on (no answer within its request timeout: a frozen broker) or cancelled with its closed connection, which
#: kafka-python raises from its wait for fresh metadata while it looks for the group's coordinator
WAITED_OUT = (*UNREACHED, RequestTimedOutError, Cancelled)
#: no successful poll for this long: /readyz of a consumer or a relay says the broker is not reachable
BROKER_SILENCE_S = 30.0
#: a poll no broker answered: polled again this soon, so that work goes on soon after the broker is back
POLL_BACKOFF = Backoff(first_s=0.5, cap_s=5.0)


def broker_unreachable(settings: Settings, waited_s: float | None = None) -> DependencyUnreachable:
    """The error for a broker that did not answer within ``waited_s`` (default: the whole connect timeout)."""
    waited = settings.kafka_connect_timeout_s if waited_s is None else waited_s
    return DependencyUnreachable("the Kafka broker", settings.bootstrap_servers, waited, "--bootstrap-servers")


@contextmanager
def reaching_broker(settings: Settings) -> Iterator[None]:
    """Around a kafka-python client's constructor: a bootstrap failure becomes :class:`DependencyUnreachable`."""
    started = time.monotonic()
    try:
        yield
    except BOOTSTRAP_FAILURES as exc:
        raise broker_unreachable(settings, time.monotonic() - started) from exc


def is_bootstrap_failure(exc: BaseException) -> bool:
    """True for a client that never reached the broker, also when a project error wraps that failure."""
    return isinstance(exc, BOOTSTRAP_FAILURES) or isinstance(exc.__cause__, BOOTSTRAP_FAILURES)


def is_unreachable(exc: BaseException) -> bool:
    """True for a Kafka error that means no broker answered (also when a project error wraps it); False for
    one a broker answered with, or a client setting it refused."""
    return isinstance(exc, UNREACHED) or isinstance(exc.__cause__, UNREACHED)


def kafka_error_text(exc: KafkaError) -> str:
    """One line for a Kafka error: a broker's answer by its name and meaning, not only its number."""
    if isinstance(exc, BrokerResponseError) and exc.message:
        detail = f" ({', '.join(str(arg) for arg in exc.args)})" if exc.args else ""
        text = f"the broker answered {exc.message}{detail}: {exc.description or ''}"
    else:
        text = str(exc)
    return " ".join(text.split())


def poll_or_unreachable(consumer: Any, timeout_ms: int, max_records: int, bootstrap_servers: str) -> dict[Any, Any]:
    """``consumer.poll``, with an error saying no broker answered raised as :class:`DependencyUnreachable`
    (retriable: the one retry helper waits it out).

    kafka-python waits out a lost broker inside poll, mostly; a few paths raise instead (a coordinator lookup
    whose metadata refresh finds no broker, a heartbeat task that failed), and one of those once ended a
    consumer while its broker restarted."""
    started = time.monotonic()
    try:
        batch: dict[Any, Any] = consumer.poll(timeout_ms, max_records)
    except WAITED_OUT as exc:
        raise DependencyUnreachable("the Kafka broker", bootstrap_servers, time.monotonic() - started,
                                    "--bootstrap-servers", reason=type(exc).__name__) from exc
    return batch
