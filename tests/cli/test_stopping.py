"""Ctrl-C or SIGTERM of a running ``consume``: a clean stop prints nothing but its own lines, exits 0.

Ctrl-C in a terminal signals the whole process group, the render worker processes included; the
test does the same (the consumer runs in a session of its own, and the group gets the signal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cli.exit_codes import ExitCode
from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Settings
from producers.event_producer import OrderEventProducer
from tests import factories
from tests.integration.fault_support import consume_args

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOISE = ("Traceback", "KeyboardInterrupt", "never retrieved", "Invalid file descriptor", "ERROR", "WARNING")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("attempt", range(3))
def test_a_signalled_consumer_stops_cleanly_and_quietly(
    sig: signal.Signals, attempt: int, settings: Settings, smtp_server: SmtpCapture, tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERNOTIFY_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "consume", *consume_args(settings), "--render-processes", "2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        with OrderEventProducer(settings) as producer:
            for i in range(3):
                producer.send_and_wait(factories.placed_event(order_id=f"STOP-{attempt}-{i}"))
        smtp_server.wait_for(3, timeout_s=60)  # running: joined, rendered in the workers, sent
        os.killpg(process.pid, sig) if sig is signal.SIGINT else process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == ExitCode.OK, stderr
    for noise in NOISE:
        assert noise not in stderr, stderr
