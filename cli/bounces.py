"""``ordernotify bounces``: take bounces and complaints from the MTA (LMTP) and the providers' webhooks, and
keep the suppression list, until SIGTERM or Ctrl-C.

Point the MTA's transport for --bounce-domain at --bounces-host:--bounces-port (Postfix:
``transport_maps`` with ``bounces.example lmtp:127.0.0.1:8024``).
"""

from __future__ import annotations

import argparse
import logging
import sys

from cli.exit_codes import ExitCode
from cli.signals import run_until_signalled
from feedback.service import run_bounces
from ordernotify.config import Settings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """All its settings are the shared ones (see the groups below)."""


def run(args: argparse.Namespace, settings: Settings) -> int:
    """0 after SIGTERM/SIGINT: bounces being taken finish, the MTA retries those it had not handed over."""
    if not settings.bounce_domain:
        print("ordernotify: bounces: --bounce-domain is empty, so no bounce carries a token to read; set it (and "
              "ORDERNOTIFY_VERP_SECRET) for the consumers and this command alike", file=sys.stderr)
        return ExitCode.USAGE

    run_until_signalled(lambda stop: run_bounces(settings, stop))
    return 0
