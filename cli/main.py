"""The ``ordernotify`` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

from kafka.errors import KafkaError

from cli.exit_codes import ExitCode, for_kafka_error
from cli.help_format import CompactHelpFormatter, summary
from ordernotify import __version__
from ordernotify.config import ENV_PREFIX, add_settings_arguments, load_settings
from ordernotify.errors import DependencyUnreachable, OrderNotifyError
from ordernotify.logs import configure_logging
from ordernotify.reachability import broker_unreachable, is_bootstrap_failure, kafka_error_text

log = logging.getLogger(__name__)

HELP_ALL = "--help-all"
_KAFKA = ("kafka", "topics")


@dataclass(frozen=True)
class Command:
    help: str
    load: Callable[[], ModuleType]
    #: the setting groups (ordernotify/config.py) the command reads: only these are its options
    settings: tuple[str, ...]
    #: groups whose options --help names in one line (--help-all lists them): another command's business
    summarized: tuple[str, ...] = ()


def _commands() -> dict[str, Command]:
    """Subcommand -> its one-line help, a lazy import of its module (add_arguments/run), its setting groups."""
    import importlib

    def lazy(name: str) -> Callable[[], ModuleType]:
        return lambda: importlib.import_module(name)

    return {
        "demo": Command("run the whole pipeline on an embedded broker and SMTP capture", lazy("cli.demo"),
                        (*_KAFKA, "shop", "policy", "operations", "logging"), ("shop",)),
        "consume": Command("run a consumer: events in, e-mails out", lazy("cli.consume"),
                           (*_KAFKA, "group", "smtp", "store", "policy", "shop", "delivery", "operations",
                            "logging"), ("shop",)),
        "emit": Command("validate and produce events from JSON lines", lazy("cli.emit"), (*_KAFKA, "logging")),
        "relay": Command("relay Debezium's JSON outbox events to the events topic",
                         lazy("cli.relay"), (*_KAFKA, "relay", "operations", "logging")),
        "simulate": Command("produce realistic order lifecycles", lazy("cli.simulate"), (*_KAFKA, "logging")),
        "preview": Command("render every e-mail into an HTML gallery", lazy("cli.preview"), ("shop", "logging")),
        "dlq": Command("list or replay dead-lettered events", lazy("cli.dlq"), (*_KAFKA, "logging")),
        "forget": Command("erase a customer's personal data from the state store and the suppression list",
                          lazy("cli.forget"), (*_KAFKA, "store", "logging")),
        "status": Command("lag, dead letters and last e-mail of a consumer group", lazy("cli.status"),
                          (*_KAFKA, "group", "logging")),
        "bounces": Command("take bounces and complaints, keep the suppression list", lazy("cli.bounces"),
                           (*_KAFKA, "smtp", "bounces", "webhooks", "store", "operations", "logging"),
                           ("smtp", "webhooks")),  # SMTP: the bounce domain and secret; webhooks: --help-all
        "history": Command("an order's e-mails sent and news not sent, with why", lazy("cli.history"),
                           (*_KAFKA, "logging")),
        "gateway": Command("take signed order webhooks over HTTP, publish them to Kafka", lazy("cli.gateway"),
                           (*_KAFKA, "gateway", "logging")),
        "suppressions": Command("list, show, add or lift suppressed addresses", lazy("cli.suppressions"),
                                (*_KAFKA, "logging")),
    }


def build_parser(show_advanced: bool = False, only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``show_advanced`` lists the tuning settings in ``--help`` too.

    ``only``: the command about to run; the other commands' modules (the consumer, the web servers...) are then
    not imported, which is most of a short command's start-up, and they appear by name and help line only."""
    parser = argparse.ArgumentParser(
        prog="ordernotify",
        description="Order lifecycle events on Kafka in, few and meaningful customer e-mails out.",
        epilog="Run 'ordernotify COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"ordernotify {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in _commands().items():
        if only is not None and name != only:
            sub.add_parser(name, help=command.help)
            continue
        module = command.load()
        sub_parser = sub.add_parser(
            name, help=command.help, description=summary(module.__doc__, command.help),
            usage=_usage(name, module), formatter_class=CompactHelpFormatter,
            epilog=f"Each option is also a variable (--log-level: {ENV_PREFIX}LOG_LEVEL); a password is best given "
            f"as {ENV_PREFIX}<NAME>_FILE, a file holding it. {HELP_ALL}: the tuning options too.",
        )
        module.add_arguments(sub_parser)
        sub_parser.formatter_class = CompactHelpFormatter  # add_arguments may have set its own
        add_settings_arguments(sub_parser, command.settings, show_advanced, command.summarized)
        sub_parser.add_argument("--print-config", action="store_true",
                                help="print every resolved setting (secrets masked) and exit")
        sub_parser.add_argument(HELP_ALL, action="store_true", help="--help, with the tuning options too")
        sub_parser.set_defaults(run=module.run)
    return parser


def _usage(name: str, module: ModuleType) -> str:
    """The command's own arguments; the settings are summed up as [options]."""
    own = argparse.ArgumentParser(prog=f"ordernotify {name}", add_help=False)
    module.add_arguments(own)
    return own.format_usage().removeprefix("usage: ").strip().replace(f"ordernotify {name}",
                                                                       f"ordernotify {name} [options]", 1)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    show_advanced = HELP_ALL in argv
    if show_advanced:
        argv = ["--help" if arg == HELP_ALL else arg for arg in argv]
    commands = _commands()
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(show_advanced, only=chosen if chosen in commands else "")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args)
    except OrderNotifyError as exc:
        parser.exit(ExitCode.USAGE, f"ordernotify: {exc}\n")
    configure_logging(settings.log_level, settings.log_json)
    if args.print_config:
        print(json.dumps(settings.masked(), indent=2))
        return ExitCode.OK
    try:
        return int(args.run(args, settings))
    except DependencyUnreachable as exc:
        return _fail(exc, ExitCode.UNREACHABLE)
    except (OrderNotifyError, KafkaError) as exc:
        if is_bootstrap_failure(exc):
            return _fail(broker_unreachable(settings), ExitCode.UNREACHABLE)
        if isinstance(exc, KafkaError):
            return _fail(f"{args.command}: Kafka at {settings.bootstrap_servers}: {kafka_error_text(exc)}",
                         for_kafka_error(exc))
        return _fail(f"{args.command}: {exc}", ExitCode.REFUSED)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


def _fail(message: object, code: ExitCode) -> int:
    """The one line a failed command prints: the project's own report, no traceback, no library log."""
    print(f"ordernotify: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
