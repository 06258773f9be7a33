"""Debezium's outbox event router for ordernotify (deploy/debezium/): the table on a real PostgreSQL, the connector
checked statically. Debezium itself does not run here."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from producers.json_lines import parse_lines
from schemas.events import EventType, OrderEvent
from schemas.records import to_json_record
from tests import factories

DEBEZIUM = Path(__file__).resolve().parents[2] / "deploy" / "debezium"
DDL = (DEBEZIUM / "outbox.sql").read_text()
TABLE = "ordernotify_outbox"
STAGING_TOPIC = "orders.events.json"


@pytest.fixture(scope="module")
def connector() -> dict[str, str]:
    document = json.loads((DEBEZIUM / "ordernotify-outbox-connector.json").read_text())
    assert document["name"] == "ordernotify-outbox"
    config: dict[str, str] = document["config"]
    return config


@pytest.fixture
def outbox(postgres_url: str) -> Iterator[Any]:
    """A connection whose search path is a fresh schema holding the outbox table, created by ``outbox.sql``."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(DDL)
        connection.execute(DDL)  # a second run changes nothing: the file can be applied on every deployment
        yield connection


def _insert(connection: Any, event: OrderEvent, **columns: str) -> None:
    row = {"id": event.event_id, "aggregateid": event.order_id, "type": event.event_type.value,
           "payload": json.dumps(to_json_record(event)), **columns}
    connection.execute(f"INSERT INTO {TABLE} (id, aggregateid, type, payload) "
                       "VALUES (%(id)s, %(aggregateid)s, %(type)s, %(payload)s::jsonb)", row)


def _uuid_event(make: Callable[..., OrderEvent], **overrides: Any) -> OrderEvent:
    return make(event_id=str(uuid.uuid4()), order_id=f"DBZ-{uuid.uuid4().hex[:8]}", **overrides)


EVENTS = {
    "placed": factories.placed_event,
    "out_of_stock": factories.out_of_stock_event,
    "price_error": factories.price_error_event,
    "shipped": factories.shipped_event,
    "out_for_delivery": factories.out_for_delivery_event,
    "delivery_problem": factories.delivery_problem_event,
    "delivered": factories.delivered_event,
    "cancelled": factories.cancelled_event,
    "refund": factories.refund_event,
}


def test_the_factories_cover_every_event_type() -> None:
    assert {make().event_type for make in EVENTS.values()} == set(EventType)


# -- the table, on PostgreSQL ---------------------------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_the_text_debezium_passes_on_is_the_event_emit_reads(outbox: Any, kind: str) -> None:
    # The connector's StringConverter writes the jsonb value as PostgreSQL prints it; `ordernotify emit` reads it.
    event = _uuid_event(EVENTS[kind])
    _insert(outbox, event)
    text, key, event_id = outbox.execute(f"SELECT payload::text, aggregateid, id::text FROM {TABLE}").fetchone()
    assert "\n" not in text, "one event per line, as emit reads its input"
    (parsed,) = list(parse_lines([text]))
    assert isinstance(parsed.value, OrderEvent), parsed.value
    assert to_json_record(parsed.value) == to_json_record(event)  # the wire's precision: milliseconds
    assert key == event.order_id and event_id == event.event_id


@pytest.mark.integration
@pytest.mark.parametrize(("case", "columns"), [
    ("another order's key", {"aggregateid": "SOMEONE-ELSE"}),
    ("another event's id", {"id": "00000000-0000-4000-8000-000000000000"}),
    ("a type the payload does not have", {"type": "ORDER_SHIPPED"}),
    ("a type ordernotify does not know", {"type": "ORDER_ARCHIVED"}),
])
def test_a_row_whose_columns_are_not_its_payload_is_refused(outbox: Any, case: str, columns: dict[str, str]) -> None:
    import psycopg

    with pytest.raises(psycopg.errors.CheckViolation):
        _insert(outbox, _uuid_event(factories.placed_event), **columns)
    assert outbox.execute(f"SELECT count(*) FROM {TABLE}").fetchone() == (0,), case


@pytest.mark.integration
def test_the_same_event_cannot_enter_the_outbox_twice(outbox: Any) -> None:
    import psycopg

    event = _uuid_event(factories.placed_event)
    _insert(outbox, event)
    with pytest.raises(psycopg.errors.UniqueViolation):
        _insert(outbox, event)


@pytest.mark.integration
def test_the_columns_the_connector_names_exist_with_the_expected_types(outbox: Any,
                                                                       connector: dict[str, str]) -> None:
    columns = dict(outbox.execute("SELECT column_name, data_type FROM information_schema.columns "
                                  "WHERE table_schema = current_schema() AND table_name = %s", (TABLE,)).fetchall())
    assert columns == {"id": "uuid", "aggregatetype": "character varying", "aggregateid": "character varying",
                       "type": "character varying", "payload": "jsonb",
                       "created_at": "timestamp with time zone"}
    named = [connector[f"transforms.outbox.{option}"] for option in (
        "table.field.event.id", "table.field.event.key", "table.field.event.payload", "route.by.field")]
    named += [placement.split(":")[0]
              for placement in connector["transforms.outbox.table.fields.additional.placement"].split(",")]
    assert set(named) <= set(columns)


def test_the_table_knows_exactly_the_event_types_of_the_schema() -> None:
    listed = re.search(r"CHECK \(type IN \(([^)]*)\)\)", DDL)
    assert listed is not None
    assert set(re.findall(r"'([A-Z_]+)'", listed.group(1))) == {t.value for t in EventType}


# -- the connector, statically --------------------------------------------------------------------------------------

def test_the_connector_reads_the_outbox_table_with_debeziums_postgresql_connector(connector: dict[str, str]) -> None:
    assert connector["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert connector["plugin.name"] == "pgoutput"
    assert connector["table.include.list"] == f"public.{TABLE}", "only the outbox table: nothing else is captured"
    assert connector["publication.autocreate.mode"] == "filtered"
    assert connector["database.password"].startswith("${file:"), "the password comes from a file, never inline"


def test_the_outbox_event_router_routes_to_the_staging_topic_keyed_by_order(connector: dict[str, str]) -> None:
    assert connector["transforms"] == "outbox"
    assert connector["transforms.outbox.type"] == "io.debezium.transforms.outbox.EventRouter"
    assert connector["transforms.outbox.route.topic.replacement"] == STAGING_TOPIC
    assert "${routedByValue}" not in connector["transforms.outbox.route.topic.replacement"]
    assert connector["transforms.outbox.table.field.event.key"] == "aggregateid"
    assert connector["transforms.outbox.table.field.event.id"] == "id"
    assert connector["transforms.outbox.table.field.event.payload"] == "payload"


def test_the_payload_reaches_kafka_as_the_json_text_the_shop_wrote(connector: dict[str, str]) -> None:
    # Expanding would re-type the document and drop what it cannot type (empty arrays): the event would change.
    assert connector["transforms.outbox.table.expand.json.payload"] == "false"
    string = "org.apache.kafka.connect.storage.StringConverter"
    assert connector["key.converter"] == string, "the key is the order id's UTF-8 bytes, as on orders.events"
    assert connector["value.converter"] == string
