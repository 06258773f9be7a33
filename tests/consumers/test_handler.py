"""RecordHandler: decode, hand over to the policy, never raise for bad input; how much runs at once."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from consumers.dead_letters import SourceRecord
from consumers.handler import RecordHandler
from consumers.outcomes import DeadLettered, Outcome, Sent
from consumers.policy.notifier import Notifier
from schemas.codec import EventCodec
from schemas.events import OrderEvent
from tests import factories as f


class _CountingCodec(EventCodec):
    def __init__(self) -> None:
        super().__init__()
        self.decoded = 0

    def decode(self, data: bytes) -> OrderEvent:
        event = super().decode(data)
        self.decoded += 1
        return event


class _SlowNotifier:
    """Takes a while per event, like an SMTP send; notes how many records were decoded but unfinished."""

    def __init__(self, codec: _CountingCodec) -> None:
        self.codec = codec
        self.finished = 0
        self.most_decoded_unfinished = 0

    async def on_event(self, event: OrderEvent, record: SourceRecord) -> Outcome:
        self.most_decoded_unfinished = max(self.most_decoded_unfinished, self.codec.decoded - self.finished)
        await asyncio.sleep(0.005)
        self.finished += 1
        return Sent("<id@example>", "order_placed")


class _DeadLetters:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def publish(self, record: SourceRecord, reason: str, detail: str) -> None:
        self.reasons.append(reason)


def _record(value: bytes, offset: int = 0) -> SourceRecord:
    return SourceRecord("order-events", 0, offset, b"key", value, ())


def test_records_wait_undecoded_until_a_slot_is_free() -> None:
    """A batch's records are decoded as slots free up, not all at once in the event loop."""
    codec = _CountingCodec()
    notifier = _SlowNotifier(codec)
    handler = RecordHandler(cast(Notifier, notifier), _DeadLetters(), codec=codec, concurrency=3)
    records = [_record(codec.encode(f.placed_event(order_id=f"o-{i}")), i) for i in range(30)]

    async def run() -> list[Outcome]:
        return await asyncio.gather(*(handler.handle(r) for r in records))

    outcomes = asyncio.run(run())
    assert all(isinstance(o, Sent) for o in outcomes)
    assert codec.decoded == 30 and notifier.finished == 30
    assert notifier.most_decoded_unfinished <= 3


def test_undecodable_bytes_are_dead_lettered_with_their_reason() -> None:
    dead_letters = _DeadLetters()
    handler = RecordHandler(cast(Any, None), dead_letters)
    outcome = asyncio.run(handler.handle(_record(b"\x00\x01not avro")))
    assert isinstance(outcome, DeadLettered)
    assert dead_letters.reasons == [outcome.reason]
