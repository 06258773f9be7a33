"""One line of ``ordernotify history`` per record, without a broker: the outcome column in words."""

from __future__ import annotations

from datetime import UTC, datetime

from cli.history import Communication, format_table

AT = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def _not_sent(reason: str, detail: str | None) -> Communication:
    return Communication(AT, 7, False, reason, "shipped", None, None, ("0123456789abcdef",), detail)


def test_a_suppressed_address_reads_not_sent_with_why_and_since_when() -> None:
    line = format_table([_not_sent("address_suppressed", "hard bounce on 2026-12-02")])[1]
    assert "not sent: address suppressed (hard bounce on 2026-12-02)" in line
    assert _not_sent("address_suppressed", "hard bounce on 2026-12-02").as_json()["detail"] == \
        "hard bounce on 2026-12-02"


def test_a_reason_without_detail_reads_as_before() -> None:
    assert _not_sent("opted_out", None).outcome == "not sent: opted_out"
