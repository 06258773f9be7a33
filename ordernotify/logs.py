"""Logging set-up for the entry points: plain or JSON lines, with e-mail addresses redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")


def redact(text: str) -> str:
    return _EMAIL.sub("<email>", text)


class RedactingFilter(logging.Filter):
    """Last line of defence: no e-mail address reaches a log line, whatever a message carried."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class RedactingFormatter(logging.Formatter):
    """Plain lines, redacted whole: the filter sees only the message, not the traceback under it."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


#: kafka-python's own errors about reaching a broker (refused, reset or lost connections, timeouts, requests
#: cancelled by a closing client): the project reports those itself, in one line at start (exit code 3) and
#: through /readyz and its own retries while running, and the client reconnects on its own.
#: (by name: every command imports this module, most of them not kafka-python)
_UNREACHED_KAFKA_ERRORS = frozenset(
    {"KafkaConnectionError", "KafkaTimeoutError", "NodeNotReadyError", "Cancelled", "RequestTimedOutError"}
)
#: kafka-python lines that say the same without carrying the error: reconnecting, and a busy event loop
_UNREACHED_LINES = re.compile(
    r"socket disconnected|Bootstrap attempt to .* failed|Bootstrap .* not ready|Bootstrap connection to .* failed"
    r"|Bootstrap metadata response has no brokers|Request timed out after|ran for [\d.]+s \(>[\d.]+s threshold\)"
)
#: ... unless the error is about a certificate or the TLS handshake: a setting the operator must fix
_TLS = re.compile(r"ssl|certificate|handshake", re.IGNORECASE)


class KafkaChatterFilter(logging.Filter):
    """Shows kafka-python's own WARNING and ERROR lines (authentication and authorisation refused, a produce
    request that failed, a broken response) but not its chatter about a broker it cannot reach or a
    connection it is closing, which would bury them and which the project reports in its own words."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.name == "kafka" or record.name.startswith("kafka.")) or record.levelno <= logging.INFO:
            return True
        errors = [arg for arg in (record.args if isinstance(record.args, tuple) else ())
                  if isinstance(arg, BaseException)]
        if record.exc_info and record.exc_info[1] is not None:
            errors.append(record.exc_info[1])
        message = record.getMessage()
        if _TLS.search(message) or any(_TLS.search(f"{type(e).__name__} {e}") for e in errors):
            return True
        if errors:
            return not all(_unreached(error) for error in errors)
        return not _UNREACHED_LINES.search(message)


def _unreached(error: BaseException) -> bool:
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    return any(cls.__name__ in _UNREACHED_KAFKA_ERRORS and cls.__module__.startswith("kafka")
               for cls in type(error).__mro__)


def configure_logging(level: str = "INFO", as_json: bool = False) -> None:
    root = logging.getLogger()
    root.setLevel(level)
    debug = root.level <= logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    if not debug:  # first: it reads the errors a record carries, which redacting may fold into its message
        handler.addFilter(KafkaChatterFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        JsonFormatter() if as_json else RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root.handlers[:] = [handler]
    # kafka-python's errors are shown, less its chatter about reaching the broker (KafkaChatterFilter), and of
    # its warnings those of a connection (SASL re-authentication refused, requests throttled by a quota).
    # DEBUG shows it all, chatter included.
    logging.getLogger("kafka").setLevel(logging.DEBUG if debug else max(root.level, logging.ERROR))
    logging.getLogger("kafka.net.connection").setLevel(logging.DEBUG if debug else max(root.level, logging.WARNING))
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-connection chatter
