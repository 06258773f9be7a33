"""What every webhook path does with what no provider sends: oversize and non-JSON bodies, paths that are off."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ordernotify.config import Secret, Settings
from tests.feedback.webhooks.conftest import Hooks, start_hooks, with_settings

PATHS = ["/webhooks/ses", "/webhooks/mailgun"]


@pytest.mark.parametrize("path", PATHS)
async def test_a_body_over_the_limit_is_refused_unread(hooks: Hooks, path: str) -> None:
    body = b'{"padding": "' + b"x" * (64 * 1024) + b'"}'

    response = await hooks.client.post(path, data=body, headers={"Content-Type": "application/json"})

    assert response.status == 413
    assert hooks.received == [] and hooks.rejected("too_large") == 1


async def test_a_chunked_body_over_the_limit_is_refused_too(hooks: Hooks) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b"x" * 1024

    response = await hooks.client.post("/webhooks/mailgun", data=chunks(), headers={"Content-Type": "application/json"})

    assert response.status == 413 and hooks.rejected("too_large") == 1


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"signature": "x"', b"\xff\xfe"])
async def test_a_body_that_is_not_a_json_object_is_malformed(hooks: Hooks, body: bytes) -> None:
    response = await hooks.client.post("/webhooks/mailgun", data=body, headers={"Content-Type": "application/json"})

    assert response.status == 400
    assert hooks.received == [] and hooks.rejected("malformed") == 1


async def test_a_provider_without_its_setting_is_off(settings: Settings) -> None:
    hooks = await start_hooks(with_settings(settings, ses_sns_topic_arns="", mailgun_signing_key=Secret(""),
                                            postmark_webhook_password=Secret("")))
    try:
        answers = {path: (await hooks.client.post(path, json={})).status
                   for path in ("/webhooks/ses", "/webhooks/postmark", "/webhooks/mailgun")}
        health = await hooks.client.get("/healthz")
    finally:
        await hooks.client.close()

    assert answers == {"/webhooks/ses": 404, "/webhooks/postmark": 404, "/webhooks/mailgun": 404}
    assert health.status == 200
    assert hooks.metrics.registry.get_sample_value("ordernotify_feedback_rejected_total", {"reason": "malformed"}) \
        is None


async def test_a_failing_on_feedback_answers_500_so_that_the_provider_retries(settings: Settings) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from feedback.webhooks import webhook_app
    from tests.feedback.webhooks.conftest import NOW, fixture, mailgun_signed

    async def broken(*_: object) -> None:
        raise RuntimeError("the suppressions topic is unreachable")

    client = TestClient(TestServer(webhook_app(settings, broken, clock=lambda: NOW), host="127.0.0.1"))
    await client.start_server()
    try:
        response = await client.post("/webhooks/mailgun", json=mailgun_signed(fixture("mailgun_complained.json")))
    finally:
        await client.close()

    assert response.status == 500
