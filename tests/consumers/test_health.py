"""``/readyz`` checks as the consumer's parts report them."""

from __future__ import annotations

from consumers.health import ConsumerHealth


def test_preferences_check_follows_the_reader() -> None:
    health = ConsumerHealth()
    health.polled(assigned=True)
    assert health.report().ready  # no reader reports: nothing to wait for

    health.preferences_loading()
    report = health.report()
    assert report.failing == ["preferences"]
    assert report.details["preferences"] == "reading the preferences topic up to its end"

    health.preferences_reached(ConnectionResetError("peer gone"))
    report = health.report()
    assert report.failing == ["preferences"]
    assert report.details["preferences"] == "reader restarting after ConnectionResetError"  # the type, never data

    health.preferences_reached(None)
    assert health.report().ready and "preferences" not in health.report().details
