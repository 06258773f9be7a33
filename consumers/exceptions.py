"""Errors of the consuming side: turning a decided notification into an e-mail and sending it."""

from __future__ import annotations

from ordernotify.errors import DependencyUnreachable, OrderNotifyError


class RenderError(OrderNotifyError):
    """A template or its data cannot produce an e-mail; retrying the same events will fail the same way."""

    reason = "render_failed"


class ComposerUnavailable(OrderNotifyError):
    """A render worker process died; new ones are started and the record is tried again."""

    retriable = True


class SmtpError(OrderNotifyError):
    """The SMTP server did not accept a message."""

    reason = "smtp_failed"


class SmtpTransientError(SmtpError):
    """4xx reply, refused or lost connection, timeout: the same message may go through later."""

    retriable = True
    reason = "smtp_transient"


class SmtpUnavailable(SmtpTransientError):
    """The server cannot be reached or the connection broke (refused, timed out, dropped, TLS failed): nothing
    this message did; every message would fail alike until the server is back."""


class SmtpPermanentError(SmtpError):
    """5xx reply for this message (e.g. unknown recipient): resending it cannot help."""

    reason = "smtp_rejected"


class SmtpRetriesExhausted(SmtpError):
    """Transient failures went on for longer than the retry budget."""

    reason = "smtp_retries_exhausted"


class DeadLetterError(OrderNotifyError):
    """The dead-letter topic did not take a message; the source offset must not be committed."""

    retriable = True


class StateStoreError(OrderNotifyError):
    """The state store cannot be used (bad URL, schema problem)."""


class StateStoreUnavailable(StateStoreError):
    """The state store is unreachable for now: pause, then try again; never send without a record."""

    retriable = True


class StateStoreUnreachable(StateStoreUnavailable, DependencyUnreachable):
    """The state store could not be reached at all when it was opened: a command ends on it (exit code 3)."""


class ForgedBounce(OrderNotifyError):
    """A bounce arrived for an address no e-mail of ours was sent from (no token, another domain, a signature that
    does not match the secret): it tells nothing about our e-mails and changes nothing."""

    reason = "forged"
