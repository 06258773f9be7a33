"""The provider webhooks: Amazon SES (via SNS), Postmark and Mailgun report bounces and complaints over HTTP.

``POST /webhooks/ses``, ``/webhooks/postmark`` and ``/webhooks/mailgun`` each authenticate the request the
provider's way (SNS signature, basic auth, HMAC), read its payload into ``Feedback`` (``provider_payloads``) and hand
each to ``on_feedback`` with the ``VerpToken`` the provider reported, if any. ``GET /healthz`` answers 200.

Answers, and what is counted (``ordernotify_feedback_total{kind,source}`` and
``ordernotify_feedback_rejected_total{reason}``; this module counts, ``on_feedback`` should not count again):

| answer | when | counted as |
|---|---|---|
| 200 ``accepted`` | feedback handed to ``on_feedback`` | ``feedback{kind, source}`` |
| 200 ``ignored`` | an event we do not act on (delivery, open...) | ``feedback{unknown, source}`` |
| 200 ``ignored`` | an SNS (un)subscription confirmation | not counted, logged |
| 400 | not JSON, or a field the provider always sends is missing | ``rejected{malformed}`` |
| 401 | Postmark: no or wrong basic-auth credentials | ``rejected{bad_signature}`` |
| 403 | bad signature or certificate, other SNS topic, stale timestamp, reused token | ``rejected{bad_signature}`` |
| 404 | the provider's setting is not given (its path is off) | not counted, logged |
| 413 | body larger than ``--webhook-max-body-bytes`` | ``rejected{too_large}`` |
| 415 | not ``application/json`` (SNS: ``text/plain``) | ``rejected{malformed}`` |
| 500 | ``on_feedback`` failed: the provider sends it again later | not counted, logged |
| 503 | the SNS certificate could not be fetched: SNS sends it again later | not counted, logged |

A feedback whose recipient is not the one its token was made for is dropped and counted as
``rejected{recipient_mismatch}``; the rest of the request is still applied. Nothing is logged of an address.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from consumers.deliver.verp import VerpToken, address_digest
from feedback.classify import Feedback, FeedbackKind
from feedback.exceptions import (
    MalformedWebhook,
    UnsupportedContentType,
    WebhookNotConfigured,
    WebhookRefused,
    WebhookTooLarge,
)
from feedback.provider_payloads import ProviderEvents, mailgun_events, postmark_events, ses_events
from feedback.sns_signature import SnsVerifier
from feedback.webhook_auth import MailgunSignatures, check_basic_auth
from ordernotify.config import Settings
from ordernotify.metrics import Metrics

log = logging.getLogger(__name__)

OnFeedback = Callable[[Feedback, VerpToken | None], Awaitable[None]]
JSON = ("application/json",)
SNS_TYPES = ("text/plain", "application/json")  # SNS posts JSON labelled text/plain


def webhook_app(settings: Settings, on_feedback: OnFeedback, *, metrics: Metrics | None = None,
                clock: Callable[[], float] = time.time) -> web.Application:
    """The webhook endpoints as an aiohttp application; ``metrics`` should be the process's (a fresh one if none)."""
    app = web.Application(client_max_size=settings.webhook_max_body_bytes)
    hooks = _Webhooks(settings, on_feedback, metrics or Metrics(), clock)
    app.router.add_post("/webhooks/ses", hooks.ses)
    app.router.add_post("/webhooks/postmark", hooks.postmark)
    app.router.add_post("/webhooks/mailgun", hooks.mailgun)
    app.router.add_get("/healthz", _healthz)
    app.on_cleanup.append(hooks.close)
    return app


async def start_webhooks(settings: Settings, on_feedback: OnFeedback, *, metrics: Metrics) -> web.AppRunner:
    """Serve the webhooks on ``--webhook-host``:``--webhook-port`` in the running event loop; ``cleanup()`` stops."""
    runner = web.AppRunner(webhook_app(settings, on_feedback, metrics=metrics), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.webhook_host, settings.webhook_port).start()
    log.info("provider webhooks on http://%s:%s/webhooks/ (ses: %s, postmark: %s, mailgun: %s)",
             settings.webhook_host, settings.webhook_port, "on" if settings.ses_sns_topic_arns else "off",
             "on" if settings.postmark_webhook_password else "off", "on" if settings.mailgun_signing_key else "off")
    return runner


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


