-- The shop's outbox table for ordernotify's events, read by Debezium's outbox event router
-- (ordernotify-outbox-connector.json). The shop inserts one row per order event in the same transaction
-- that changes the order, so an event exists exactly when the change was committed. Debezium reads the
-- rows from the write-ahead log and writes each payload to the topic orders.events.json (README.md).
--
-- Columns: the names Debezium's event router expects by default (id, aggregatetype, aggregateid, type,
-- payload), tied to the event they carry by the CHECK constraints below, so a row that would reach Kafka
-- with the wrong key or id is refused in the shop's own transaction instead.
CREATE TABLE IF NOT EXISTS ordernotify_outbox (
    -- The event's event_id: the record's "id" header. A retried insert with the same id fails here, and an
    -- event that reaches Kafka twice anyway (a connector restart) is dropped by the consumers' dedupe.
    id            uuid         PRIMARY KEY,
    -- Always 'order': the connector routes by a fixed topic name, not by this column.
    aggregatetype varchar(32)  NOT NULL DEFAULT 'order' CHECK (aggregatetype = 'order'),
    -- The order id: the record's key, so one order's events stay on one partition, in insert order.
    aggregateid   varchar(255) NOT NULL,
    -- The event type: the record's "event_type" header (for filtering tools; ordernotify reads the payload).
    type          varchar(32)  NOT NULL,
    -- ordernotify's JSON event, exactly the shape `ordernotify emit` reads (schemas/README.md).
    payload       jsonb        NOT NULL,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT ordernotify_outbox_event_type CHECK (type IN (
        'ORDER_PLACED', 'ITEM_OUT_OF_STOCK', 'ORDER_SHIPPED', 'ORDER_DELIVERED', 'PRICE_ERROR',
        'ORDER_CANCELLED', 'REFUND_ISSUED', 'OUT_FOR_DELIVERY', 'DELIVERY_PROBLEM')),
    CONSTRAINT ordernotify_outbox_payload_is_the_row_event CHECK (
        jsonb_typeof(payload) = 'object'
        AND payload ->> 'event_id' = id::text
        AND payload ->> 'order_id' = aggregateid
        AND payload ->> 'event_type' = type)
);

-- Debezium reads inserts only (it ignores deletes), so the shop may prune rows once they are in Kafka:
--   DELETE FROM ordernotify_outbox WHERE created_at < now() - interval '7 days';
CREATE INDEX IF NOT EXISTS ordernotify_outbox_created_at ON ordernotify_outbox (created_at);
