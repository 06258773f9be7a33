"""Closing a kafka-python consumer or admin client without racing its network thread.

kafka-python 3.0's ``KafkaConsumer`` and ``KafkaAdminClient`` run their network event loop in a thread of
their own (``kafka-io-<client_id>``). Their ``close()`` closes every connection's socket from the calling
thread and only then stops that thread (``KafkaNetClient.close``: the connection manager first, the selector
after). A read task of the loop that has just handed a response on (a fetch answered every
``fetch_max_wait_ms``, a heartbeat) and waits for the next one then registers a socket the calling thread has
just closed: the task dies with ``ValueError: Invalid file descriptor: -1`` (or ``'NoneType' object has no
attribute 'recv'``) and ``kafka.net.selector`` logs it as an unhandled exception in a task, traceback and all,
on what was a clean stop.

Stopping the loop first (it runs its ready tasks, leaves ``select`` and its thread is joined) leaves the client
with one thread, the caller's: ``close()`` then sends what it still sends (the LeaveGroup of a group member)
by driving the loop on the calling thread, as kafka-python does for a client without a network thread, and
closes the sockets with nothing else using them. A producer needs none of this: its sender thread is the only
one that drives its network, and it closes its own connections when ``close()`` ends it.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

#: the network thread leaves ``select`` at once when woken; its tasks are short (kafka-python warns at 0.1 s)
IO_STOP_TIMEOUT_MS = 10_000


def stop_network_thread(client: Any) -> None:
    """Stop ``client``'s network thread (and wait for it); nothing if it has none or it already stopped."""
    net = getattr(client, "_net", None)
    stop = getattr(net, "stop", None)
    if callable(stop):
        stop(timeout_ms=IO_STOP_TIMEOUT_MS)


def close_consumer(consumer: Any, **close_options: Any) -> None:
    """``consumer.close(**close_options)`` after its network thread stopped: no socket is closed under a running
    read task."""
    stop_network_thread(consumer)
    consumer.close(**close_options)


def close_admin(admin: Any) -> None:
    """``admin.close()`` after its network thread stopped (the same race as :func:`close_consumer`)."""
    stop_network_thread(admin)
    admin.close()
