"""The ``ordernotify`` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from ordernotify import __version__
from ordernotify.config import add_settings_arguments, load_settings
from ordernotify.errors import OrderNotifyError
from ordernotify.logs import configure_logging

log = logging.getLogger(__name__)


def _commands() -> dict[str, tuple[str, Callable[[], ModuleType]]]:
    """Subcommand -> (one-line help, lazy import of its module with add_arguments/run)."""
    import importlib

    def lazy(name: str) -> Callable[[], ModuleType]:
        return lambda: importlib.import_module(name)

    return {
        "demo": ("run the whole pipeline on an embedded broker and SMTP capture", lazy("cli.demo")),
        "consume": ("run a consumer: events in, e-mails out", lazy("cli.consume")),
        "emit": ("validate and produce events from JSON lines", lazy("cli.emit")),
        "simulate": ("produce realistic order lifecycles", lazy("cli.simulate")),
        "preview": ("render every e-mail into an HTML gallery", lazy("cli.preview")),
        "dlq": ("list or replay dead-lettered events", lazy("cli.dlq")),
        "forget": ("erase a customer's personal data from the state store", lazy("cli.forget")),
        "status": ("lag, dead letters and last e-mail of a consumer group", lazy("cli.status")),
        "history": ("an order's communications: e-mails sent and news not sent, with why",
                    lazy("cli.history")),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ordernotify",
        description="Order lifecycle events on Kafka in, few and meaningful customer e-mails out.",
        epilog="Every setting can also come from an ORDERNOTIFY_* environment variable (named in each help line); "
        "a secret can come from a file named by ORDERNOTIFY_<NAME>_FILE.",
    )
    parser.add_argument("--version", action="version", version=f"ordernotify {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, load) in _commands().items():
        module = load()
        command = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(command)
        add_settings_arguments(command)
        command.add_argument("--print-config", action="store_true", help="print the resolved settings and exit")
        command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args)
    except OrderNotifyError as exc:
        parser.exit(2, f"ordernotify: {exc}\n")
    configure_logging(settings.log_level, settings.log_json)
    if args.print_config:
        print(json.dumps(settings.masked(), indent=2))
        return 0
    try:
        return int(args.run(args, settings))
    except OrderNotifyError as exc:
        log.error("%s", exc)
        print(f"ordernotify {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
