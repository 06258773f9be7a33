"""Keep the state store's suppression list in step with the compacted ``customers.suppressions`` topic.

Read like the preferences (:mod:`consumers.decide.preferences_reader`, whose supervision it shares): every
partition from its beginning, no consumer group, restarted from the beginning after any failure, reported to
``/readyz`` as the check ``suppressions``, which passes once a reading reached the end offsets the topic had
when it began. The store keeps the newest record per address whatever order they arrive in; a tombstone
removes the address. The dispatcher reads the table before each send
(:mod:`consumers.deliver.suppression_check`).
"""

from __future__ import annotations

import logging
from typing import Any

from consumers.decide.preferences_reader import STORE_BACKOFF, PreferencesReader
from ordernotify.errors import OrderNotifyError
from ordernotify.retry import retry_blocking
from schemas.suppressions import SuppressionCodec

log = logging.getLogger(__name__)

_CODEC = SuppressionCodec()


class SuppressionsReader(PreferencesReader):
    """Applies the suppressions topic to the state store in a thread of its own that restarts it on any failure."""

    what = "suppressions"

    def _topic(self) -> str:
        return self._settings.suppressions_topic

    def _loading(self) -> None:
        if self._health is not None:
            self._health.suppressions_loading()

    def _reached(self, error: BaseException | None) -> None:
        if self._health is not None:
            self._health.suppressions_reached(error)

    def _apply(self, record: Any) -> None:
        value = getattr(record, "value", None)
        key = bytes(getattr(record, "key", None) or b"").decode("ascii", "replace")
        if value is None:  # a tombstone: the address is no longer on the list
            if key:
                self._store_with_retry(lambda tx: tx.forget_suppression(key))
            return
        try:
            suppression = _CODEC.decode(value)
        except OrderNotifyError as exc:
            log.warning("skipping suppression record %s[%d]@%d: %s", getattr(record, "topic", "?"),
                        getattr(record, "partition", -1), getattr(record, "offset", -1), exc)
            return
        self._store_with_retry(lambda tx: tx.set_suppression(suppression))
        self.applied += 1

    def _store_with_retry(self, change: Any) -> None:
        def store() -> None:
            with self._store.transaction() as tx:
                change(tx)

        on_error = self._health.store_reached if self._health is not None else None
        retry_blocking(store, "storing a suppression", STORE_BACKOFF, on_error=on_error, stop=self._stop)
