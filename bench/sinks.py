"""SMTP sinks the consumers send to: Postfix's smtp-sink (C, accept and discard), the stamp sink
(acceptance time per Message-ID, for latency) and aiosmtpd (comparison). Each runs as its own process
and reports a running counter, read here with a timestamp per update.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

from devstack.ports import free_port, wait_for_port

SMTP_SINK = "/usr/sbin/smtp-sink"
_COUNT = re.compile(rb"(?:mesg|msg)=(\d+)")


class SinkError(RuntimeError):
    pass


class Sink:
    """One sink process on a free loopback port; ``marks`` are (monotonic time, messages accepted so far)."""

    def __init__(self, kind: str, stamp_file: Path | None = None) -> None:
        self.kind = kind
        self.port = free_port()
        self.stamp_file = stamp_file
        self.marks: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._fd = -1

    def _command(self) -> list[str]:
        if self.kind == "smtp-sink":
            if not os.path.exists(SMTP_SINK):
                raise SinkError(f"{SMTP_SINK} missing: install Debian's postfix (make system-deps)")
            user = ["-u", "nobody"] if os.geteuid() == 0 else []  # it refuses to run as root without -u
            return [SMTP_SINK, *user, "-c", "-a", f"127.0.0.1:{self.port}", "1024"]
        out = ["--out", str(self.stamp_file)] if self.stamp_file else []
        return [sys.executable, "-m", "bench.pysinks", self.kind, "--port", str(self.port), *out]

    def start(self) -> Sink:
        # smtp-sink buffers its counter on a pipe and slows down on a terminal, but writes it at once to a
        # regular file: the counter goes to a file that a thread tails.
        self._counter_file = tempfile.NamedTemporaryFile(prefix="bench-sink-", suffix=".count")  # noqa: SIM115
        self._process = subprocess.Popen(self._command(), stdout=self._counter_file, stderr=subprocess.DEVNULL,
                                         cwd=Path(__file__).resolve().parent.parent)
        self._fd = os.open(self._counter_file.name, os.O_RDONLY)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_for_port(self.port, 10)
        return self

    def _read(self) -> None:
        pending = b""
        while True:
            chunk = os.read(self._fd, 1 << 20)
            if not chunk:
                if self._process is None:
                    return
                time.sleep(0.01)
                continue
            now = time.monotonic()
            pending += chunk
            *complete, pending = pending.split(b"\r")
            counts = [int(m.group(1)) for part in complete if (m := _COUNT.search(part))]
            if counts:
                with self._lock:
                    self.marks.append((now, max(counts)))

    @property
    def count(self) -> int:
        with self._lock:
            return self.marks[-1][1] if self.marks else 0

    def wait_for(self, n: int, timeout_s: float, alive: list[subprocess.Popen[bytes]] | None = None) -> bool:
        """Until ``n`` messages were accepted; False on timeout or if a process in ``alive`` died."""
        deadline = time.monotonic() + timeout_s
        while self.count < n:
            if time.monotonic() > deadline:
                return False
            if alive and any(p.poll() is not None for p in alive):
                return False
            time.sleep(0.05)
        return True

    def time_of(self, n: int) -> float:
        """When the counter first reached ``n`` (monotonic)."""
        with self._lock:
            for at, count in self.marks:
                if count >= n:
                    return at
        raise SinkError(f"{self.kind}: never reached {n} messages")

    def rate(self, lo: int, hi: int) -> float:
        """Messages per second between the lo-th and the hi-th acceptance."""
        span = self.time_of(hi) - self.time_of(lo)
        return (hi - lo) / span if span > 0 else float("nan")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self._reader is not None:
            self._reader.join(5)
        os.close(self._fd)
        self._counter_file.close()

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def read_stamps(path: Path) -> dict[str, float]:
    """Message-ID -> acceptance time (epoch seconds) from a stamp sink's file."""
    stamps: dict[str, float] = {}
    for line in path.read_text().splitlines():
        at, _, message_id = line.partition(" ")
        stamps.setdefault(message_id, float(at))
    return stamps
