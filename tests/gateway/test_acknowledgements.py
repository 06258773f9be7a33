"""The broker's acknowledgements reach the requests waiting on the event loop, many per wake-up of the loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from kafka.errors import KafkaError
from kafka.future import Future

from gateway.acknowledgements import AcknowledgementRelay
from producers.event_producer import DeliveryHandle, DeliveryReport
from producers.exceptions import DeliveryFailed


class _Metadata:
    def __init__(self, offset: int) -> None:
        self.topic, self.partition, self.offset = "orders.events", 0, offset


class _Future(Future):
    """kafka-python's record future, settled by the test as the client's I/O thread would."""

    def get(self, timeout: float | None = None) -> object:
        if self.failed():
            raise self.exception
        return self.value


def _handle(number: int) -> tuple[DeliveryHandle, _Future]:
    future = _Future()
    return DeliveryHandle(future, "orders.events", f"O-{number}", f"event-{number}", 1.0), future


def _in_thread(action: Callable[[], None]) -> None:
    thread = threading.Thread(target=action)
    thread.start()
    thread.join()


async def test_acknowledgements_settled_together_wake_the_loop_once() -> None:
    loop = asyncio.get_running_loop()
    relay = AcknowledgementRelay(loop)
    handles = [_handle(n) for n in range(5)]
    waiters = [relay.acknowledgement(handle) for handle, _ in handles]
    wake_ups = 0
    real = loop.call_soon_threadsafe

    def counted(callback: Callable[..., object], *args: object) -> asyncio.Handle:
        nonlocal wake_ups
        wake_ups += 1
        return real(callback, *args)

    loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
    try:
        _in_thread(lambda: [future.success(_Metadata(n)) for n, (_, future) in enumerate(handles)])
        reports = await asyncio.wait_for(asyncio.gather(*waiters), 5)
    finally:
        del loop.call_soon_threadsafe
    assert reports == [DeliveryReport("orders.events", 0, n, f"event-{n}") for n in range(5)]
    assert wake_ups == 1


async def test_a_failed_delivery_fails_its_waiter_only_and_a_timed_out_waiter_is_left_alone() -> None:
    relay = AcknowledgementRelay(asyncio.get_running_loop())
    (failing, failing_future), (gone, gone_future), (fine, fine_future) = (_handle(n) for n in range(3))
    failed, abandoned, acknowledged = (relay.acknowledgement(h) for h in (failing, gone, fine))
    abandoned.cancel()  # its request timed out meanwhile
    _in_thread(lambda: (failing_future.failure(KafkaError("NOT_ENOUGH_REPLICAS")), gone_future.success(_Metadata(1)),
                        fine_future.success(_Metadata(2))))
    with pytest.raises(DeliveryFailed):
        await asyncio.wait_for(failed, 5)
    assert (await asyncio.wait_for(acknowledged, 5)).offset == 2
    assert abandoned.cancelled()


async def test_a_handle_settled_before_it_is_awaited_is_answered() -> None:
    relay = AcknowledgementRelay(asyncio.get_running_loop())
    handle, future = _handle(7)
    future.success(_Metadata(7))
    assert (await asyncio.wait_for(relay.acknowledgement(handle), 5)).event_id == "event-7"
