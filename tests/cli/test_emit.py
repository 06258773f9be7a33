"""``ordernotify emit`` against a fake KafkaProducer."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka.errors import KafkaError
from kafka.producer.future import RecordMetadata
from kafka.structs import TopicPartition

from cli import emit
from cli.exit_codes import ExitCode
from ordernotify.config import Settings
from producers.event_producer import OrderEventProducer
from schemas.events import OrderEvent
from tests.producers.test_event_producer import FakeFuture, FakeKafkaProducer

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"
SETTINGS = Settings(produce_timeout_s=0.05)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeKafkaProducer:
    kafka = FakeKafkaProducer()
    monkeypatch.setattr(emit, "OrderEventProducer",
                        lambda settings, bulk=False: OrderEventProducer(settings, producer=kafka))
    return kafka


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    emit.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_emit_good_file_sends_every_line(fake: FakeKafkaProducer, capsys: pytest.CaptureFixture[str]) -> None:
    code = emit.run(_args(str(EXAMPLES / "events.jsonl")), SETTINGS)
    out, err = capsys.readouterr()
    assert code == 0
    assert len(fake.sent) == 10
    lines = out.splitlines()
    assert lines[0] == "line 1: sent ORDER_PLACED order o-2026-1117 -> orders.events[2]@0"
    assert lines[9] == "line 10: sent preferences customer c-00042 -> customers.preferences[2]@9"
    assert "10 sent, 0 refused, 0 failed" in err
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


def test_emit_missing_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert emit.run(_args("/nonexistent/events.jsonl"), SETTINGS) == 2
    assert capsys.readouterr().err == (
        "ordernotify: emit: cannot read /nonexistent/events.jsonl: No such file or directory\n")


class ScriptedKafkaProducer:
    """Acknowledges nothing until the client waits; then settles everything in flight, newest first
    (out of order), failing the records whose numbers (1-based, in send order) are in ``fail``."""

    def __init__(self, fail: frozenset[int] = frozenset()) -> None:
        self.fail = fail
        self.sent = 0
        self.in_flight: list[tuple[int, _ScriptedFuture]] = []
        self.most_in_flight = 0

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> _ScriptedFuture:
        self.sent += 1
        future = _ScriptedFuture(self, topic, self.sent - 1)
        self.in_flight.append((self.sent, future))
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        return future

    def settle(self) -> None:
        for number, future in reversed(self.in_flight):
            if number in self.fail:
                future.failure(KafkaError("NOT_ENOUGH_REPLICAS"))
            else:
                tp = TopicPartition(future.topic, 1)
                future.success(RecordMetadata(future.topic, 1, tp, future.offset, 0, None, 1, 1, 0))
        self.in_flight.clear()

    def flush(self, timeout: float | None = None) -> None:
        self.settle()

    def close(self, timeout: float | None = None) -> None:
        pass


class _ScriptedFuture(FakeFuture):
    def __init__(self, producer: ScriptedKafkaProducer, topic: str, offset: int) -> None:
        super().__init__()
        self.producer, self.topic, self.offset = producer, topic, offset

    def get(self, timeout: float | None = None) -> object:
        if not self.is_done:
            self.producer.settle()
        return super().get(timeout)


def _mixed_file(tmp_path: Path) -> Path:
    lines = (EXAMPLES / "events.jsonl").read_text(encoding="utf-8").splitlines()
    good = [*lines[:5], lines[-1]]  # one order's five events and the preferences line
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([*good[:3], "{bad", *good[3:]]) + "\n", encoding="utf-8")
    return path


def _run_scripted(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], path: Path,
                  window: int, encoders: int = 0) -> tuple[int, str, str, ScriptedKafkaProducer]:
    kafka = ScriptedKafkaProducer(fail=frozenset({2}))
    # the report alone on stderr: not the producer's own log line, nor a handler another test left behind
    monkeypatch.setattr(logging.getLogger(), "handlers", [logging.NullHandler()])
    monkeypatch.setattr(emit, "OrderEventProducer",
                        lambda settings, bulk=False: OrderEventProducer(settings, producer=kafka))
    code = emit.run(_args(str(path), "--window", str(window), "--encoders", str(encoders)), SETTINGS)
    out, err = capsys.readouterr()
    return code, out, err, kafka


def test_pipelined_emit_reports_in_line_order_whatever_order_the_acknowledgements_come_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = _mixed_file(tmp_path)
    code, out, err, kafka = _run_scripted(monkeypatch, capsys, path, window=1000)
    assert code == 1
    assert kafka.most_in_flight == 6  # every line was handed over before the first acknowledgement
    assert out.splitlines() == [
        "line 1: sent ORDER_PLACED order o-2026-1117 -> orders.events[1]@0",
        "line 3: sent PRICE_ERROR order o-2026-1117 -> orders.events[1]@2",
        "line 5: sent ORDER_SHIPPED order o-2026-1117 -> orders.events[1]@3",
        "line 6: sent ORDER_DELIVERED order o-2026-1117 -> orders.events[1]@4",
        "line 7: sent preferences customer c-00042 -> customers.preferences[1]@5",
    ]
    errors = err.splitlines()
    assert errors[0].startswith("line 2: failed: orders.events: event 0b7e4a91-")
    assert "NOT_ENOUGH_REPLICAS" in errors[0]
    assert errors[1].startswith("line 4: refused: not valid JSON")
    assert errors[-1] == "emit: 5 sent, 1 refused, 1 failed"


@pytest.mark.parametrize("window", [1, 3, 1000])
def test_every_window_gives_the_one_at_a_time_output_and_exit_code(
        window: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = _mixed_file(tmp_path)
    one_at_a_time = _run_scripted(monkeypatch, capsys, path, window=1)
    code, out, err, kafka = _run_scripted(monkeypatch, capsys, path, window=window)
    assert (code, out, err) == one_at_a_time[:3]
    assert kafka.most_in_flight == min(window, 6)


@pytest.mark.parametrize("encoders", [1, 2])
def test_encoding_processes_give_the_one_process_output_and_exit_code(
        encoders: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from producers import line_encoding

    monkeypatch.setattr(line_encoding, "CHUNK_LINES", 2)  # the lines spread over chunks and processes
    path = _mixed_file(tmp_path)
    in_one = _run_scripted(monkeypatch, capsys, path, window=1000)
    code, out, err, _ = _run_scripted(monkeypatch, capsys, path, window=1000, encoders=encoders)
    assert (code, out, err) == in_one[:3]
    assert code == 1 and len(out.splitlines()) == 5


def test_a_large_file_is_encoded_in_other_processes_and_standard_input_never(tmp_path: Path) -> None:
    large = tmp_path / "large.jsonl"
    large.write_bytes(b"\n" * emit.ENCODERS_FROM_BYTES)
    small = tmp_path / "small.jsonl"
    small.write_bytes(b"\n")
    assert emit._encoders(str(large), None) == emit.DEFAULT_ENCODERS
    assert emit._encoders(str(small), None) == 0
    assert emit._encoders(str(small), 3) == 3
    assert emit._encoders("-", 3) == 0  # lines may trickle in: a chunk would hold them back


def _stopped_emit(tmp_path: Path, stop: Callable[[subprocess.Popen[str]], None]) -> tuple[int, str]:
    """``emit --dry-run --encoders 2`` of a file a minute long, in a session of its own, stopped by ``stop`` once it
    runs; its exit code and stderr, read once every holder of its pipes (the encoding processes too) has ended."""
    path = tmp_path / "many.jsonl"
    line = (EXAMPLES / "events.jsonl").read_text(encoding="utf-8").splitlines()[0]
    path.write_text((line + "\n") * 200_000, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "emit", "--dry-run", "--encoders", "2", str(path)],
        cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        assert process.stdout is not None
        process.stdout.readline()  # running: the first line is checked, the encoding processes are at work
        time.sleep(0.3)
        stop(process)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, stderr


@pytest.mark.parametrize("stop", ["SIGINT to the group", "SIGTERM to the group", "SIGTERM", "SIGKILL"])
def test_a_stopped_emit_leaves_no_encoding_process_behind(stop: str, tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group, the encoding processes too; a service manager may send SIGTERM
    to the command alone. Either way it stops with its interrupted exit code, nothing prints a traceback, and the
    encoding processes end: the output pipes, which they hold too, close. Killed outright, the command cannot tell
    them, and they end on their own."""
    sig = signal.Signals[stop.split()[0]]

    def send(process: subprocess.Popen[str]) -> None:
        os.killpg(process.pid, sig) if "group" in stop else process.send_signal(sig)

    code, stderr = _stopped_emit(tmp_path, send)
    assert code == (-signal.SIGKILL if stop == "SIGKILL" else ExitCode.INTERRUPTED), stderr
    for noise in ("Traceback", "KeyboardInterrupt", "Error"):
        assert noise not in stderr, stderr


