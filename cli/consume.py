"""``ordernotify consume``: run one consumer-group member until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from cli.signals import run_until_signalled
from consumers.decide.watchdog import EXIT_STUCK, exit_if_still_running
from consumers.deliver.smtp_sender import SmtpSender
from consumers.service import run_consumer
from ordernotify.config import Settings
from ordernotify.errors import DependencyUnreachable

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """All consumer settings are the shared ones (see the groups below)."""


def run(args: argparse.Namespace, settings: Settings) -> int:
    """0 after SIGTERM/SIGINT; :data:`EXIT_STUCK` when the watchdog stopped a stuck consumer (restart it)."""
    # Renders (CPU-bound, in worker threads) share the GIL with the event loop and the thread recording
    # SMTP outcomes; at the default 5 ms switch interval an accepted e-mail's outcome waits several
    # slices, and that wait is the window in which a crash duplicates an e-mail (tests/integration/README.md).
    sys.setswitchinterval(0.001)

    stuck: list[bool] = []

    def on_stuck() -> None:
        stuck.append(True)
        exit_if_still_running(SHUTDOWN_BOUND_S)

    async def consume(stop: asyncio.Event) -> None:
        try:  # a wrong --smtp-host is told now, not after a first e-mail; deciding goes on meanwhile
            await SmtpSender(settings).check_reachable()
        except DependencyUnreachable as exc:
            log.warning("%s; e-mails wait in the outbox until it answers", exc)
        await run_consumer(settings, stop, on_stuck=on_stuck)

    try:
        run_until_signalled(consume)
    except Exception:
        if not stuck:
            raise
        log.exception("the stuck consumer's shutdown failed")  # a final commit to a broker in trouble
    return EXIT_STUCK if stuck else 0


SHUTDOWN_BOUND_S = 30.0  # in-flight sends get 20 s, then commit and close; beyond this a stuck process is ended
