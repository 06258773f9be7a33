"""Wire the gateway together from settings: used by ``ordernotify gateway`` and the tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from gateway.adapters.base import adapters_from_settings
from gateway.app import gateway_app
from gateway.publishing import EventPublisher
from ordernotify.config import Settings
from ordernotify.metrics import Metrics

log = logging.getLogger(__name__)

# In-flight requests get this long to finish after a stop: the answer timeout bounds each of them anyway.
SHUTDOWN_GRACE_S = 1.0


@dataclass(frozen=True)
class RunningGateway:
    """What a running gateway exposes to the command and the tests."""

    port: int
    metrics: Metrics
    publisher: EventPublisher

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def run_gateway(settings: Settings, stop: asyncio.Event,
                      on_start: Callable[[RunningGateway], None] | None = None) -> None:
    """Serve until ``stop`` is set; then stop taking requests, answer those in flight and flush the producer."""
    metrics = Metrics()
    publisher = await asyncio.to_thread(EventPublisher.connect, settings, metrics)
    try:
        adapters = adapters_from_settings(settings)
        app = gateway_app(settings, publisher, adapters, metrics)
        runner = web.AppRunner(app, access_log=None,
                               shutdown_timeout=settings.gateway_answer_timeout_s + SHUTDOWN_GRACE_S)
        await runner.setup()
        try:
            site = web.TCPSite(runner, settings.gateway_host, settings.gateway_port)
            await site.start()
            port = _bound_port(runner, settings.gateway_port)
            publisher.start()
            log.info("gateway on http://%s:%d: /v1/events %s, platforms: %s; /metrics, /healthz, /readyz",
                     settings.gateway_host, port, "on" if settings.gateway_webhook_secrets else "off",
                     ", ".join(sorted(adapters)) or "none")
            if on_start is not None:
                on_start(RunningGateway(port, metrics, publisher))
            await stop.wait()
            log.info("stopping: no new requests taken, answering those in flight")
        finally:
            await runner.cleanup()
    finally:
        await publisher.close()


def _bound_port(runner: web.AppRunner, asked: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked
