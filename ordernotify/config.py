"""All settings in one place: each one a field here, a ``--flag`` and an ``ORDERNOTIFY_*`` variable.

Precedence: command-line flag, then environment variable, then the default.
The flag and variable names derive from the field name (``smtp_host`` ->
``--smtp-host`` / ``ORDERNOTIFY_SMTP_HOST``), so ``--help`` and the README
table cannot drift apart from the code.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import os
import re
import typing
import urllib.parse
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ordernotify.errors import ConfigError

ENV_PREFIX = "ORDERNOTIFY_"
MiB = 1024 * 1024
# What a dead letter adds to its source record: the dlq.* headers (dlq.detail is cut at 2,000 bytes, a topic
# name has at most 249 characters), or the dlq.replayed_from header of a replay. Far more than they need.
DEAD_LETTER_HEADROOM_BYTES = 64 * 1024
# Apache Kafka's default socket.request.max.bytes: one produce request, so one dead letter, is at most this.
KAFKA_REQUEST_MAX_BYTES = 100 * MiB
_QUIET_HOURS = re.compile(r"^([01]?\d|2[0-3])-([01]?\d|2[0-3])$")
# A VERP address's local part is LOCAL+TOKEN, at most 64 characters (RFC 5321 4.5.3.1.1); the token takes 49.
MAX_BOUNCE_LOCAL_PART = 15
MIN_VERP_SECRET_CHARS = 16
_BOUNCE_LOCAL_PART = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$)({_LABEL}\.)*{_LABEL}$")


class Secret:
    """A password or token: never shown by ``repr``, ``str`` or ``--print-config``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _opt(default: Any, help: str, group: str, choices: tuple[str, ...] | None = None, *, more: str = "",
         advanced: bool = False) -> Any:
    """One setting: ``help`` is the one line ``--help`` shows (plain words), ``more`` what the README table
    adds to it; ``advanced`` ones are tuning knobs that only ``--help-all`` lists."""
    return field(default=default, metadata={"help": help, "group": group, "choices": choices, "more": more,
                                            "advanced": advanced})