def test_an_encoding_process_killed_ends_the_command_in_one_line_and_the_other_process_too(tmp_path: Path) -> None:
    """The kernel's out-of-memory killer (or an operator) may end one encoding process alone: the pool then stops
    the others with SIGTERM, which they must not ignore, or the command waits for them for ever. The command
    ends with one line saying what happened, not a traceback."""

    def kill_one_encoder(process: subprocess.Popen[str]) -> None:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) == 2, children
        os.kill(int(children[0]), signal.SIGKILL)

    code, stderr = _stopped_emit(tmp_path, kill_one_encoder)
    assert code == ExitCode.REFUSED, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("ordernotify: emit: an encoding process ended"), stderr


def test_window_must_be_positive() -> None:
    with pytest.raises(SystemExit):
        _args("--window", "0")
    with pytest.raises(SystemExit):
        _args("--encoders", "-1")


def _no_kafka(**options: object) -> None:
    raise AssertionError("a dry run must not create a Kafka client")


@pytest.mark.parametrize("name", ["events.jsonl", "bad.jsonl"])
def test_dry_run_checks_the_file_offline_with_a_real_runs_report_and_exit_code(
        name: str, fake: FakeKafkaProducer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from cli.main import main
    from devstack.ports import free_port

    real_code = emit.run(_args(str(EXAMPLES / name)), SETTINGS)
    real_out, real_err = capsys.readouterr()

    monkeypatch.setattr("producers.event_producer.KafkaProducer", _no_kafka)
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there: a real run could not connect
    code = main(["emit", "--dry-run", str(EXAMPLES / name), "--bootstrap-servers", closed, "--produce-timeout-s", "1"])
    out, err = capsys.readouterr()

    assert code == real_code
    assert err.splitlines()[:-1] == real_err.splitlines()[:-1]  # the same refusals, word for word
    # the same lines go out, named the same way ("line 1: valid ORDER_PLACED order o-2026-1117 -> ...")
    assert [line.split(" -> ")[0] for line in out.splitlines()] == [
        line.split(" -> ")[0].replace(": sent ", ": valid ") for line in real_out.splitlines()]
    assert "nothing sent" in err.splitlines()[-1]


def test_dry_run_reports_each_line_with_its_encoded_size(capsys: pytest.CaptureFixture[str]) -> None:
    from producers.json_lines import parse_line
    from schemas.codec import EventCodec

    assert emit.run(_args(str(EXAMPLES / "events.jsonl"), "--dry-run"), SETTINGS) == 0
    out, err = capsys.readouterr()
    first = parse_line((EXAMPLES / "events.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert isinstance(first, OrderEvent)
    size = len(EventCodec().encode(first))
    assert out.splitlines()[0] == f"line 1: valid ORDER_PLACED order o-2026-1117 -> orders.events ({size} bytes)"
    assert out.splitlines()[9].startswith("line 10: valid preferences customer c-00042 -> customers.preferences (")
    assert err.splitlines() == ["emit: dry run, nothing sent: 10 valid, 0 refused"]


def test_dry_run_refuses_a_relative_time_too_far_away_naming_the_line_and_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from cli.main import main

    first = json.loads((EXAMPLES / "events.jsonl").read_text(encoding="utf-8").splitlines()[0])
    far_past = {**first, "occurred_at": "now-999999999d"}
    far_future = json.loads(json.dumps(first))
    far_future["payload"]["delivery_estimate"]["latest"] = "today+99999999d"
    path = tmp_path / "far.jsonl"
    path.write_text(f"{json.dumps(far_past)}\n{json.dumps(far_future)}\n", encoding="utf-8")

    code = main(["emit", "--dry-run", str(path)])
    _, err = capsys.readouterr()
    assert code == 1
    lines = err.splitlines()
    assert lines[0].startswith("line 1: refused: occurred_at: ") and "out of range" in lines[0]
    assert lines[1].startswith("line 2: refused: payload.delivery_estimate.latest: ") and "out of range" in lines[1]
    assert lines[2] == "emit: dry run, nothing sent: 0 valid, 2 refused"


def test_a_line_that_is_not_utf8_is_refused_naming_the_byte_and_the_others_are_checked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = (EXAMPLES / "events.jsonl").read_text(encoding="utf-8").splitlines()[0].encode("utf-8")
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(good + b"\n" + b'{"event_id": "\xff\xfe"}\n' + good.replace(b"Hartley", b"Hartl\xe9y") + b"\n")
    assert emit.run(_args(str(path), "--dry-run"), SETTINGS) == 1
    out, err = capsys.readouterr()
    assert out.startswith("line 1: valid ORDER_PLACED")
    assert "line 2: refused: not UTF-8 text: byte 0xff at column 15" in err
    assert "line 3: refused: not UTF-8 text: byte 0xe9" in err
    assert "Traceback" not in err
