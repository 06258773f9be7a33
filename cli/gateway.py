"""``ordernotify gateway``: take signed order webhooks over HTTP and publish them to the events topic, until
SIGTERM or Ctrl-C.

POST /v1/events takes ordernotify's own JSON event, signed the Standard Webhooks way with a secret of
ORDERNOTIFY_GATEWAY_WEBHOOK_SECRETS; POST /v1/platforms/NAME takes a platform's webhook once its secret is set.
A sender hears 202 only after the broker acknowledged the event, and 503 with Retry-After when it did not in time.
/metrics, /healthz and /readyz are on the same port.
"""

from __future__ import annotations

import argparse
import sys

from cli.exit_codes import ExitCode
from cli.signals import run_until_signalled
from gateway.adapters.base import adapters_from_settings
from gateway.service import run_gateway
from ordernotify.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """All its settings are the shared ones (see the groups below)."""


def run(args: argparse.Namespace, settings: Settings) -> int:
    """0 after SIGTERM/SIGINT: requests in flight are answered, the producer is flushed."""
    if not settings.gateway_webhook_secrets and not adapters_from_settings(settings):
        print("ordernotify: gateway: nothing to take: set ORDERNOTIFY_GATEWAY_WEBHOOK_SECRETS (whsec_...) for "
              "/v1/events, or a platform's secret", file=sys.stderr)
        return ExitCode.USAGE

    run_until_signalled(lambda stop: run_gateway(settings, stop))
    return ExitCode.OK
