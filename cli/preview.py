"""``ordernotify preview [--out DIR]``: render every e-mail, in every language, into an HTML gallery.

Sample orders (one item, many items, long names, a partial shipment...) are rendered
with the shop settings given (``--shop-name``, ``--logo-url``, ``--brand-color``...), so
a shop owner can review each e-mail before going live: open DIR/index.html. Nothing is
sent and no broker is needed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consumers.deliver.preview import write_gallery
from ordernotify.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("preview"), metavar="DIR",
                        help="folder to write the gallery into (default: ./preview)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        written = write_gallery(args.out, settings)
    except OSError as exc:
        print(f"preview: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    emails = sum(1 for path in written if path.suffix == ".eml")
    print(f"preview: {emails} e-mails written; open {written[-1]}")
    return 0