@dataclass(frozen=True)
class Settings:
    # Kafka: where the broker is and how to log in
    bootstrap_servers: str = _opt("127.0.0.1:9092", "Kafka bootstrap servers, comma-separated", "kafka")
    security_protocol: str = _opt(
        "PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", "kafka",
        ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    )
    sasl_mechanism: str = _opt("", "Kafka SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", "kafka")
    sasl_username: str = _opt("", "Kafka SASL user name", "kafka")
    sasl_password: Secret = _opt(Secret(""), "Kafka SASL password (a flag shows in ps: use the variable)", "kafka",
                                 advanced=True)
    ssl_cafile: str = _opt("", "CA bundle for the brokers' certificates", "kafka")
    kafka_connect_timeout_s: float = _opt(
        10.0, "give up reaching the broker at start after this long", "kafka",
        more="; the command then exits with code 3 (a consumer's later outages are waited for)")
    # Topics and records
    events_topic: str = _opt("orders.events", "topic of order lifecycle events", "topics")
    preferences_topic: str = _opt("customers.preferences", "customer preferences (compacted)", "topics")
    sent_topic: str = _opt("notifications.sent", "communications log topic", "topics")
    dlq_topic: str = _opt("notifications.dlq", "dead-letter topic", "topics")
    suppressions_topic: str = _opt("customers.suppressions", "suppression list (compacted)",
                                   "topics")
    max_record_bytes: int = _opt(
        16 * MiB, "largest record on the events topic", "topics",
        more=" (set its max.message.bytes to match); dead letters of records up to this size keep their bytes")
    produce_timeout_s: float = _opt(30.0, "wait this long for the broker's acknowledgement", "topics",
                                    advanced=True)
    # The consumer group
    group_id: str = _opt("ordernotify", "consumer group id", "group")
    session_timeout_ms: int = _opt(10000, "consumer group session timeout", "group", advanced=True)
    max_poll_records: int = _opt(200, "most records handled per poll", "group", more=" (bounds in-flight work)",
                                 advanced=True)
    max_poll_interval_s: float = _opt(300.0, "the group evicts a member that does not poll for this long", "group",
                                      advanced=True)
    # The outbox relay (``ordernotify relay``): JSON events on a staging topic in, events on the events topic out
    relay_topic: str = _opt("orders.events.json", "staging topic of JSON events to relay", "relay",
                            more=" (Debezium's outbox event router writes it: deploy/debezium/)")
    relay_group_id: str = _opt("ordernotify-relay", "consumer group of the relay", "relay",
                               more=" (its committed offsets say what was relayed)")
    # SMTP
    smtp_host: str = _opt("127.0.0.1", "SMTP server host", "smtp")
    smtp_port: int = _opt(25, "SMTP server port", "smtp")
    smtp_tls: str = _opt("none", "none, starttls (required) or implicit (SMTPS)", "smtp",
                         ("none", "starttls", "implicit"), more="; starttls never falls back to clear text")
    smtp_ca_file: str = _opt("", "CA bundle for the server's certificate", "smtp", more=" (empty: the system's CAs)")
    smtp_username: str = _opt("", "SMTP AUTH user name (empty: no AUTH)", "smtp")
    smtp_password: Secret = _opt(Secret(""), "SMTP AUTH password (a flag shows in ps: use the variable)", "smtp",
                                 advanced=True)
    smtp_timeout_s: float = _opt(10.0, "timeout of each SMTP step", "smtp", more=" (connect, greeting, DATA)")
    smtp_connections: int = _opt(4, "persistent SMTP connections used in parallel", "smtp", advanced=True)
    smtp_retry_budget_s: float = _opt(300.0, "retry transient SMTP failures this long", "smtp",
                                      more=" before giving up", advanced=True)
    bounce_domain: str = _opt("", "domain of the bounce addresses (VERP; empty: off)", "smtp",
                              more=": each e-mail's envelope sender becomes LOCAL+TOKEN@DOMAIN, so that a bounce "
                                   "names its e-mail; the From: stays --sender-address")
    bounce_local_part: str = _opt("bounces", "local part of the bounce addresses", "smtp",
                                  more=f" (at most {MAX_BOUNCE_LOCAL_PART} characters: letters, digits, . - _)",
                                  advanced=True)
    verp_secret: Secret = _opt(Secret(""), "key that signs the bounce addresses (use the variable or _FILE)", "smtp",
                               more="; at least 16 characters, needed with --bounce-domain; to change it, move the "
                                    "old key to --verp-previous-secrets, or bounces of e-mails sent before are "
                                    "refused as forged", advanced=True)
    verp_previous_secrets: Secret = _opt(
        Secret(""), "earlier --verp-secret keys whose bounce addresses are still accepted, one per line", "smtp",
        more=" (while rotating: new addresses are signed with --verp-secret only; keep an old key for as long as "
             "its e-mails may bounce, a few days); each at least 16 characters; a key may contain spaces, so "
             "lines separate them; use the variable or _FILE",
        advanced=True)
    # The shop, as the customer sees it
    shop_name: str = _opt("Example Shop", "shop name shown in e-mails", "shop")
    sender_address: str = _opt("orders@shop.example", "From: address of the e-mails", "shop")
    shop_url: str = _opt("https://shop.example", "the shop's home page", "shop")
    support_email: str = _opt("help@shop.example", "support address in the help footer", "shop")
    default_locale: str = _opt("en", "locale used when an event's locale has no translation", "shop")
    logo_url: str = _opt("", "absolute URL of the logo (empty: the shop name as text)", "shop",
                         more="; shown in the e-mails' header")
    brand_color: str = _opt("#1f5f8b", "accent colour of headlines and buttons (hex)", "shop")
    footer_address: str = _opt("Example Shop Ltd, 1 Example Street, Example City", "postal address in the footer",
                               "shop")
    support_phone: str = _opt("", "support phone number in the help footer", "shop")
    chat_url: str = _opt("", "link to the shop's chat support", "shop")
    faq_url: str = _opt("https://shop.example/help", "link to the self-service help pages", "shop")
    complaints_url: str = _opt("https://shop.example/complaints", "link to the complaints procedure", "shop")
    complaint_response_days: int = _opt(30, "days to answer a complaint (shown in e-mails)", "shop")
    # Notification policy
    coalesce_window_s: float = _opt(90.0, "related news of an order within this is one e-mail", "policy")
    throttle_per_hour: int = _opt(3, "most shipping e-mails per customer and hour", "policy",
                                  more=" (rolling; shipped, out for delivery, delivered)")
    max_event_age_h: float = _opt(72.0, "events older than this are not e-mailed as news", "policy")
    quiet_hours: str = _opt("", "hold shipping news in these local hours", "policy",
                            more=", e.g. 22-08 (empty: off); shipped, out for delivery, delivered")
    complaint_blocks_must_send: bool = _opt(
        False, "a spam complaint stops must-send e-mails too", "policy", advanced=True,
        more=" (order placed, choices to make, refunds); it always stops the news a customer can switch off")
    # Bounces: what the suppression list makes of them (defaults and their reasons: feedback/README.md)
    soft_bounce_limit: int = _opt(3, "soft bounces within --soft-bounce-window-days that suppress an address",
                                  "bounces")
    soft_bounce_window_days: float = _opt(14.0, "soft bounces are counted within this many days", "bounces")
    soft_bounce_suppress_days: float = _opt(7.0, "an address soft-bounced too often is suppressed this long",
                                            "bounces")
    # State store
    state_url: str = _opt(
        "sqlite:///ordernotify-state.db", "sqlite:///PATH or postgresql://USER@HOST/DB", "store",
        more=" (the state store)"
    )
    retention_margin_h: float = _opt(
        24.0, "keep what is done this long past --max-event-age-h", "store",
        more=" (processed event ids, order facts, finished outbox rows)", advanced=True)
    # Delivery: the outbox and the render processes
    outbox_batch: int = _opt(64, "outbox entries a consumer claims and renders at once", "delivery", advanced=True)
    outbox_lease_s: float = _opt(
        15.0, "a claim on an outbox entry lasts this long unless renewed", "delivery",
        more="; a dead consumer's e-mails are taken over after it", advanced=True)
    outbox_max_backlog: int = _opt(
        5000, "pause reading events while this many e-mails wait", "delivery", more=" (the store stays bounded)",
        advanced=True)
    render_processes: int = _opt(
        1, "processes rendering e-mails (0: in the consumer's threads)", "delivery", advanced=True
    )
    # The bounce receiver (``ordernotify bounces``); the VERP envelope senders are SMTP settings above
    bounces_host: str = _opt("127.0.0.1", "address `ordernotify bounces` listens on", "bounces")
    bounces_port: int = _opt(8024, "port of the bounce receiver", "bounces")
    bounces_protocol: str = _opt("lmtp", "lmtp (from an MTA's lmtp transport) or smtp", "bounces",
                                 ("lmtp", "smtp"))
    bounce_max_bytes: int = _opt(
        MiB, "largest bounce taken; larger ones are refused (552)", "bounces",
        more=" while being read, never held whole", advanced=True)
    # Operations
    metrics_host: str = _opt("0.0.0.0", "address of the /metrics, /healthz, /readyz endpoint", "operations",
                             advanced=True)
    metrics_port: int = _opt(9102, "port of /metrics, /healthz and /readyz (0: off)", "operations")
    stuck_after_s: float = _opt(
        600.0, "exit (for a restart) after this long without progress", "operations",
        more=": nothing committed while records wait", advanced=True
    )
    # Provider webhooks: bounces and complaints reported by Amazon SES (via SNS), Postmark and Mailgun
    webhook_host: str = _opt("0.0.0.0", "address of the provider webhooks' HTTP endpoint", "webhooks", advanced=True)
    webhook_port: int = _opt(0, "port of /webhooks/ses, /webhooks/postmark, /webhooks/mailgun (0: off)", "webhooks",
                             more="; each provider's path answers 404 until its setting below is given")
    webhook_max_body_bytes: int = _opt(MiB, "largest webhook request body", "webhooks",
                                       more=" (larger ones: 413); an SNS message is at most 256 KiB", advanced=True)
    ses_sns_topic_arns: str = _opt("", "SNS topic ARNs whose SES notifications are taken, comma-separated", "webhooks",
                                   more=" (empty: /webhooks/ses off); messages of other topics are refused")
    sns_confirm_subscriptions: bool = _opt(False, "confirm SNS subscriptions to those topics on their own", "webhooks",
                                           more=" (off: the log names the SubscribeURL to open)")
    sns_cert_test_hosts: str = _opt("", "also fetch SNS signing certificates from these HOST:PORT (tests only)",
                                    "webhooks", more=", over http too; in production certificates come only from "
                                                     "https://sns.REGION.amazonaws.com", advanced=True)
    postmark_webhook_user: str = _opt("", "user name in the Postmark webhook URL's basic auth", "webhooks")
    postmark_webhook_password: Secret = _opt(Secret(""), "password in the Postmark webhook URL's basic auth",
                                             "webhooks", more=" (empty: /webhooks/postmark off)")
    mailgun_signing_key: Secret = _opt(Secret(""), "Mailgun's HTTP webhook signing key", "webhooks",
                                       more=" (empty: /webhooks/mailgun off)")
    mailgun_replay_window_s: float = _opt(300.0, "refuse Mailgun webhooks signed longer ago than this", "webhooks",
                                          more=" (or later: clocks apart); a token is taken once within it",
                                          advanced=True)
    # The webhook gateway (``ordernotify gateway``): signed HTTP webhooks in, events on the events topic
    gateway_host: str = _opt("0.0.0.0", "address `ordernotify gateway` listens on", "gateway", advanced=True)
    gateway_port: int = _opt(8090, "port of /v1/events, /v1/platforms/NAME, /metrics, /healthz, /readyz", "gateway")
    gateway_webhook_secrets: Secret = _opt(
        Secret(""), "Standard Webhooks secrets (whsec_...) that sign /v1/events, space-separated", "gateway",
        more=" (several while rotating; empty: /v1/events off); use the variable or _FILE")
    gateway_replay_window_s: float = _opt(
        300.0, "refuse /v1/events signed longer ago (or later) than this", "gateway",
        more=" (the Standard Webhooks tolerance; clocks apart count too)", advanced=True)
    gateway_answer_timeout_s: float = _opt(
        4.0, "answer every webhook within this", "gateway",
        more="; an event the broker has not acknowledged by then gets 503 with Retry-After, and the platform sends "
             "it again (Shopify waits 5 s)")
    gateway_retry_after_s: int = _opt(10, "Retry-After of a 503 while the broker is unreachable", "gateway",
                                      advanced=True)
    gateway_max_body_bytes: int = _opt(MiB, "largest webhook body", "gateway", more=" (larger ones: 413)",
                                       advanced=True)
    # The webhook gateway: the shop platforms' adapters
    shopify_secret: Secret = _opt(Secret(""), "Shopify app's client secret that signs its webhooks (empty: off)",
                                  "gateway", more=" (X-Shopify-Hmac-Sha256; use the variable or _FILE)")
    shopify_admin_token: Secret = _opt(
        Secret(""), "Shopify Admin API access token, to map refunds/create and fulfillment_events/create", "gateway",
        more=" (their payloads name no customer: the order is looked up; scope read_orders; empty: those topics "
             "stay unmapped; use the variable or _FILE)")
    shopify_admin_api_version: str = _opt("2026-07", "Shopify Admin API version asked", "gateway", advanced=True,
                                          more=" (YYYY-MM; Shopify supports each for at least a year)")
    shopify_admin_api_url: str = _opt(
        "https://{shop}/admin/api/{version}/graphql.json", "Shopify GraphQL Admin API endpoint", "gateway",
        advanced=True, more="; {shop} is the webhook's X-Shopify-Shop-Domain (another URL: a proxy or a test double)")
    woocommerce_secret: Secret = _opt(Secret(""), "secret of the WooCommerce webhooks (empty: off)", "gateway",
                                      more=" (X-WC-Webhook-Signature; use the variable or _FILE)")
    woocommerce_api_consumer_key: Secret = _opt(
        Secret(""), "WooCommerce REST API consumer key (ck_...), to map partial refunds", "gateway",
        more=" (order.updated lists a refund without its items: the newest refund is looked up at "
             "--woocommerce-shop-url; a key with Read access; empty: partial refunds stay unmapped; use the variable "
             "or _FILE)")
    woocommerce_api_consumer_secret: Secret = _opt(
        Secret(""), "WooCommerce REST API consumer secret (cs_...) of that key", "gateway",
        more=" (use the variable or _FILE)")
    woocommerce_shop_url: str = _opt(
        "", "the WooCommerce shop's address, e.g. https://shop.example.org/", "gateway",
        more=" (WordPress's Site Address, as the webhooks' X-WC-Webhook-Source names it: the REST API is asked "
             "only there, and a delivery naming another shop is refused; https, or http to a loopback address)")
    saleor_jwks_url: str = _opt("", "Saleor's JWKS URL, e.g. https://shop.example/.well-known/jwks.json (empty: off)",
                                "gateway", more=" (its keys check Saleor-Signature; fetched again for an unknown key)")
    saleor_jwks_cache_s: float = _opt(600.0, "keep Saleor's keys this long", "gateway", advanced=True)
    shop_default_locale: str = _opt("en", "customer locale when a platform's payload has none", "gateway")
    shop_default_time_zone: str = _opt("UTC", "customer time zone when a platform's payload has none (IANA name)",
                                       "gateway")
    shop_default_currency: str = _opt("", "currency when a platform's payload names none (ISO 4217)", "gateway",
                                      advanced=True)
    # Logging
    log_level: str = _opt("INFO", "DEBUG (with all of kafka-python's logs), INFO, WARNING, ERROR", "logging",
                          ("DEBUG", "INFO", "WARNING", "ERROR"))
    log_json: bool = _opt(False, "log as JSON lines", "logging")

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection options shared by every kafka-python client we create."""
        options: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()],
            "security_protocol": self.security_protocol,
            "bootstrap_timeout_ms": int(self.kafka_connect_timeout_s * 1000),
        }
        if self.sasl_mechanism:
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password.reveal(),
            )
        if self.ssl_cafile:
            options["ssl_cafile"] = self.ssl_cafile
        return options

    @property
    def max_dead_letter_bytes(self) -> int:
        """The dead-letter topic's limit: the largest events-topic record plus the headers a dead letter adds."""
        return self.max_record_bytes + DEAD_LETTER_HEADROOM_BYTES

    def kafka_producer_options(self, max_request_size: int | None = None) -> dict[str, Any]:
        """Connection options plus the largest record the producer may send: by default a dead letter
        (``max_dead_letter_bytes``); the events producer passes ``max_record_bytes``."""
        limit = self.max_dead_letter_bytes if max_request_size is None else max_request_size
        return {**self.kafka_client_options(), "max_request_size": limit}

    def kafka_consumer_options(self) -> dict[str, Any]:
        """Connection options plus fetch sizes that take the largest dead letter whole.

        A broker returns a record larger than the fetch sizes anyway (KIP-74), but only one at a time;
        with the sizes at the limit, one fetch holds such a record, and never more than that in total
        (kafka-python's own default total is 50 MiB)."""
        return {
            **self.kafka_client_options(),
            "max_partition_fetch_bytes": self.max_dead_letter_bytes,
            "fetch_max_bytes": self.max_dead_letter_bytes,
        }

    def quiet_hours_range(self) -> tuple[int, int] | None:
        """(start hour, end hour) in the customer's local time, or None when quiet hours are off."""
        if not self.quiet_hours:
            return None
        start, end = self.quiet_hours.split("-")
        return int(start), int(end)

    def masked(self) -> dict[str, Any]:
        """Every setting, with secrets masked: what ``--print-config`` shows."""
        return {f.name: (repr(v) if isinstance(v, Secret) else v) for f, v in self._items()}

    def _items(self) -> list[tuple[dataclasses.Field[Any], Any]]:
        return [(f, getattr(self, f.name)) for f in dataclasses.fields(self)]


