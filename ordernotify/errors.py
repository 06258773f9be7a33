"""The project's one root exception.

Every package raises subclasses of :class:`OrderNotifyError` from its own
``exceptions.py``. ``retriable`` lives on the class so that one retry loop can
ask the error instead of keeping its own list of types.
"""

from __future__ import annotations


class OrderNotifyError(Exception):
    """Root of every error ordernotify raises on purpose."""

    retriable: bool = False


class ConfigError(OrderNotifyError):
    """A setting is missing or has a value that cannot work."""


class DependencyUnreachable(OrderNotifyError):
    """A service a command needs (the Kafka broker, the SMTP server, the state store) did not answer.

    The message is one line a user can act on: what, where, how long it was tried, and the option that
    names it. Commands end with exit code 3 on it (``cli/exit_codes.py``)."""

    retriable = True

    def __init__(self, what: str, address: str, waited_s: float, option: str, reason: str = "") -> None:
        self.what, self.address, self.waited_s, self.option, self.reason = what, address, waited_s, option, reason
        tried = f"tried for {waited_s:.0f} s" if waited_s >= 1 else ""
        why = "; ".join(part for part in (reason, tried) if part)
        super().__init__(
            f"cannot reach {what} at {address}{f' ({why})' if why else ''}; is it running? see {option}"
        )
