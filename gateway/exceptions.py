"""Errors of the webhook gateway. A refused request carries its HTTP status and the outcome it is counted as
(``ordernotify_gateway_requests_total{outcome}``); its message says what was wrong, for the sender's answer."""

from __future__ import annotations

from ordernotify.errors import OrderNotifyError
from ordernotify.metrics import GatewayOutcome


class GatewayError(OrderNotifyError):
    """Root of the errors raised by :mod:`gateway`."""


class RequestRefused(GatewayError):
    """A request whose events are not published; sending it again unchanged is refused again."""

    status = 400
    outcome = GatewayOutcome.MALFORMED
    field = ""


class BadSignature(RequestRefused):
    """No valid signature: missing headers, none of the signatures matches a secret, or signed outside the replay
    window (``--gateway-replay-window-s``)."""

    status = 401
    outcome = GatewayOutcome.BAD_SIGNATURE


class MalformedRequest(RequestRefused):
    """Not UTF-8, not JSON, or not a JSON object."""


class InvalidEvent(RequestRefused):
    """JSON that is not a valid order event; ``field`` names the culprit."""

    outcome = GatewayOutcome.INVALID

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)


class BodyTooLarge(RequestRefused):
    status = 413
    outcome = GatewayOutcome.TOO_LARGE


class UnsupportedMediaType(RequestRefused):
    status = 415
    outcome = GatewayOutcome.UNSUPPORTED_MEDIA_TYPE


class SourceNotConfigured(RequestRefused):
    """The source's secret is not set, so its path is off (a setup mistake, logged)."""

    status = 404
    outcome = GatewayOutcome.NOT_CONFIGURED


class BrokerUnavailable(GatewayError):
    """The broker did not acknowledge the events within the answer timeout, or refused them for now: the sender is
    answered 503 with Retry-After and sends the same events again (same event ids, so nothing is doubled)."""

    retriable = True
