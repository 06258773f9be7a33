"""A dependency that is not there: every command says so in one line and ends with exit code 3.

Each command runs as a user runs it (a separate process) against a port nothing listens on. What a
newcomer must see: one line on stderr naming what could not be reached and where, no traceback, no line
of the Kafka client's own logging, within the configured connect timeout (2 s here).

The elapsed time is bounded by that timeout plus a margin for starting Python and the command: a bound on a
wait the command is told to make, not a speed claim (a command that waited for another timeout, such as the
30 s --produce-timeout-s, would overrun it)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.exit_codes import ExitCode
from consumers.decide.watchdog import EXIT_STUCK
from devstack.broker import EmbeddedBroker
from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CONNECT_TIMEOUT_S = 2
#: starting Python, importing the command and tearing down, on a busy machine (7 s seen with 2 s waited);
#: still well below the 30 s of --produce-timeout-s
MARGIN_S = 15


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ordernotify(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERNOTIFY_")}
    env["ORDERNOTIFY_KAFKA_CONNECT_TIMEOUT_S"] = str(CONNECT_TIMEOUT_S)
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=env)


def _assert_one_line_naming(result: subprocess.CompletedProcess[str], what: str, address: str) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == ExitCode.UNREACHABLE, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"ordernotify: cannot reach {what} at {address}"), lines[0]
    assert "Traceback" not in result.stderr and "kafka." not in result.stderr


KAFKA_COMMANDS = [
    ["status"],
    ["history", "--order", "A-1"],
    ["dlq", "list"],
    ["dlq", "replay", "--all"],
    ["emit", os.devnull],
    ["simulate", "--orders", "1"],
    ["consume", "--metrics-port", "0"],
    ["relay", "--metrics-port", "0"],
    ["demo", "--orders", "1"],
    ["bounces", "--bounce-domain", "bounces.shop.example", "--verp-secret", "k" * 16, "--bounces-port", "0",
     "--metrics-port", "0"],
    ["gateway", "--gateway-webhook-secrets", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "--gateway-port", "0"],
]


@pytest.mark.parametrize("command", KAFKA_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_broker_that_is_not_there_is_one_line_and_exit_3(command: list[str], tmp_path: Path) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    extra = ["--outbox", str(tmp_path / "outbox")] if command[0] == "demo" else []
    # consume gets a reachable SMTP server, so that the broker is what is missing
    with SmtpCapture() if command[0] == "consume" else contextlib.nullcontext() as smtp:
        if smtp is not None:
            extra = ["--smtp-port", str(smtp.port), "--state-url", f"sqlite:///{tmp_path / 'state.db'}"]
        started = time.monotonic()
        result = ordernotify(*command, *extra, "--bootstrap-servers", address)
        elapsed = time.monotonic() - started
    _assert_one_line_naming(result, "the Kafka broker", address)
    assert f"(tried for {CONNECT_TIMEOUT_S} s)" in result.stderr and "--bootstrap-servers" in result.stderr
    assert elapsed < CONNECT_TIMEOUT_S + MARGIN_S, f"gave up after {elapsed:.1f} s, not the {CONNECT_TIMEOUT_S} s set"


@pytest.mark.integration
def test_consume_with_no_smtp_server_says_so_once_and_goes_on_deciding(
    tmp_path: Path, broker: EmbeddedBroker, settings: Settings,
) -> None:
    """The SMTP side waiting must not stop the deciding side: consume warns once, naming the server, keeps
    running (e-mails wait in the outbox), and stops cleanly."""
    port = _closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERNOTIFY_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "consume", "--smtp-port", str(port), "--smtp-timeout-s", "1",
         "--metrics-port", "0", "--state-url", f"sqlite:///{tmp_path / 'state.db'}",
         "--bootstrap-servers", broker.bootstrap_servers, "--events-topic", settings.events_topic,
         "--sent-topic", settings.sent_topic, "--dlq-topic", settings.dlq_topic,
         "--preferences-topic", settings.preferences_topic, "--group-id", f"g-{port}"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    first = process.stderr.readline()
    assert f"cannot reach the SMTP server at 127.0.0.1:{port}" in first and "wait in the outbox" in first, first
    assert process.poll() is None, "consume ended instead of going on deciding"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == ExitCode.OK
    rest = process.stderr.read()
    assert "Traceback" not in rest and "cannot reach the SMTP server" not in rest, rest


@pytest.mark.parametrize("command", [["forget", "--customer", "C-1"], ["consume", "--metrics-port", "0"]],
                         ids=lambda c: c[0])
def test_a_postgresql_store_that_is_not_there_is_one_line_and_exit_3(command: list[str]) -> None:
    port = _closed_port()
    with SmtpCapture() as smtp:
        smtp_flags = ["--smtp-port", str(smtp.port)] if command[0] == "consume" else []
        result = ordernotify(*command, *smtp_flags, "--state-url", f"postgresql://postgres@127.0.0.1:{port}/test")
    _assert_one_line_naming(result, "the PostgreSQL state store", f"postgresql://postgres@127.0.0.1:{port}/test")
    assert "--state-url" in result.stderr


@pytest.mark.integration
@pytest.mark.parametrize("command", [["status"], ["history", "--order", "A-1"]], ids=lambda c: c[0])
def test_status_and_history_that_succeed_print_no_error_line(
    command: list[str], broker: EmbeddedBroker, settings: Settings,
) -> None:
    result = ordernotify(*command, "--bootstrap-servers", broker.bootstrap_servers, "--events-topic",
                         settings.events_topic, "--sent-topic", settings.sent_topic, "--dlq-topic", settings.dlq_topic)
    assert result.returncode == ExitCode.OK, result.stderr
    assert "ERROR" not in result.stderr and "WARNING" not in result.stderr and "Traceback" not in result.stderr
    assert result.stdout.strip()


def test_a_stuck_consumer_exits_with_the_documented_unreachable_code() -> None:
    assert EXIT_STUCK == ExitCode.UNREACHABLE
