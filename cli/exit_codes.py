"""The exit codes of every ``ordernotify`` command, in one place (the README's table lists them)."""

from __future__ import annotations

from enum import IntEnum

from ordernotify.reachability import is_unreachable


class ExitCode(IntEnum):
    OK = 0
    #: some input was refused or failed (emit's bad lines, a replay stopped half-way); the rest was done
    REFUSED = 1
    #: the command line or a setting is wrong; nothing was done
    USAGE = 2
    #: a dependency (Kafka broker, SMTP server, state store) could not be reached, or a consumer got stuck
    #: on one (``consume``'s watchdog): start again once it is back; orchestrators restart on it
    UNREACHABLE = 3
    #: stopped by Ctrl-C (SIGINT) before it finished; ``consume`` treats SIGINT and SIGTERM as its normal
    #: stop and exits 0
    INTERRUPTED = 130


def for_kafka_error(exc: BaseException) -> ExitCode:
    """UNREACHABLE if no broker answered (start again once it is back); REFUSED for any other Kafka error: a
    broker's answer such as an authorization failure or an unknown topic, which waiting does not fix."""
    return ExitCode.UNREACHABLE if is_unreachable(exc) else ExitCode.REFUSED
