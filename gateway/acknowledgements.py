"""The broker's acknowledgements, handed from the Kafka client's I/O thread to the event loop in bunches.

The client settles a record's handle on its own thread; the request waiting for it waits on the event loop. Waking
the loop costs a write to its self-pipe, a read, and a pass of the loop: once per record, that was a sizeable part
of a webhook's CPU, while one produce response acknowledges the records of many concurrent requests at once. So
settled handles are queued, and the loop is woken only when no wake-up is already pending: it then settles every
queued handle in one pass.
"""

from __future__ import annotations

import asyncio
from collections import deque

from producers.event_producer import DeliveryHandle, DeliveryReport
from producers.exceptions import DeliveryFailed


class AcknowledgementRelay:
    """Futures of one event loop that settle with their handles' outcomes."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._settled: deque[tuple[asyncio.Future[DeliveryReport], DeliveryHandle]] = deque()
        self._wake_up_pending = False

    def acknowledgement(self, handle: DeliveryHandle) -> asyncio.Future[DeliveryReport]:
        """A future of the loop settled with the handle's report, or :class:`DeliveryFailed`. Call on the loop."""
        waiter: asyncio.Future[DeliveryReport] = self.loop.create_future()
        handle.add_done_callback(lambda settled: self._arrived(waiter, settled))
        return waiter

    def _arrived(self, waiter: asyncio.Future[DeliveryReport], handle: DeliveryHandle) -> None:
        # On the Kafka client's I/O thread (or on the loop, if the handle was settled already). The flag is only set
        # here and only cleared by _settle_all before it empties the queue, so no queued handle is left unsettled:
        # seeing it set means that pass has not started yet and will find this handle.
        self._settled.append((waiter, handle))
        if self._wake_up_pending:
            return
        self._wake_up_pending = True
        try:
            self.loop.call_soon_threadsafe(self._settle_all)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    def _settle_all(self) -> None:
        self._wake_up_pending = False
        settled = self._settled
        while settled:
            waiter, handle = settled.popleft()
            if waiter.done():  # the request timed out meanwhile
                continue
            try:
                waiter.set_result(handle.result(timeout=0))
            except DeliveryFailed as exc:
                waiter.set_exception(exc)
