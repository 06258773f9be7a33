"""``ordernotify suppressions list|show ADDRESS|add ADDRESS|remove ADDRESS``: the suppression list, for operators.

Reads the compacted suppressions topic (``--suppressions-topic``) to its end. ``add`` suppresses an address
until lifted; ``remove`` lifts what is in force (a bounce, a complaint, an earlier add). Both need ``--by``
(who) and ``--why``, which the record keeps. Addresses are never printed: the topic knows only their
digests, and ``show`` finds an address by computing its digest.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from cli.exit_codes import ExitCode
from feedback.suppression_list import SuppressionList, SuppressionRecord
from ordernotify.config import Settings

SHORT_DIGEST = 12


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "show", "add", "remove"), help="what to do")
    parser.add_argument("address", nargs="?", metavar="ADDRESS", help="the e-mail address (show, add, remove)")
    parser.add_argument("--by", metavar="WHO", help="who adds or lifts it (add, remove)")
    parser.add_argument("--why", metavar="WHY", help="why (add, remove); kept on the topic")
    parser.add_argument("--all", action="store_true", help="list lifted and expired ones too")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action != "list" and not args.address:
        print(f"ordernotify: suppressions {args.action} needs an ADDRESS", file=sys.stderr)
        return ExitCode.USAGE
    if args.action in ("add", "remove") and not (args.by and args.why):
        print(f"ordernotify: suppressions {args.action} needs --by WHO and --why WHY (the record keeps them)",
              file=sys.stderr)
        return ExitCode.USAGE
    suppressions = SuppressionList(settings)
    try:
        suppressions.load()
        now = datetime.now(UTC)
        if args.action == "list":
            records = [r for r in suppressions.records() if args.all or r.in_force(now)]
            _print(records, args.json, now, empty="no address is suppressed")
            return ExitCode.OK
        if args.action == "show":
            from consumers.deliver.verp import address_digest

            found = suppressions.get(address_digest(args.address))
            _print([found] if found else [], args.json, now, empty="this address is not on the suppression list")
            return ExitCode.OK if found else ExitCode.REFUSED
        if args.action == "add":
            _print([suppressions.add(args.address, args.by, args.why, now)], args.json, now, empty="")
            return ExitCode.OK
        lifted = suppressions.remove(args.address, args.by, args.why, now)
        _print([lifted] if lifted else [], args.json, now, empty="nothing to lift: this address is not suppressed")
        return ExitCode.OK if lifted else ExitCode.REFUSED
    finally:
        suppressions.close()


def state(record: SuppressionRecord, now: datetime) -> str:
    if record.lifted_at is not None:
        return f"lifted {_day(record.lifted_at)} by {record.lifted_by}"
    if record.in_force(now):
        return "until lifted" if record.suppressed_until is None else f"until {_day(record.suppressed_until)}"
    return "counted, not suppressed" if record.suppressed_until and record.suppressed_until <= record.last_at \
        else "expired"


def _print(records: list[SuppressionRecord], as_json: bool, now: datetime, empty: str) -> None:
    if as_json:
        print(json.dumps({"suppressions": [_json(r, now) for r in records]}, indent=2))
        return
    if not records:
        print(empty)
        return
    header = ("DIGEST", "REASON", "SINCE", "COUNT", "STATE", "DETAIL")
    rows = [(r.address_digest[:SHORT_DIGEST], r.reason.value, _day(r.first_at), str(r.count), state(r, now),
             r.lifted_why or r.detail or "-") for r in records]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        print("  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip())


def _json(record: SuppressionRecord, now: datetime) -> dict[str, Any]:
    def iso(when: datetime | None) -> str | None:
        return None if when is None else when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    return {"address_digest": record.address_digest, "reason": record.reason.value, "first_at": iso(record.first_at),
            "last_at": iso(record.last_at), "count": record.count, "suppressed_until": iso(record.suppressed_until),
            "in_force": record.in_force(now), "notification_id": record.notification_id,
            "order_id": record.order_id, "customer_id": record.customer_id, "detail": record.detail,
            "lifted_at": iso(record.lifted_at), "lifted_by": record.lifted_by, "lifted_why": record.lifted_why}


def _day(when: datetime) -> str:
    return f"{when.astimezone(UTC):%Y-%m-%d}"
