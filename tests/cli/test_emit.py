"""``ordernotify emit`` against a fake KafkaProducer."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cli import emit
from ordernotify.config import Settings
from producers.event_producer import OrderEventProducer
from tests.producers.test_event_producer import FakeKafkaProducer

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
SETTINGS = Settings(produce_timeout_s=0.05)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeKafkaProducer:
    kafka = FakeKafkaProducer()
    monkeypatch.setattr(emit, "OrderEventProducer", lambda settings: OrderEventProducer(settings, producer=kafka))
    return kafka


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    emit.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_emit_good_file_sends_every_line(fake: FakeKafkaProducer, capsys: pytest.CaptureFixture[str]) -> None:
    code = emit.run(_args(str(EXAMPLES / "events.jsonl")), SETTINGS)
    out, err = capsys.readouterr()
    assert code == 0
    assert len(fake.sent) == 6
    lines = out.splitlines()
    assert lines[0] == "line 1: sent ORDER_PLACED order o-2026-1117 -> orders.events[2]@0"
    assert lines[5] == "line 6: sent preferences customer c-00042 -> customers.preferences[2]@5"
    assert "6 sent, 0 refused, 0 failed" in err
    assert "@example" not in out + err


def test_emit_bad_file_refuses_every_line(fake: FakeKafkaProducer, capsys: pytest.CaptureFixture[str]) -> None:
    code = emit.run(_args(str(EXAMPLES / "bad.jsonl")), SETTINGS)
    out, err = capsys.readouterr()
    assert code == 1
    assert fake.sent == []
    assert out == ""
    assert "line 3: refused: payload.items[0].quantity: must be positive, not -1" in err.splitlines()
    assert "line 4: refused: event_type: unknown value 'ORDER_LOST'" in err
    assert ("line 5: refused: payload.total: total 58.87 \u2260 subtotal 53.97 \u2212 discount 0.00 "
            "+ shipping_cost 4.90 + tax 9.40 = 68.27 EUR (tax added: prices_include_tax is false); "
            "with prices_include_tax true it would add up") in err.splitlines()


def test_emit_reports_failed_delivery(fake: FakeKafkaProducer, capsys: pytest.CaptureFixture[str]) -> None:
    fake.mode = "error"
    code = emit.run(_args(str(EXAMPLES / "events.jsonl")), SETTINGS)
    _, err = capsys.readouterr()
    assert code == 1
    assert "line 1: failed:" in err


def test_emit_reads_stdin(fake: FakeKafkaProducer, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    text = (EXAMPLES / "events.jsonl").read_text(encoding="utf-8").splitlines()[0] + "\n{bad\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code = emit.run(_args(), SETTINGS)
    out, err = capsys.readouterr()
    assert code == 1
    assert out.startswith("line 1: sent ORDER_PLACED")
    assert "line 2: refused: not valid JSON" in err


def test_emit_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert emit.run(_args("/nonexistent/events.jsonl"), SETTINGS) == 1
    assert "cannot read" in capsys.readouterr().err
