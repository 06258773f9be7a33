"""Errors of the bounce service. A refused webhook request carries its HTTP status and the reason it is counted by
(``ordernotify_feedback_rejected_total{reason}``); its message says what was wrong, for the log and the answer."""

from __future__ import annotations

from ordernotify.errors import OrderNotifyError


class WebhookRefused(OrderNotifyError):
    """A provider's webhook request that is not applied; nothing it says changes the suppression list."""

    status = 400
    reason = "malformed"


class MalformedWebhook(WebhookRefused):
    """Not JSON, not an object, or a field the provider always sends is missing or of the wrong type."""


class UnsupportedContentType(WebhookRefused):
    """The providers send JSON (SNS as text/plain); anything else is not theirs."""

    status = 415


class WebhookTooLarge(WebhookRefused):
    """The body is larger than --webhook-max-body-bytes."""

    status = 413
    reason = "too_large"


class Unauthenticated(WebhookRefused):
    """Postmark's basic-auth credentials are missing or wrong."""

    status = 401
    reason = "bad_signature"


class BadSignature(WebhookRefused):
    """The request is not signed by the provider: wrong signature, untrusted certificate, timestamp outside the
    replay window, a token seen before, or a topic we do not take."""

    status = 403
    reason = "bad_signature"


class WebhookNotConfigured(WebhookRefused):
    """The provider's secret (or SNS topic list) is not set, so its path is off."""

    status = 404
    reason = ""  # a setup mistake, not bad input: logged, not counted


class SigningCertificateUnavailable(WebhookRefused):
    """The SNS signing certificate could not be fetched now; SNS retries, so the message is not lost."""

    status = 503
    reason = ""
    retriable = True


class FeedbackNotRecorded(OrderNotifyError):
    """A bounce was understood but could not be written (suppression topic or dead-letter topic down): the MTA
    is told to try again later (4xx), so nothing is lost."""

    retriable = True


class SuppressionNotPublished(OrderNotifyError):
    """The suppressions topic did not acknowledge a record in time: nothing changed; apply it again."""

    retriable = True


class SuppressionListUnreadable(OrderNotifyError):
    """The suppressions topic could not be read to its end; the list in memory would be incomplete."""

    retriable = True
