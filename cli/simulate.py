"""``ordernotify simulate``: produce realistic order lifecycles (see :mod:`producers.simulator`)."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable

from ordernotify.config import Settings
from producers.event_producer import DeliveryHandle, OrderEventProducer
from producers.exceptions import DeliveryFailed
from producers.simulator import simulate_orders
from schemas.events import EventType


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--orders", type=_non_negative(int), default=30, help="number of orders (default: 30)")
    parser.add_argument("--rate", type=_non_negative(float), default=0.0,
                        help="events per second (default: 0 = as fast as possible)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed; the same seed gives the same orders and event ids (default: 0)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    events = simulate_orders(args.orders, seed=args.seed)
    producer = OrderEventProducer(settings)
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    handles: list[DeliveryHandle] = []
    failures = 0
    started = time.monotonic()
    try:
        for i, event in enumerate(events):
            if interval:
                delay = started + i * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            handles.append(producer.send(event))
        for handle in handles:
            try:
                handle.result()
            except DeliveryFailed as exc:
                failures += 1
                print(f"simulate: {exc}", file=sys.stderr)
    except DeliveryFailed as exc:
        failures += 1
        print(f"simulate: {exc}", file=sys.stderr)
    finally:
        try:
            producer.close()
        except DeliveryFailed as exc:
            failures += 1
            print(f"simulate: {exc}", file=sys.stderr)
    counts = Counter(event.event_type for event in events)
    per_type = ", ".join(f"{event_type.value} {counts[event_type]}" for event_type in EventType)
    elapsed = time.monotonic() - started
    print(f"simulate: {len(events)} events for {args.orders} orders to {settings.events_topic} "
          f"in {elapsed:.1f} s ({per_type}); seed {args.seed}")
    if failures:
        print(f"simulate: {failures} event(s) not acknowledged", file=sys.stderr)
        return 1
    return 0


def _non_negative(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative, not {text}")
        return value

    parse.__name__ = kind.__name__
    return parse
