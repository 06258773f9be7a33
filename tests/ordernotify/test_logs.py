"""Logs: one JSON object per line when asked, no e-mail address and no secret in any line."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import kafka.errors as kafka_errors
import pytest

from ordernotify.config import Secret, Settings
from ordernotify.logs import (
    JsonFormatter,
    KafkaChatterFilter,
    RedactingFilter,
    RedactingFormatter,
    configure_logging,
    redact,
)

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "zoe.unal+orders@example.org"


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """configure_logging replaces the root handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield root
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _handler(formatter: logging.Formatter) -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(formatter)
    return handler, stream


def _log_into(handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger(f"ordernotify.test.{id(handler)}")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    return log


def _fail_with_address() -> None:
    raise ValueError(f"SMTP 550 for <{ADDRESS}>: mailbox unavailable")


def test_json_lines_have_time_level_logger_and_message_and_one_object_per_line() -> None:
    handler, stream = _handler(JsonFormatter())
    log = _log_into(handler)
    log.info("sent %s e-mails\nsecond line", 3)
    log.warning("dead-lettered %s: %s", "orders.events[0]@7", "invalid_event")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # the newline inside a message stays inside its JSON string
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "INFO" and first["logger"] == log.name
    assert first["message"] == "sent 3 e-mails\nsecond line"
    assert first["time"].endswith("+00:00")
    assert second["level"] == "WARNING"


@pytest.mark.parametrize("formatter", [JsonFormatter(), RedactingFormatter("%(levelname)s %(message)s")],
                         ids=["json", "plain"])
def test_addresses_are_redacted_in_messages_arguments_and_tracebacks(formatter: logging.Formatter) -> None:
    handler, stream = _handler(formatter)
    log = _log_into(handler)
    log.warning("refused %s", ADDRESS)
    log.info(f"literal {ADDRESS} in the message")  # noqa: G004 - exactly what must still be redacted
    try:
        _fail_with_address()
    except ValueError:
        log.exception("send to %s failed", "alice@example.org(<bob@example.com>")
    log.info("stack", stack_info=True)
    output = stream.getvalue()
    assert ADDRESS not in output and "@example.org" not in output and "@example.com" not in output
    assert output.count("<email>") >= 4
    assert "ValueError" in output and "mailbox unavailable" in output  # the rest of the traceback stays


def test_redact_keeps_everything_but_the_address() -> None:
    assert redact(f"to {ADDRESS}, cc Zoë.Ünal@exämple.de.") == "to <email>, cc <email>."
    assert redact("order 1234 shipped at 10:00") == "order 1234 shipped at 10:00"


def test_configure_logging_json_to_stderr(root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", as_json=True)
    logging.getLogger("consumers.test").info("e-mail to %s accepted", ADDRESS)
    logging.getLogger("consumers.test").debug("not at INFO")
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "e-mail to <email> accepted"


def test_a_secret_never_shows_its_value() -> None:
    secret = Secret("hunter2-top")
    settings = Settings(smtp_password=secret, sasl_password=Secret("kafka-pw-42"))
    for text in (str(secret), repr(secret), f"{secret}", repr(settings), str(settings.masked()),
                 json.dumps(settings.masked())):
        assert "hunter2-top" not in text and "kafka-pw-42" not in text
    assert secret.reveal() == "hunter2-top"


def test_print_config_masks_passwords_from_the_environment_and_from_files(tmp_path: Path) -> None:
    password_file = tmp_path / "sasl_password"
    password_file.write_text("sasl-from-file-77\n", encoding="utf-8")
    env = {**os.environ, "ORDERNOTIFY_SMTP_PASSWORD": "smtp-from-env-99",
           "ORDERNOTIFY_SASL_PASSWORD_FILE": str(password_file), "ORDERNOTIFY_LOG_JSON": "true"}
    done = subprocess.run([sys.executable, "-m", "cli", "consume", "--print-config"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60, check=True)
    printed = json.loads(done.stdout)
    assert printed["smtp_password"] == printed["sasl_password"] == "Secret('********')"
    for value in ("smtp-from-env-99", "sasl-from-file-77"):
        assert value not in done.stdout and value not in done.stderr



def _kafka_record(name: str, level: int, msg: str, *args: object,
                  exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)


@pytest.mark.parametrize("record", [
    _kafka_record("kafka.coordinator", logging.ERROR, "Heartbeat failed: authorization error: %s",
                  kafka_errors.GroupAuthorizationFailedError()),
    _kafka_record("kafka.net.manager", logging.ERROR, "Connection failed: %s",
                  kafka_errors.SaslAuthenticationFailedError("bad credentials")),
    _kafka_record("kafka.net.connection", logging.WARNING, "%s: SASL re-authentication failed: %s", "<conn>",
                  kafka_errors.SaslAuthenticationFailedError()),
    _kafka_record("kafka.cluster", logging.ERROR, "Topic %s is not authorized for this client", "orders.events"),
    _kafka_record("kafka.producer.sender", logging.ERROR, "%s: Error sending produce request to node %d: %s",
                  "<producer>", 1, kafka_errors.MessageSizeTooLargeError()),
    _kafka_record("kafka.net.manager", logging.ERROR, "Connection failed: %s",
                  kafka_errors.KafkaConnectionError("Handshake failed: CERTIFICATE_VERIFY_FAILED")),
    _kafka_record("kafka.net.selector", logging.ERROR, "Unhandled exception in task %s:", "<task>",
                  exc=ValueError("Invalid file descriptor: -1")),
], ids=["group authorisation", "SASL refused", "re-authentication", "topic authorisation", "produce error", "TLS",
        "unhandled task"])
def test_kafka_python_problems_an_operator_must_see_pass_the_filter(record: logging.LogRecord) -> None:
    assert KafkaChatterFilter().filter(record)


@pytest.mark.parametrize("record", [
    _kafka_record("kafka.net.manager", logging.ERROR, "Connection failed: %s",
                  kafka_errors.KafkaConnectionError("111 ECONNREFUSED")),
    _kafka_record("kafka.net.connection", logging.ERROR, "%s: Connection lost: %s", "<conn>",
                  kafka_errors.KafkaConnectionError()),
    _kafka_record("kafka.net.manager", logging.ERROR, "Bootstrap failed: %s",
                  kafka_errors.KafkaTimeoutError()),
    _kafka_record("kafka.net.manager", logging.ERROR,
                  "Bootstrap attempt to bootstrap-0 failed: 111 ECONNREFUSED (backoff 0.10 secs)"),
    _kafka_record("kafka.net.transport", logging.ERROR, "%s: socket disconnected", "<transport>"),
    _kafka_record("kafka.net.transport", logging.ERROR, "%s: Error receiving network data closing socket",
                  "<transport>", exc=ConnectionResetError(104, "Connection reset by peer")),
    _kafka_record("kafka.coordinator", logging.ERROR, "LeaveGroup request failed: %s",
                  kafka_errors.Cancelled()),
    _kafka_record("kafka.producer.sender", logging.ERROR, "%s: Error sending produce request to node %d: %s",
                  "<producer>", 1, kafka_errors.RequestTimedOutError()),
    _kafka_record("kafka.net.connection", logging.WARNING,
                  "%s: Request timed out after %d ms. Closing connection.", "<conn>", 30000),
], ids=["refused", "lost", "bootstrap timeout", "bootstrap attempt", "disconnected", "reset", "cancelled at close",
        "produce timed out", "request timed out"])
def test_kafka_python_chatter_about_reaching_the_broker_is_dropped(record: logging.LogRecord) -> None:
    assert not KafkaChatterFilter().filter(record)


def test_kafka_errors_are_shown_at_the_default_level_and_everything_at_debug(root_logger: logging.Logger) -> None:
    configure_logging("INFO")
    assert logging.getLogger("kafka.coordinator").isEnabledFor(logging.ERROR)
    assert not logging.getLogger("kafka.coordinator").isEnabledFor(logging.WARNING)
    assert logging.getLogger("kafka.net.connection").isEnabledFor(logging.WARNING)
    assert any(isinstance(f, KafkaChatterFilter) for f in root_logger.handlers[0].filters)
    configure_logging("ERROR")
    assert not logging.getLogger("kafka.net.connection").isEnabledFor(logging.WARNING)
    configure_logging("DEBUG")
    assert logging.getLogger("kafka.net.manager").isEnabledFor(logging.DEBUG)
    assert not any(isinstance(f, KafkaChatterFilter) for f in root_logger.handlers[0].filters)
    configure_logging("INFO")
