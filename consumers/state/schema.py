"""Tables of the state store; the same DDL for SQLite and PostgreSQL but for two type names.

``VERSION`` changes when a table does; a store written by another version is refused (see store.py),
except one of ``ADDED_TABLES_SINCE``: its tables are all still here unchanged, and the tables added since
are created when this version opens it.
"""

from __future__ import annotations

TABLES = """
CREATE TABLE IF NOT EXISTS store_meta (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS processed_events (
    event_id     TEXT PRIMARY KEY,
    order_id     TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    processed_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS processed_events_age ON processed_events (processed_at);
CREATE INDEX IF NOT EXISTS processed_events_customer ON processed_events (customer_id);
CREATE TABLE IF NOT EXISTS order_facts (
    order_id TEXT NOT NULL,
    fact     TEXT NOT NULL,
    added_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (order_id, fact)
);
CREATE INDEX IF NOT EXISTS order_facts_age ON order_facts (added_at);
CREATE TABLE IF NOT EXISTS pending_groups (
    order_id      TEXT NOT NULL,
    grp           TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    due_at        DOUBLE PRECISION NOT NULL,
    claimed_until DOUBLE PRECISION,
    PRIMARY KEY (order_id, grp)
);
CREATE INDEX IF NOT EXISTS pending_groups_due ON pending_groups (due_at);
CREATE TABLE IF NOT EXISTS pending_events (
    event_id    TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL,
    grp         TEXT NOT NULL,
    occurred_at DOUBLE PRECISION NOT NULL,
    event       {blob} NOT NULL,
    src_topic     TEXT NOT NULL,
    src_partition INTEGER NOT NULL,
    src_offset    BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_events_group ON pending_events (order_id, grp);
CREATE TABLE IF NOT EXISTS outbox (
    notification_id TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    template        TEXT NOT NULL,
    informational   {bool} NOT NULL,
    event_ids       TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    created_at      DOUBLE PRECISION NOT NULL,
    first_tried_at  DOUBLE PRECISION,
    claimed_by      TEXT,
    claimed_until   DOUBLE PRECISION,
    message_id      TEXT,
    subject         TEXT,
    locale          TEXT,
    mail_from       TEXT,
    rcpt_to         TEXT,
    data            {blob},
    sent_at         DOUBLE PRECISION,
    failure_reason  TEXT,
    failure_detail  TEXT
);
CREATE INDEX IF NOT EXISTS outbox_customer ON outbox (customer_id, created_at);
CREATE INDEX IF NOT EXISTS outbox_open ON outbox (status, created_at);
CREATE TABLE IF NOT EXISTS outbox_events (
    notification_id TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event           {blob} NOT NULL,
    src_topic       TEXT NOT NULL,
    src_partition   INTEGER NOT NULL,
    src_offset      BIGINT NOT NULL,
    PRIMARY KEY (notification_id, event_id)
);
CREATE TABLE IF NOT EXISTS preferences (
    customer_id   TEXT PRIMARY KEY,
    informational {bool} NOT NULL,
    updated_at    DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS suppressions (
    address_digest   TEXT PRIMARY KEY,
    reason           TEXT NOT NULL,
    first_at         DOUBLE PRECISION NOT NULL,
    last_at          DOUBLE PRECISION NOT NULL,
    count            INTEGER NOT NULL,
    suppressed_until DOUBLE PRECISION,
    lifted_at        DOUBLE PRECISION,
    changed_at       DOUBLE PRECISION NOT NULL
);
"""

VERSION = 3
# Older versions this one opens by adding tables: 2 lacked ``suppressions`` (the suppression list).
ADDED_TABLES_SINCE = {2: ("suppressions",)}

TYPES = {
    "sqlite": {"blob": "BLOB", "bool": "INTEGER"},
    "postgresql": {"blob": "BYTEA", "bool": "BOOLEAN"},
}


def statements(dialect: str) -> list[str]:
    ddl = TABLES.format(**TYPES[dialect])
    return [s.strip() for s in ddl.split(";") if s.strip()]
