"""What the consumer decided to send: one e-mail, covering one or more events of one order."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from consumers.state.outbox import ReadyEntry
from schemas.events import Customer, EventType, OrderEvent


class Template(enum.StrEnum):
    """The template sets under ``templates/``; one per kind of news."""

    ORDER_PLACED = "order_placed"
    OUT_OF_STOCK = "out_of_stock"
    PRICE_ERROR = "price_error"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    ORDER_CANCELLED = "order_cancelled"
    REFUND_ISSUED = "refund_issued"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERY_PROBLEM = "delivery_problem"


TEMPLATE_FOR_EVENT: dict[EventType, Template] = {
    EventType.ORDER_PLACED: Template.ORDER_PLACED,
    EventType.ITEM_OUT_OF_STOCK: Template.OUT_OF_STOCK,
    EventType.PRICE_ERROR: Template.PRICE_ERROR,
    EventType.ORDER_SHIPPED: Template.SHIPPED,
    EventType.ORDER_DELIVERED: Template.DELIVERED,
    EventType.ORDER_CANCELLED: Template.ORDER_CANCELLED,
    EventType.REFUND_ISSUED: Template.REFUND_ISSUED,
    EventType.OUT_FOR_DELIVERY: Template.OUT_FOR_DELIVERY,
    EventType.DELIVERY_PROBLEM: Template.DELIVERY_PROBLEM,
}


# news a customer may switch off
INFORMATIONAL_TEMPLATES = frozenset({Template.SHIPPED, Template.OUT_FOR_DELIVERY, Template.DELIVERED})


@dataclass(frozen=True, slots=True)
class Notification:
    """One e-mail. ``events`` are all of ``order_id``, oldest first; the customer is the newest event's."""

    template: Template
    events: tuple[OrderEvent, ...]

    @property
    def order_id(self) -> str:
        return self.events[-1].order_id

    @property
    def customer(self) -> Customer:
        return self.events[-1].customer

    @property
    def event_ids(self) -> tuple[str, ...]:
        return tuple(e.event_id for e in self.events)

    @property
    def notification_id(self) -> str:
        """Stable for the same template and events: a resend after a crash reuses it (and its Message-ID)."""
        digest = hashlib.sha256(self.template.value.encode())
        for event_id in sorted(self.event_ids):
            digest.update(b"\0" + event_id.encode())
        return digest.hexdigest()[:32]

    @classmethod
    def for_event(cls, event: OrderEvent) -> Notification:
        return cls(TEMPLATE_FOR_EVENT[event.event_type], (event,))

    def ready_entry(self) -> ReadyEntry:
        """What the outbox keeps of this e-mail until it is rendered: what to say, not how."""
        return ReadyEntry(self.notification_id, self.order_id, self.customer.customer_id, self.template.value,
                          self.template in INFORMATIONAL_TEMPLATES, self.event_ids)
