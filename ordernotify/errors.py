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
