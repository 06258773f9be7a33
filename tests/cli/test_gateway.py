"""``ordernotify gateway`` as a user runs it: a separate process, stopped by a signal, or refusing to start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.exit_codes import ExitCode
from devstack.broker import EmbeddedBroker
from devstack.ports import free_port
from ordernotify.config import Settings
from tests.gateway_runner import SECRET

ROOT = Path(__file__).resolve().parents[2]


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ORDERNOTIFY_")}


def test_without_a_secret_there_is_nothing_to_take_one_line_and_exit_2() -> None:
    result = subprocess.run([sys.executable, "-m", "cli", "gateway", "--bootstrap-servers", "127.0.0.1:1"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT, env=_environment())
    assert result.returncode == ExitCode.USAGE
    (line,) = result.stderr.splitlines()
    assert "ORDERNOTIFY_GATEWAY_WEBHOOK_SECRETS" in line


def test_a_secret_that_is_not_whsec_base64_is_a_setting_error() -> None:
    result = subprocess.run([sys.executable, "-m", "cli", "gateway"], capture_output=True, text=True, timeout=60,
                            cwd=ROOT, env={**_environment(), "ORDERNOTIFY_GATEWAY_WEBHOOK_SECRETS": "hunter2!"})
    assert result.returncode == ExitCode.USAGE
    assert "not whsec_ followed by base64" in result.stderr and "hunter2" not in result.stderr


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signalled_gateway_stops_cleanly(broker: EmbeddedBroker, settings: Settings, sig: signal.Signals,
                                          tmp_path: Path) -> None:
    port = free_port()
    env = {**_environment(), "ORDERNOTIFY_GATEWAY_WEBHOOK_SECRETS": SECRET}
    command = [sys.executable, "-m", "cli", "gateway", "--bootstrap-servers", broker.bootstrap_servers,
               "--events-topic", settings.events_topic, "--gateway-host", "127.0.0.1", "--gateway-port", str(port)]
    with open(tmp_path / "gateway.log", "wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while b"ready: " not in (tmp_path / "gateway.log").read_bytes():
            assert process.poll() is None, (tmp_path / "gateway.log").read_text()
            assert time.monotonic() < deadline, "the gateway did not say it is ready"
            time.sleep(0.1)
        process.send_signal(sig)
        assert process.wait(30) == ExitCode.OK
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = (tmp_path / "gateway.log").read_text()
    assert f"gateway on http://127.0.0.1:{port}" in log and "stopping" in log
    assert "Traceback" not in log
