"""POST /webhooks/mailgun over loopback HTTP: Mailgun's documented payloads, signed as Mailgun signs them."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.deliver.verp import envelope_sender
from feedback.classify import FeedbackKind
from ordernotify.config import Settings
from tests.feedback.webhooks.conftest import NOW, Hooks, fixture, mailgun_signed


async def post(hooks: Hooks, payload: Any) -> tuple[int, Any]:
    response = await hooks.client.post("/webhooks/mailgun", json=payload)
    return response.status, await response.json()


@pytest.mark.parametrize(("name", "kind", "status"), [
    ("mailgun_failed_permanent.json", FeedbackKind.HARD_BOUNCE, None),
    ("mailgun_failed_temporary.json", FeedbackKind.SOFT_BOUNCE, "4.2.2"),
    ("mailgun_complained.json", FeedbackKind.COMPLAINT, None),
])
async def test_the_documented_payloads_map_to_their_kind(
        hooks: Hooks, name: str, kind: FeedbackKind, status: str | None) -> None:
    code, answer = await post(hooks, mailgun_signed(fixture(name)))

    assert (code, answer) == (200, {"result": "accepted", "applied": 1})
    [(feedback, token)] = hooks.received
    assert (feedback.kind, feedback.recipient, feedback.status, feedback.source) == (
        kind, "alice@example.org", status, "mailgun")
    assert token is None  # sent from bob@mg.example.org, not from one of our bounce addresses
    assert hooks.counted(kind, "mailgun") == 1


async def test_a_permanent_failure_after_the_retries_ran_out_is_soft(hooks: Hooks) -> None:
    payload = fixture("mailgun_failed_permanent.json")
    payload["event-data"]["reason"] = "old"

    await post(hooks, mailgun_signed(payload))

    assert [feedback.kind for feedback, _ in hooks.received] == [FeedbackKind.SOFT_BOUNCE]


async def test_our_verp_envelope_sender_names_the_notification(hooks: Hooks, settings: Settings) -> None:
    payload = fixture("mailgun_failed_permanent.json")
    payload["event-data"]["envelope"]["sender"] = envelope_sender("ab" * 16, "alice@example.org", settings)

    await post(hooks, mailgun_signed(payload))

    [(_, token)] = hooks.received
    assert token is not None and token.notification_id == "ab" * 16


async def test_the_documentation_signature_is_not_ours(hooks: Hooks) -> None:
    status, answer = await post(hooks, fixture("mailgun_failed_permanent.json"))  # signed with Mailgun's own key

    assert status == 403 and "--mailgun-signing-key" in answer["error"]
    assert hooks.received == [] and hooks.rejected("bad_signature") == 1


async def test_a_changed_event_no_longer_matches_a_signature_of_another_token(hooks: Hooks) -> None:
    signed = mailgun_signed(fixture("mailgun_failed_permanent.json"))
    signed["signature"]["token"] = "f" * 50

    status, _ = await post(hooks, signed)

    assert status == 403 and hooks.received == []


@pytest.mark.parametrize("age_s", [301, -301, 86_400])
async def test_a_timestamp_outside_the_replay_window_is_refused(hooks: Hooks, age_s: int) -> None:
    status, answer = await post(hooks, mailgun_signed(fixture("mailgun_complained.json"), timestamp=NOW - age_s))

    assert status == 403 and "replay window" in answer["error"]
    assert hooks.received == [] and hooks.rejected("bad_signature") == 1


async def test_a_token_is_taken_once(hooks: Hooks) -> None:
    signed = mailgun_signed(fixture("mailgun_complained.json"))

    first, _ = await post(hooks, signed)
    second, answer = await post(hooks, signed)

    assert (first, second) == (200, 403) and "taken before" in answer["error"]
    assert len(hooks.received) == 1 and hooks.rejected("bad_signature") == 1


async def test_an_opened_event_is_ignored_and_counted(hooks: Hooks) -> None:
    payload = fixture("mailgun_complained.json")
    payload["event-data"]["event"] = "opened"

    status, answer = await post(hooks, mailgun_signed(payload))

    assert (status, answer) == (200, {"result": "ignored"})
    assert hooks.received == [] and hooks.counted("unknown", "mailgun") == 1


async def test_a_signed_event_without_a_recipient_is_malformed(hooks: Hooks) -> None:
    payload = fixture("mailgun_failed_temporary.json")
    del payload["event-data"]["recipient"]

    status, _ = await post(hooks, mailgun_signed(payload))

    assert status == 400 and hooks.received == [] and hooks.rejected("malformed") == 1
