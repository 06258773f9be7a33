"""Python SMTP sinks, run as their own process: ``python -m bench.pysinks stamp|aiosmtpd --port P``.

Both print smtp-sink's counter format (``msg=N`` + CR) so one reader serves all three sinks.

- ``stamp``: a minimal asyncio SMTP server that accepts everything and appends, per message,
  ``<time.time() at end of DATA> <Message-ID>`` to ``--out``: the acceptance timestamps of the
  latency runs (smtp-sink cannot timestamp single messages). It parses only the command lines
  and the Message-ID header, so it stays cheap (~tens of µs per message).
- ``aiosmtpd``: aiosmtpd (the demo's server) accepting and discarding, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
import threading
import time
from typing import Any

_MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*(<[^>\r\n]*>)")


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def tick(self) -> None:
        self.n += 1
        sys.stdout.write(f"msg={self.n}\r")
        sys.stdout.flush()


class _StampProtocol(asyncio.Protocol):
    def __init__(self, counter: _Counter, out: Any) -> None:
        self._counter = counter
        self._out = out
        self._buf = bytearray()
        self._in_data = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        transport.write(b"220 stamp-sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        self._buf += data
        while True:
            if self._in_data:
                end = self._buf.find(b"\r\n.\r\n")
                if end < 0:
                    return
                stamp = time.time()
                head_end = self._buf.find(b"\r\n\r\n", 0, end + 2)
                found = _MESSAGE_ID.search(bytes(self._buf[: head_end if head_end >= 0 else end]))
                del self._buf[: end + 5]
                self._in_data = False
                self._out.write(f"{stamp:.6f} {found.group(1).decode() if found else '-'}\n")
                self._out.flush()
                self._transport.write(b"250 2.0.0 Ok: queued\r\n")
                self._counter.tick()
                continue
            nl = self._buf.find(b"\r\n")
            if nl < 0:
                return
            verb = bytes(self._buf[:4]).upper()
            del self._buf[: nl + 2]
            if verb == b"EHLO":
                self._transport.write(b"250-stamp-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
            elif verb == b"DATA":
                self._in_data = True
                self._transport.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"QUIT":
                self._transport.write(b"221 2.0.0 Bye\r\n")
                self._transport.close()
                return
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                self._transport.write(b"250 2.0.0 Ok\r\n")


async def _serve_stamp(port: int, out_path: str) -> None:
    counter = _Counter()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    with open(out_path, "w") as out:
        server = await loop.create_server(lambda: _StampProtocol(counter, out), "127.0.0.1", port, backlog=1024)
        async with server:
            await stop.wait()


def _serve_aiosmtpd(port: int) -> None:
    from aiosmtpd.controller import Controller

    counter = _Counter()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            counter.tick()
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port, decode_data=False)
    controller.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("stamp", "aiosmtpd"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", default="/dev/null")
    args = parser.parse_args()
    if args.kind == "stamp":
        asyncio.run(_serve_stamp(args.port, args.out))
    else:
        _serve_aiosmtpd(args.port)


if __name__ == "__main__":
    main()
