"""``ordernotify forget --customer ID [--email ADDRESS]... [--digest PREFIX]...``: erase what the state store and
the suppression list keep about one customer (right to erasure).

Removes the customer's processed event ids, order facts, open windows with their events, outbox entries
(recipients, subjects, message bytes) and preferences, in one transaction, and prints how many rows of
each table went.

The suppression list is keyed by a digest of the address, which is still personal data (pseudonymous), and
its records may name the customer. Before the rows go, the store is asked which addresses it knows for the
customer (:meth:`~consumers.state.store.StateTx.customer_addresses`); ``--email`` adds addresses it no longer
knows (an e-mail that went out keeps none), ``--digest`` the digest prefixes a previous run printed as left.
Each of those with a suppression is erased from the compacted topic ``customers.suppressions`` with a
tombstone (so are the topic's records that name the customer) and from the store's copy. The broker is
needed only when there is something to look for on the topic (a suppression in the store's copy, or
``--email``/``--digest``); if it cannot be reached the store's part is still done, and the one line on stderr
says which digests are left and how to finish (exit code 3). Addresses are never printed: digests by their
first 12 characters, as ``ordernotify suppressions list`` shows them.

What else holds the customer's data is the platform's and the other topics': the events topic and the
communications log expire by their retention, and the compacted preferences topic needs a tombstone for the
customer's key (``OrderEventProducer.publish_preferences`` with the platform's own deletion flow). Run it with
the consumers' ``--state-url``; a consumer whose store was not given here drops its copy of the suppressions
when it reads the tombstones.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from cli.exit_codes import ExitCode
from consumers.deliver.verp import address_digest
from consumers.state.store import open_store
from feedback.suppression_list import SuppressionList
from ordernotify.config import Settings
from ordernotify.errors import DependencyUnreachable, OrderNotifyError
from ordernotify.reachability import is_unreachable

SHORT_DIGEST = 12
_PREFIX = re.compile(rf"[0-9a-f]{{{SHORT_DIGEST},64}}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--customer", required=True, metavar="ID", help="the customer id, as in the events")
    parser.add_argument("--email", action="append", default=[], metavar="ADDRESS",
                        help="an address of the customer's the store may no longer know; its suppression is "
                             "erased too (repeatable)")
    parser.add_argument("--digest", action="append", default=[], metavar="PREFIX",
                        help="a suppression's digest (at least its first 12 characters), as a run that could not "
                             "reach the broker printed it (repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")


@dataclass
class TopicErasure:
    """What happened on the suppressions topic: the digests tombstoned, and those still to do after a failure."""

    tombstoned: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    error: OrderNotifyError | None = None


def run(args: argparse.Namespace, settings: Settings) -> int:
    prefixes = [p.strip().lower() for p in args.digest]
    wrong = [p for p in prefixes if not _PREFIX.fullmatch(p)]
    if wrong:
        print(f"ordernotify: forget --digest takes at least the first {SHORT_DIGEST} hex characters of a digest, "
              f"not {wrong[0]!r}", file=sys.stderr)
        return ExitCode.USAGE
    store = open_store(settings.state_url)
    try:
        with store.transaction() as tx:
            digests = {address_digest(a) for a in (*tx.customer_addresses(args.customer), *args.email)}
            in_store = sorted(d for d in digests if tx.suppression(d) is not None)
        topic = TopicErasure()
        if in_store or args.email or prefixes:
            expected = {*in_store, *(address_digest(a) for a in args.email), *prefixes}
            topic = erase_from_topic(settings, args.customer, digests, prefixes, expected)
        with store.transaction() as tx:
            removed = tx.forget_customer(args.customer)
            gone = sorted({*in_store, *topic.tombstoned})
            removed["suppressions"] = sum(1 for d in gone if tx.suppression(d) is not None)
            for digest in gone:
                tx.forget_suppression(digest)
    finally:
        store.close()
    _print(args, removed, topic)
    if topic.error is None:
        return ExitCode.OK
    left = ", ".join(d[:SHORT_DIGEST] for d in topic.left)
    again = " ".join(f"--digest {d[:SHORT_DIGEST]}" for d in topic.left)
    print(f"ordernotify: {topic.error}; the state store's part is done, not the suppressions topic's: "
          f"{len(topic.left)} digest(s) of this customer still to erase from {settings.suppressions_topic} ({left}); "
          f"once it is back, run: ordernotify forget --customer {args.customer} {again}", file=sys.stderr)
    unreachable = isinstance(topic.error, DependencyUnreachable) or is_unreachable(topic.error)
    return ExitCode.UNREACHABLE if unreachable else ExitCode.REFUSED


def erase_from_topic(settings: Settings, customer_id: str, digests: set[str], prefixes: list[str],
                     expected: set[str], suppressions: SuppressionList | None = None) -> TopicErasure:
    """Tombstone every suppression of the customer's on the topic: those keyed by one of ``digests`` or
    starting with one of ``prefixes``, and those whose record names the customer. A failure is kept, not
    raised: the store's part goes on, and what is left is said (``expected``, the digests and prefixes looked
    for, while the topic could not be read)."""
    done = TopicErasure()
    wanted = sorted(expected)
    own = suppressions is None
    suppressions = SuppressionList(settings) if suppressions is None else suppressions
    try:
        suppressions.load()
        on_topic = {r.address_digest for r in suppressions.records()}
        wanted = sorted({d for d in on_topic if d in digests or d.startswith(tuple(prefixes))}
                        | set(suppressions.of_customer(customer_id)))
        for digest in wanted:
            suppressions.forget(digest)
            done.tombstoned.append(digest)
    except OrderNotifyError as exc:
        done.error = exc
        done.left = [d for d in wanted if d not in done.tombstoned]
    finally:
        if own:
            suppressions.close()
    return done


def _print(args: argparse.Namespace, removed: dict[str, int], topic: TopicErasure) -> None:
    if args.json:
        report: dict[str, Any] = {
            "customer_id": args.customer, "removed": removed,
            "suppressions_topic": {"tombstoned": [d[:SHORT_DIGEST] for d in topic.tombstoned],
                                   "left": [d[:SHORT_DIGEST] for d in topic.left], "complete": topic.error is None}}
        print(json.dumps(report, indent=2))
        return
    total = sum(removed.values())
    print(f"forgot customer {args.customer}: {total} rows" if total else
          f"nothing stored about customer {args.customer}")
    for table, count in removed.items():
        if count:
            print(f"  {table}: {count}")
    if topic.tombstoned:
        print(f"  suppressions topic: {len(topic.tombstoned)} tombstoned "
              f"({', '.join(d[:SHORT_DIGEST] for d in topic.tombstoned)})")
