"""A Kafka broker that cannot be reached at start, told as one line a user can act on.

kafka-python clients bootstrap in their constructor and raise ``KafkaTimeoutError`` after
``--kafka-connect-timeout-s``; no other call of theirs bootstraps. Wrapping the constructors is therefore
enough to tell "not reachable" from every later Kafka error, which the commands report as their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from kafka.errors import KafkaConnectionError, KafkaTimeoutError

from ordernotify.config import Settings
from ordernotify.errors import DependencyUnreachable

BOOTSTRAP_FAILURES = (KafkaTimeoutError, KafkaConnectionError)


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
