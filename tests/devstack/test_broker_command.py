"""``python -m devstack.broker``: the dev broker for trying the commands without Docker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main as ordernotify
from devstack import broker as broker_command
from devstack.ports import free_port
from ordernotify.config import Settings
from schemas.codec import EventCodec
from tests.kafka_reading import read_topic

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "schemas" / "examples" / "events.jsonl"


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.mark.integration
def test_starts_with_the_topics_prints_the_address_round_trips_and_stops_on_ctrl_c(
        capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERNOTIFY_")}
    process = subprocess.Popen([sys.executable, "-m", "devstack.broker", "--port", str(port)], cwd=ROOT,
                               env={**env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)  # its own group, as a terminal gives it
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # blocks until the broker is up and the topics exist
        assert first == f"bootstrap servers: 127.0.0.1:{port}\n"

        address = f"127.0.0.1:{port}"
        assert ordernotify(["emit", str(EXAMPLES), "--bootstrap-servers", address]) == 0
        assert "10 sent, 0 refused, 0 failed" in capsys.readouterr().err
        records = read_topic(Settings(bootstrap_servers=address), "orders.events", expected=9)
        assert sorted(EventCodec().decode(r.value).event_type.value for r in records) == [
            "DELIVERY_PROBLEM", "ITEM_OUT_OF_STOCK", "ORDER_CANCELLED", "ORDER_DELIVERED", "ORDER_PLACED",
            "ORDER_SHIPPED", "OUT_FOR_DELIVERY", "PRICE_ERROR", "REFUND_ISSUED"]

        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group gets it
        assert process.wait(timeout=15) == 0
        assert _refused(port)  # the broker went with it
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_port_in_use_is_refused_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert broker_command.main(["--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"port {port} is in use" in err and "--port" in err


@pytest.mark.integration
def test_ctrl_c_stops_it_also_when_a_shell_started_it_in_the_background() -> None:
    """A non-interactive shell starts ``cmd &`` with SIGINT ignored; ``kill -INT`` must still stop it."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "devstack.broker", "--port", str(port), "--no-topics"],
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == f"bootstrap servers: 127.0.0.1:{port}\n"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        assert _refused(port)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
