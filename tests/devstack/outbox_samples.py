"""Real e-mails, as the consumer builds them, for the outbox page tests: two orders, interleaved."""

from __future__ import annotations

import dataclasses

from consumers.deliver.message import build_message
from consumers.deliver.preview import NOW, SAMPLES, sample_notification
from consumers.deliver.rendering import Renderer
from consumers.notification import Notification, Template
from devstack.outbox_pages import MailLabel
from devstack.smtp_capture import CapturedMessage
from ordernotify.config import Settings

# (order, template, language) in the order the SMTP server receives them: the orders' threads interleave.
ARRIVALS = (
    ("A-1", Template.ORDER_PLACED, "en"),
    ("B-2", Template.ORDER_PLACED, "de"),
    ("A-1", Template.SHIPPED, "en"),
    ("B-2", Template.OUT_OF_STOCK, "de"),
    ("A-1", Template.DELIVERED, "en"),
)


def _notification(order_id: str, template: Template, language: str) -> Notification:
    sample = next(s for s in SAMPLES if s.template is template and s.case == "long-names")
    notification = sample_notification(sample, language)
    events = tuple(dataclasses.replace(e, event_id=f"{order_id}-{e.event_id}", order_id=order_id)
                   for e in notification.events)
    return Notification(template, events)


def captured_orders(settings: Settings) -> tuple[list[CapturedMessage], dict[str, MailLabel]]:
    """The captured messages in arrival order, and each one's label by Message-ID (as the demo's store has it)."""
    renderer = Renderer(settings)
    messages: list[CapturedMessage] = []
    labels: dict[str, MailLabel] = {}
    for order_id, template, language in ARRIVALS:
        notification = _notification(order_id, template, language)
        outgoing = build_message(renderer.render(notification), notification, settings, now=NOW)
        messages.append(CapturedMessage(outgoing.sender, (outgoing.recipient,), outgoing.data))
        labels[outgoing.message_id] = MailLabel(template.value, order_id)
    return messages, labels
