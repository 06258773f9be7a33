"""Exit codes as the README's table has them: 3 only for a broker that could not be reached, 1 for a broker
that answered no (authorization, unknown topic...), 2 for a wrong command line (an unreadable FILE)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from kafka.errors import (
    KafkaConfigurationError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from cli.exit_codes import ExitCode
from cli.main import main
from devstack.ports import free_port
from ordernotify.config import Settings
from producers.exceptions import DeliveryFailed

CLOSED = f"127.0.0.1:{free_port()}"


def _failing_with(monkeypatch: pytest.MonkeyPatch, command: str, exc: BaseException) -> None:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        raise exc

    monkeypatch.setattr(f"cli.{command}.run", run)


@pytest.mark.parametrize(
    "exc",
    [TopicAuthorizationFailedError("orders.events"), UnknownTopicOrPartitionError(), KafkaConfigurationError("x")],
    ids=lambda e: type(e).__name__,
)
def test_a_kafka_error_from_a_broker_that_answered_exits_1_in_one_line(
        exc: KafkaError, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _failing_with(monkeypatch, "simulate", exc)
    assert main(["simulate", "--bootstrap-servers", CLOSED]) == ExitCode.REFUSED
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("ordernotify: simulate: ") and CLOSED in lines[0]
    assert "cannot reach" not in lines[0]


def test_a_refusal_names_what_the_broker_answered_in_words(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _failing_with(monkeypatch, "simulate", TopicAuthorizationFailedError("orders.events"))
    main(["simulate", "--bootstrap-servers", CLOSED])
    line = capsys.readouterr().err.strip()
    assert "TOPIC_AUTHORIZATION_FAILED" in line and "not authorized" in line and "orders.events" in line, line


@pytest.mark.parametrize("exc", [KafkaTimeoutError(), KafkaConnectionError("refused"), NodeNotReadyError(1)],
                         ids=lambda e: type(e).__name__)
def test_a_broker_that_could_not_be_reached_exits_3(
        exc: KafkaError, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _failing_with(monkeypatch, "simulate", exc)
    assert main(["simulate", "--bootstrap-servers", CLOSED]) == ExitCode.UNREACHABLE
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_a_project_error_caused_by_a_refusal_exits_1(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    failed = DeliveryFailed("orders.events: not delivered")
    failed.__cause__ = TopicAuthorizationFailedError()
    _failing_with(monkeypatch, "emit", failed)
    assert main(["emit", "--bootstrap-servers", CLOSED]) == ExitCode.REFUSED
    assert capsys.readouterr().err == "ordernotify: emit: orders.events: not delivered\n"


@pytest.mark.parametrize(
    ("command", "reader", "argv"),
    [("status", "collect_status", []), ("history", "read_history", ["--order", "A-1"]),
     ("dlq", "read_dead_letters", ["list"])],
)
@pytest.mark.parametrize(("exc", "code"), [(TopicAuthorizationFailedError(), ExitCode.REFUSED),
                                           (KafkaTimeoutError(), ExitCode.UNREACHABLE)],
                         ids=["refused", "unreachable"])
def test_the_reading_commands_tell_a_refusal_from_an_unreachable_broker(
        command: str, reader: str, argv: list[str], exc: KafkaError, code: ExitCode,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(f"cli.{command}.{reader}", fail)
    if command == "status":  # its consumer would try to bootstrap first
        monkeypatch.setattr("cli.status.KafkaConsumer", lambda **options: _Closable())
    assert main([command, *argv, "--bootstrap-servers", CLOSED]) == code
    assert len(capsys.readouterr().err.splitlines()) == 1


class _Closable:
    def close(self, autocommit: bool = True) -> None:
        pass


@pytest.mark.parametrize("name", ["missing.jsonl", "."], ids=["missing", "a directory"])
def test_emit_of_a_file_it_cannot_read_is_a_usage_error_naming_the_file(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / name
    assert main(["emit", str(path), "--bootstrap-servers", CLOSED]) == ExitCode.USAGE
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "cannot read" in lines[0], lines


def test_emit_whose_producer_cannot_start_exits_1_naming_why(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(**options: object) -> None:
        raise KafkaConfigurationError("sasl_mechanism needs a password")

    monkeypatch.setattr("producers.event_producer.KafkaProducer", refuse)
    assert main(["emit", "--bootstrap-servers", CLOSED]) == ExitCode.REFUSED
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "sasl_mechanism needs a password" in lines[0], lines


def test_emit_whose_producer_cannot_bootstrap_exits_3(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def time_out(**options: object) -> None:
        raise KafkaTimeoutError("Failed to bootstrap")

    monkeypatch.setattr("producers.event_producer.KafkaProducer", time_out)
    assert main(["simulate", "--orders", "1", "--bootstrap-servers", CLOSED]) == ExitCode.UNREACHABLE
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"ordernotify: cannot reach the Kafka broker at {CLOSED} (tried for 10 s); is it running? "
                     "see --bootstrap-servers"]
