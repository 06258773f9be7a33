"""Long-running commands run a service until SIGTERM or Ctrl-C asks it to stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable


def run_until_signalled(service: Callable[[asyncio.Event], Awaitable[object]]) -> None:
    """Run ``service(stop)`` in a new event loop; SIGTERM and SIGINT set ``stop``, and the service ends itself
    (finishing what is in flight) rather than being interrupted."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await service(stop)

    asyncio.run(main())
