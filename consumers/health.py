"""What ``/readyz`` reports: the consumer's own view of its dependencies, kept current by its parts.

The parts write plain attributes (from the event loop and the poll thread); the
HTTP thread only reads them, never the kafka-python consumer itself, which is
not thread-safe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ordernotify.http_endpoints import ReadinessReport
from ordernotify.reachability import BROKER_SILENCE_S


@dataclass
class ConsumerHealth:
    group_joined: bool = False
    last_poll_ok: float = 0.0
    smtp_ok: bool = True
    smtp_detail: str = ""
    store_ok: bool = True
    store_detail: str = ""
    dead_letters_ok: bool = True
    dead_letters_detail: str = ""
    stuck_detail: str = ""  # set by the watchdog: nothing committed for too long while lag is not zero
    # No preferences reader reports here: nothing to wait for. A reader given this health sets it False at once,
    # until it has read the preferences topic up to its end.
    preferences_ok: bool = True
    preferences_detail: str = ""
    # Likewise for the suppression list: an address that bounced could be mailed until it has been read.
    suppressions_ok: bool = True
    suppressions_detail: str = ""
    started_at: float = field(default_factory=time.time)

    def store_reached(self, error: Exception | None = None) -> None:
        """The state store answered (``error`` None) or could not be reached; every part that uses it reports."""
        self.store_ok, self.store_detail = error is None, "" if error is None else type(error).__name__

    def dead_letters_reached(self, error: Exception | None = None) -> None:
        """The dead-letter topic acknowledged (``error`` None) or could not be written: the batch waits."""
        self.dead_letters_ok = error is None
        self.dead_letters_detail = "" if error is None else type(error).__name__

    def smtp_reached(self, error: BaseException | None = None) -> None:
        """The SMTP server took a message (``error`` None) or a transient failure stood in the way."""
        self.smtp_ok, self.smtp_detail = error is None, "" if error is None else type(error).__name__

    def preferences_loading(self) -> None:
        """The preferences reader (re)started and has not read the topic up to its end: opt-outs may be missing."""
        self.preferences_ok, self.preferences_detail = False, "reading the preferences topic up to its end"

    def preferences_reached(self, error: BaseException | None = None) -> None:
        """The preferences reader read the topic up to its end (``error`` None), or it failed and restarts."""
        self.preferences_ok = error is None
        self.preferences_detail = "" if error is None else f"reader restarting after {type(error).__name__}"

    def suppressions_loading(self) -> None:
        """The suppressions reader (re)started and has not read the topic up to its end: a bounced address may
        still be missing."""
        self.suppressions_ok, self.suppressions_detail = False, "reading the suppressions topic up to its end"

    def suppressions_reached(self, error: BaseException | None = None) -> None:
        self.suppressions_ok = error is None
        self.suppressions_detail = "" if error is None else f"reader restarting after {type(error).__name__}"

    def polled(self, assigned: bool) -> None:
        self.last_poll_ok = time.time()
        self.group_joined = assigned

    def report(self) -> ReadinessReport:
        broker_ok = time.time() - self.last_poll_ok < BROKER_SILENCE_S
        checks = {
            "group_joined": self.group_joined,
            "broker": broker_ok,
            "smtp": self.smtp_ok,
            "state_store": self.store_ok,
            "dead_letter_topic": self.dead_letters_ok,
            "not_stuck": not self.stuck_detail,
            "preferences": self.preferences_ok,
            "suppressions": self.suppressions_ok,
        }
        details = {
            "group_joined": "no partitions assigned yet",
            "broker": f"no successful poll for {BROKER_SILENCE_S:.0f} s",
            "smtp": self.smtp_detail,
            "state_store": self.store_detail,
            "dead_letter_topic": self.dead_letters_detail,
            "not_stuck": self.stuck_detail,
            "preferences": self.preferences_detail,
            "suppressions": self.suppressions_detail,
        }
        return ReadinessReport(checks, {k: v for k, v in details.items() if not checks[k]})