_TYPES = typing.get_type_hints(Settings)
GROUP_TITLES = {"kafka": "Kafka", "topics": "topics", "group": "consumer group", "smtp": "SMTP",
                "shop": "shop (as the customer sees it)", "policy": "notification policy", "store": "state store",
                "delivery": "delivery", "bounces": "bounces and complaints", "operations": "operations",
                "relay": "outbox relay",
                "webhooks": "provider webhooks", "gateway": "webhook gateway", "logging": "logging"}


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def add_settings_arguments(
    parser: argparse.ArgumentParser, groups: tuple[str, ...] = tuple(GROUP_TITLES), show_advanced: bool = True,
    summarized: tuple[str, ...] = (),
) -> None:
    """Add a flag for every setting of the named groups; defaults stay None so env can apply.

    Every flag works; ``--help`` leaves out the advanced settings and the options of the ``summarized``
    groups (named in one line instead) unless ``show_advanced``."""
    arg_groups = {g: parser.add_argument_group(GROUP_TITLES[g]) for g in groups}
    for f in dataclasses.fields(Settings):
        group = f.metadata["group"]
        if group not in arg_groups:
            continue
        kind = _TYPES[f.name]
        hidden = not show_advanced and (f.metadata["advanced"] or group in summarized)
        help_text = argparse.SUPPRESS if hidden else _help_line(f)
        if kind is bool:
            arg_groups[group].add_argument(
                flag_name(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            arg_groups[group].add_argument(
                flag_name(f.name), default=None, help=help_text, choices=f.metadata["choices"],
                metavar=_metavar(f.name, kind),
            )
    if not show_advanced:
        for group in summarized:
            flags = [flag_name(f.name) for f in dataclasses.fields(Settings) if f.metadata["group"] == group]
            if flags:
                names = ", ".join(flags[:3])
                arg_groups[group].description = f"{len(flags)} options ({names}...): --help-all lists them"


def _help_line(f: dataclasses.Field[Any]) -> str:
    """The setting's plain help and its default in brackets (none for secrets and empty defaults)."""
    default = f.default
    if isinstance(default, Secret) or default in ("", False):
        return str(f.metadata["help"])
    return f"{f.metadata['help']} [{default}]".replace("%", "%%")


def _metavar(name: str, kind: Any) -> str:
    """What the value is, in a word: SECONDS, HOURS, MS, N, or the field name's last word (HOST, URL...)."""
    unit = name.rsplit("_", 1)[-1]
    if kind is int and unit not in ("ms", "bytes"):
        return "N"
    return {"s": "SECONDS", "h": "HOURS"}.get(unit, unit.upper())


def load_settings(args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting: flag, then environment, then default. ``*_FILE`` variables name a secret file."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        raw: Any = getattr(args, f.name, None) if args is not None else None
        source = flag_name(f.name)
        if raw is None and env_name(f.name) in environ:
            raw, source = environ[env_name(f.name)], env_name(f.name)
        if raw is None and env_name(f.name) + "_FILE" in environ:
            path = environ[env_name(f.name) + "_FILE"]
            try:
                with open(path, encoding="utf-8") as fh:
                    raw, source = fh.read().strip(), env_name(f.name) + "_FILE"
            except OSError as exc:
                raise ConfigError(f"{env_name(f.name)}_FILE: cannot read {path}: {exc.strerror}") from exc
        if raw is None:
            continue
        values[f.name] = _convert(_TYPES[f.name], raw, source, f.metadata["choices"])
    settings = Settings(**values)
    _check(settings)
    return settings


def _convert(kind: Any, raw: Any, source: str, choices: tuple[str, ...] | None) -> Any:
    if isinstance(raw, kind) and not isinstance(raw, str | Secret):
        return raw
    text = str(raw).strip() if kind is not Secret else str(raw)
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is Secret:
            return raw if isinstance(raw, Secret) else Secret(text)
    except ValueError:
        raise ConfigError(f"{source}: {text!r} is not a valid {kind.__name__}") from None
    if choices and text not in choices:
        raise ConfigError(f"{source}: {text!r} is not one of {', '.join(choices)}")
    return text


def _check(settings: Settings) -> None:
    if settings.smtp_connections < 1:
        raise ConfigError("--smtp-connections must be at least 1")
    if settings.outbox_batch < 1:
        raise ConfigError("--outbox-batch must be at least 1")
    if settings.outbox_lease_s < 3:
        raise ConfigError("--outbox-lease-s must be at least 3 (it is renewed every third of it)")
    if settings.outbox_max_backlog < 1:
        raise ConfigError("--outbox-max-backlog must be at least 1")
    if settings.render_processes < 0:
        raise ConfigError("--render-processes must be 0 or more")
    if settings.max_poll_records < 1:
        raise ConfigError("--max-poll-records must be at least 1")
    if not MiB <= settings.max_record_bytes <= KAFKA_REQUEST_MAX_BYTES - DEAD_LETTER_HEADROOM_BYTES:
        raise ConfigError(
            f"--max-record-bytes must be between {MiB} (Kafka's default) and "
            f"{KAFKA_REQUEST_MAX_BYTES - DEAD_LETTER_HEADROOM_BYTES} (a dead letter must fit one produce request, "
            f"{KAFKA_REQUEST_MAX_BYTES} bytes at most by Kafka's default)"
        )
    if settings.quiet_hours and not _QUIET_HOURS.match(settings.quiet_hours):
        raise ConfigError(f"--quiet-hours: {settings.quiet_hours!r} is not HH-HH, e.g. 22-08")
    if not settings.state_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError("--state-url must start with sqlite:/// or postgresql://")
    _check_bounces(settings)
    _check_webhooks(settings)
    _check_gateway_shop(settings)
    _check_gateway(settings)
    if settings.bounce_max_bytes < 64 * 1024:
        raise ConfigError("--bounce-max-bytes must be at least 65536 (a DSN with the returned headers)")
    if settings.soft_bounce_limit < 1:
        raise ConfigError("--soft-bounce-limit must be at least 1")
    if settings.soft_bounce_window_days <= 0 or settings.soft_bounce_suppress_days <= 0:
        raise ConfigError("--soft-bounce-window-days and --soft-bounce-suppress-days must be more than 0")
    if settings.smtp_username and settings.smtp_tls == "none":
        raise ConfigError("--smtp-username needs --smtp-tls starttls or implicit: a password must not cross in clear")


def verp_previous_keys(settings: Settings) -> list[str]:
    """The keys of ``verp_previous_secrets``: one per line, each stripped, blank lines skipped. Lines, not spaces
    or commas: a key that signed addresses until now may contain either, and must be listed as it was."""
    return [line.strip() for line in settings.verp_previous_secrets.reveal().splitlines() if line.strip()]


def _check_bounces(settings: Settings) -> None:
    if not _BOUNCE_LOCAL_PART.match(settings.bounce_local_part) or \
            len(settings.bounce_local_part) > MAX_BOUNCE_LOCAL_PART:
        raise ConfigError(f"--bounce-local-part: {settings.bounce_local_part!r} must be 1 to {MAX_BOUNCE_LOCAL_PART} "
                          "letters, digits, dots, hyphens or underscores (the signed token needs the rest of 64)")
    if not settings.bounce_domain:
        return
    if not _DOMAIN.match(settings.bounce_domain):
        raise ConfigError(f"--bounce-domain: {settings.bounce_domain!r} is not a domain name, "
                          "e.g. bounces.shop.example")
    if len(settings.verp_secret.reveal()) < MIN_VERP_SECRET_CHARS:
        raise ConfigError("--bounce-domain needs ORDERNOTIFY_VERP_SECRET (or _FILE) of at least "
                          f"{MIN_VERP_SECRET_CHARS} characters: it signs the bounce addresses, so that forged "
                          "bounces are refused")
    short = [n for n, key in enumerate(verp_previous_keys(settings), 1) if len(key) < MIN_VERP_SECRET_CHARS]
    if short:
        raise ConfigError(f"ORDERNOTIFY_VERP_PREVIOUS_SECRETS: key {short[0]} is shorter than {MIN_VERP_SECRET_CHARS} "
                          "characters; every key that bounce addresses are checked with needs that length")


def _check_webhooks(settings: Settings) -> None:
    if not 0 <= settings.webhook_port <= 65535:
        raise ConfigError("--webhook-port must be between 0 (off) and 65535")
    if settings.webhook_max_body_bytes < 64 * 1024:
        raise ConfigError("--webhook-max-body-bytes must be at least 65536 (an SES notification with its headers "
                          "can be that large)")
    if settings.postmark_webhook_password and not settings.postmark_webhook_user:
        raise ConfigError("--postmark-webhook-user is needed with ORDERNOTIFY_POSTMARK_WEBHOOK_PASSWORD: Postmark "
                          "sends both, as https://USER:PASSWORD@HOST/webhooks/postmark")
    if settings.mailgun_replay_window_s <= 0:
        raise ConfigError("--mailgun-replay-window-s must be more than 0")


def _check_gateway_shop(settings: Settings) -> None:
    try:
        zoneinfo.ZoneInfo(settings.shop_default_time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"--shop-default-time-zone: {settings.shop_default_time_zone!r} is not an IANA time zone, "
                          "e.g. Europe/Berlin") from exc
    if settings.shop_default_currency and not re.fullmatch(r"[A-Z]{3}", settings.shop_default_currency):
        raise ConfigError(f"--shop-default-currency: {settings.shop_default_currency!r} is not an ISO 4217 code, "
                          "e.g. EUR")
    if settings.saleor_jwks_url and not settings.saleor_jwks_url.startswith(("https://", "http://")):
        raise ConfigError("--saleor-jwks-url must be an http(s) URL, e.g. https://shop.example/.well-known/jwks.json")
    if settings.saleor_jwks_cache_s <= 0:
        raise ConfigError("--saleor-jwks-cache-s must be more than 0")
    _check_woocommerce_api(settings)
    if not re.fullmatch(r"\d{4}-\d{2}|unstable", settings.shopify_admin_api_version):
        raise ConfigError(f"--shopify-admin-api-version: {settings.shopify_admin_api_version!r} is not a Shopify API "
                          "version, e.g. 2026-07")
    try:
        settings.shopify_admin_api_url.format(shop="shop.myshopify.com", version="2026-07")
        formats = True
    except (KeyError, IndexError, ValueError):
        formats = False
    if not formats or not settings.shopify_admin_api_url.startswith(("https://", "http://")):
        raise ConfigError("--shopify-admin-api-url must be an http(s) URL naming no field but {shop} and {version}, "
                          "e.g. https://{shop}/admin/api/{version}/graphql.json")


def _check_woocommerce_api(settings: Settings) -> None:
    key, secret = settings.woocommerce_api_consumer_key, settings.woocommerce_api_consumer_secret
    if bool(key) != bool(secret):
        raise ConfigError("ORDERNOTIFY_WOOCOMMERCE_API_CONSUMER_KEY and ORDERNOTIFY_WOOCOMMERCE_API_CONSUMER_SECRET "
                          "go together (WooCommerce → Settings → Advanced → REST API shows both once)")
    if key and not settings.woocommerce_shop_url:
        raise ConfigError("--woocommerce-shop-url is needed with the WooCommerce REST API key: it is where the key "
                          "is sent, never to an address a webhook names")
    if not settings.woocommerce_shop_url:
        return
    try:
        url = urllib.parse.urlsplit(settings.woocommerce_shop_url)
        port_ok = url.port is None or url.port > 0
    except ValueError:
        port_ok = False
        url = urllib.parse.urlsplit("")
    loopback = url.hostname in ("localhost", "127.0.0.1", "::1")
    if not port_ok or url.scheme not in ("https", "http") or not url.hostname or url.query or url.fragment \
            or url.username or (url.scheme == "http" and not loopback):
        raise ConfigError(f"--woocommerce-shop-url: {settings.woocommerce_shop_url[:200]!r} is not the shop's https "
                          "address without query, e.g. https://shop.example.org/ (the key travels in Basic auth, "
                          "which WooCommerce takes only over HTTPS)")


def gateway_secret_keys(text: str) -> list[bytes]:
    """The keys of ``--gateway-webhook-secrets``: each ``whsec_`` followed by base64 (the prefix may be left out)."""
    keys = []
    for secret in text.split():
        encoded = secret.removeprefix("whsec_")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ConfigError("ORDERNOTIFY_GATEWAY_WEBHOOK_SECRETS: a secret is not whsec_ followed by base64 "
                              "(copy it whole from the sender's settings)") from None
        if len(key) < 16:
            raise ConfigError("ORDERNOTIFY_GATEWAY_WEBHOOK_SECRETS: a secret's key is shorter than 16 bytes; the "
                              "Standard Webhooks scheme asks for 24 to 64 random bytes")
        keys.append(key)
    return keys


def _check_gateway(settings: Settings) -> None:
    if not 0 <= settings.gateway_port <= 65535:
        raise ConfigError("--gateway-port must be between 0 (any free port) and 65535")
    gateway_secret_keys(settings.gateway_webhook_secrets.reveal())
    if not 0 < settings.gateway_answer_timeout_s <= 60:
        raise ConfigError("--gateway-answer-timeout-s must be more than 0 and at most 60 (platforms wait 5 to 30 s)")
    if settings.gateway_replay_window_s <= 0:
        raise ConfigError("--gateway-replay-window-s must be more than 0")
    if settings.gateway_retry_after_s < 1:
        raise ConfigError("--gateway-retry-after-s must be at least 1")
    if not 64 * 1024 <= settings.gateway_max_body_bytes <= settings.max_record_bytes:
        raise ConfigError(f"--gateway-max-body-bytes must be between 65536 and --max-record-bytes "
                          f"({settings.max_record_bytes})")


def markdown_table() -> str:
    """The README's configuration reference, generated so that it cannot drift from the code."""
    lines = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(Settings):
        default = "(secret)" if isinstance(f.default, Secret) else repr(f.default) if f.default != "" else "—"
        meaning = f"{f.metadata['help']}{f.metadata['more']}"
        lines.append(f"| `{flag_name(f.name)}` | `{env_name(f.name)}` | `{default}` | {meaning} |")
    return "\n".join(lines)
