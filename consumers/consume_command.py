"""``ordernotify consume``: run one consumer-group member until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal

from consumers.service import run_consumer
from ordernotify.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """All consumer settings are the shared ones (see the groups below)."""


def run(args: argparse.Namespace, settings: Settings) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_consumer(settings, stop)

    asyncio.run(main())
    return 0
