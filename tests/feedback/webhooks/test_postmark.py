"""POST /webhooks/postmark over loopback HTTP: Postmark's documented payloads and its basic-auth credentials."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from feedback.classify import FeedbackKind
from tests.feedback.webhooks.conftest import Hooks, fixture


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


AUTH = basic("postmark", "pm-webhook-password")


async def post(hooks: Hooks, payload: Any, auth: str | None = AUTH, content_type: str = "application/json"
               ) -> tuple[int, Any]:
    headers = {"Content-Type": content_type, **({"Authorization": auth} if auth else {})}
    response = await hooks.client.post("/webhooks/postmark", data=json.dumps(payload), headers=headers)
    return response.status, await response.json()


@pytest.mark.parametrize(("name", "kind"), [("postmark_bounce.json", FeedbackKind.HARD_BOUNCE),
                                            ("postmark_spam_complaint.json", FeedbackKind.COMPLAINT)])
async def test_the_documented_payloads_map_to_their_kind(hooks: Hooks, name: str, kind: FeedbackKind) -> None:
    status, answer = await post(hooks, fixture(name))

    assert (status, answer) == (200, {"result": "accepted", "applied": 1})
    [(feedback, token)] = hooks.received
    assert (feedback.kind, feedback.recipient, feedback.source) == (kind, "john@example.org", "postmark")
    assert token is None  # Postmark reports no envelope sender of ours
    assert hooks.counted(kind, "postmark") == 1


@pytest.mark.parametrize(("bounce_type", "kind"), [
    ("SoftBounce", FeedbackKind.SOFT_BOUNCE), ("Transient", FeedbackKind.SOFT_BOUNCE),
    ("AutoResponder", FeedbackKind.AUTO_REPLY), ("VirusNotification", FeedbackKind.UNKNOWN),
])
async def test_bounce_types(hooks: Hooks, bounce_type: str, kind: FeedbackKind) -> None:
    payload = {**fixture("postmark_bounce.json"), "Type": bounce_type,
               "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist."}

    await post(hooks, payload)

    [(feedback, _)] = hooks.received
    assert (feedback.kind, feedback.status) == (kind, "5.1.1")
    assert (bounce_type in feedback.detail) == (kind is FeedbackKind.UNKNOWN)


@pytest.mark.parametrize("auth", [None, basic("postmark", "wrong"), basic("someone", "pm-webhook-password"),
                                  "Basic not-base64!", "Bearer pm-webhook-password"])
async def test_missing_or_wrong_credentials_are_refused(hooks: Hooks, auth: str | None) -> None:
    status, answer = await post(hooks, fixture("postmark_bounce.json"), auth=auth)

    assert status == 401 and "credentials" in answer["error"]
    assert hooks.received == []
    assert hooks.rejected("bad_signature") == 1


async def test_a_form_post_is_refused_as_the_wrong_content_type(hooks: Hooks) -> None:
    status, _ = await post(hooks, fixture("postmark_bounce.json"), content_type="application/x-www-form-urlencoded")

    assert status == 415
    assert hooks.received == [] and hooks.rejected("malformed") == 1


async def test_a_delivery_record_is_ignored_and_counted(hooks: Hooks) -> None:
    status, answer = await post(hooks, {**fixture("postmark_bounce.json"), "RecordType": "Delivery"})

    assert (status, answer) == (200, {"result": "ignored"})
    assert hooks.received == [] and hooks.counted("unknown", "postmark") == 1


async def test_a_bounce_without_an_address_is_malformed(hooks: Hooks) -> None:
    payload = fixture("postmark_bounce.json")
    del payload["Email"]

    status, _ = await post(hooks, payload)

    assert status == 400 and hooks.received == [] and hooks.rejected("malformed") == 1