class _Webhooks:
    def __init__(self, settings: Settings, on_feedback: OnFeedback, metrics: Metrics,
                 clock: Callable[[], float]) -> None:
        self.settings = settings
        self.on_feedback = on_feedback
        self.metrics = metrics
        self.sns = SnsVerifier(settings)
        self.mailgun_signatures = MailgunSignatures(settings.mailgun_signing_key, settings.mailgun_replay_window_s,
                                                    clock)

    async def close(self, app: web.Application) -> None:
        await self.sns.close()

    async def ses(self, request: web.Request) -> web.Response:
        return await self._answer("ses", request, self._ses)

    async def postmark(self, request: web.Request) -> web.Response:
        return await self._answer("postmark", request, self._postmark)

    async def mailgun(self, request: web.Request) -> web.Response:
        return await self._answer("mailgun", request, self._mailgun)

    async def _ses(self, request: web.Request) -> ProviderEvents:
        if not self.sns.topics:
            raise WebhookNotConfigured("SES webhooks are off: set --ses-sns-topic-arns")
        message = await _json_body(request, SNS_TYPES)
        await self.sns.verify(message)
        kind = message.get("Type")
        if kind == "SubscriptionConfirmation":
            subscribe_url = str(message.get("SubscribeURL"))
            if self.settings.sns_confirm_subscriptions:
                await self.sns.confirm_subscription(subscribe_url)
                log.info("confirmed the SNS subscription to %s", message.get("TopicArn"))
            else:
                log.warning("SNS asks to confirm the subscription to %s: open %s (or set "
                            "--sns-confirm-subscriptions)", message.get("TopicArn"), subscribe_url)
            return ProviderEvents(ignored="")
        if kind == "UnsubscribeConfirmation":
            log.warning("SNS unsubscribed this endpoint from %s", message.get("TopicArn"))
            return ProviderEvents(ignored="")
        try:
            notification = json.loads(str(message.get("Message")))
        except ValueError:
            raise MalformedWebhook("the SNS Message is not an SES notification (not JSON)") from None
        return ses_events(notification, self.settings)

    async def _postmark(self, request: web.Request) -> ProviderEvents:
        if not self.settings.postmark_webhook_password:
            raise WebhookNotConfigured("Postmark webhooks are off: set ORDERNOTIFY_POSTMARK_WEBHOOK_PASSWORD")
        check_basic_auth(request.headers.get("Authorization"), self.settings.postmark_webhook_user,
                         self.settings.postmark_webhook_password)
        return postmark_events(await _json_body(request, JSON))

    async def _mailgun(self, request: web.Request) -> ProviderEvents:
        if not self.settings.mailgun_signing_key:
            raise WebhookNotConfigured("Mailgun webhooks are off: set ORDERNOTIFY_MAILGUN_SIGNING_KEY")
        payload = await _json_body(request, JSON)
        self.mailgun_signatures.verify(payload.get("signature"))
        return mailgun_events(payload.get("event-data"), self.settings)

    async def _answer(self, provider: str, request: web.Request,
                      read: Callable[[web.Request], Awaitable[ProviderEvents]]) -> web.Response:
        try:
            events = await read(request)
        except WebhookRefused as exc:
            if exc.reason:
                self.metrics.count_feedback_rejected(exc.reason)
            log.warning("%s webhook refused with %s: %s", provider, exc.status, exc)
            return web.json_response({"error": str(exc)}, status=exc.status)
        if not events.feedback:
            if events.ignored:
                self.metrics.count_feedback(FeedbackKind.UNKNOWN, provider)
                log.info("%s webhook: %s event not acted on (send only bounces and complaints here)", provider,
                         events.ignored.partition(" ")[2])
            return web.json_response({"result": "ignored"})
        applied = 0
        for item in events.feedback:
            token, feedback = item.token, item.feedback
            if token and feedback.recipient and not address_digest(feedback.recipient).startswith(token.digest_prefix):
                self.metrics.count_feedback_rejected("recipient_mismatch")
                log.warning("%s %s for notification %s names another recipient than the one it was sent to: "
                            "not applied", provider, feedback.kind, token.notification_id)
                continue
            self.metrics.count_feedback(feedback.kind, feedback.source)
            try:
                await self.on_feedback(feedback, token)
            except Exception:
                log.exception("%s %s could not be applied; the provider will send it again", provider, feedback.kind)
                return web.json_response({"error": "not applied, try again later"}, status=500)
            applied += 1
            log.info("%s %s%s applied", provider, feedback.kind,
                     f" for notification {token.notification_id}" if token else "")
        return web.json_response({"result": "accepted", "applied": applied})


async def _json_body(request: web.Request, content_types: tuple[str, ...]) -> dict[str, Any]:
    """The body as a JSON object; the application's ``client_max_size`` (--webhook-max-body-bytes) bounds it."""
    if request.content_type not in content_types:
        raise UnsupportedContentType(f"content type {request.content_type[:60]!r} is not {' or '.join(content_types)}")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise WebhookTooLarge("body larger than --webhook-max-body-bytes") from None
    try:
        payload = json.loads(body)
    except ValueError:
        raise MalformedWebhook("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise MalformedWebhook("the body is not a JSON object")
    return payload
