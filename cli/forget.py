"""``ordernotify forget --customer ID``: erase what the state store keeps about one customer (right to erasure).

Removes the customer's processed event ids, order facts, open windows with their events, outbox entries
(recipients, subjects, message bytes) and preferences, in one transaction, and prints how many rows of
each table went. What else holds the customer's data is the platform's and the Kafka topics': the events
topic and the communications log expire by their retention, and the compacted preferences topic needs a
tombstone for the customer's key (``OrderEventProducer.publish_preferences`` with the platform's own
deletion flow). Run it with the consumers' ``--state-url``.
"""

from __future__ import annotations

import argparse
import json

from consumers.state.store import open_store
from ordernotify.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--customer", required=True, metavar="ID", help="the customer id, as in the events")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")


def run(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings.state_url)
    try:
        with store.transaction() as tx:
            removed = tx.forget_customer(args.customer)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"customer_id": args.customer, "removed": removed}, indent=2))
        return 0
    total = sum(removed.values())
    print(f"forgot customer {args.customer}: {total} rows" if total else
          f"nothing stored about customer {args.customer}")
    for table, count in removed.items():
        if count:
            print(f"  {table}: {count}")
    return 0
