"""``ordernotify simulate`` against a fake KafkaProducer."""

from __future__ import annotations

import argparse

import pytest

from cli import simulate
from ordernotify.config import Settings
from producers.event_producer import OrderEventProducer
from tests.producers.test_event_producer import FakeKafkaProducer

SETTINGS = Settings(produce_timeout_s=0.05)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeKafkaProducer:
    kafka = FakeKafkaProducer()
    monkeypatch.setattr(simulate, "OrderEventProducer", lambda settings: OrderEventProducer(settings, producer=kafka))
    return kafka


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    simulate.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_simulate_prints_a_summary(fake: FakeKafkaProducer, capsys: pytest.CaptureFixture[str]) -> None:
    code = simulate.run(_args("--orders", "20", "--seed", "5"), SETTINGS)
    out, _ = capsys.readouterr()
    assert code == 0
    assert len(out.splitlines()) == 1
    assert "ORDER_PLACED 20" in out
    assert f"simulate: {len(fake.sent)} events for 20 orders" in out


def test_simulate_rejects_negative_orders() -> None:
    with pytest.raises(SystemExit):
        _args("--orders", "-1")
