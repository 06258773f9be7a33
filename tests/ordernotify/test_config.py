"""Settings: precedence, conversion, secrets, and the reference table in ordernotify/README.md."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ordernotify.config import ConfigError, Secret, add_settings_arguments, load_settings, markdown_table


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    return parser.parse_args(list(argv))


def test_flag_beats_environment_beats_default() -> None:
    env = {"ORDERNOTIFY_SMTP_PORT": "2525", "ORDERNOTIFY_SHOP_NAME": "Env Shop"}
    settings = load_settings(_args("--smtp-port", "587"), env)
    assert settings.smtp_port == 587
    assert settings.shop_name == "Env Shop"
    assert settings.group_id == "ordernotify"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ORDERNOTIFY_SMTP_PORT": "twenty-five"}, "ORDERNOTIFY_SMTP_PORT: 'twenty-five' is not a valid int"),
        ({"ORDERNOTIFY_SMTP_TLS": "sometimes"}, "is not one of none, starttls, implicit"),
        ({"ORDERNOTIFY_LOG_JSON": "maybe"}, "is not a valid bool"),
        ({"ORDERNOTIFY_SMTP_CONNECTIONS": "0"}, "--smtp-connections must be at least 1"),
        ({"ORDERNOTIFY_OUTBOX_BATCH": "0"}, "--outbox-batch must be at least 1"),
        ({"ORDERNOTIFY_SMTP_USERNAME": "shop"}, "needs --smtp-tls starttls or implicit"),
        ({"ORDERNOTIFY_MAX_RECORD_BYTES": "1000000"}, "--max-record-bytes must be between 1048576"),
        ({"ORDERNOTIFY_MAX_RECORD_BYTES": str(100 * 1024 * 1024)}, "a dead letter must fit one produce request"),
        ({"ORDERNOTIFY_SHOP_DEFAULT_TIME_ZONE": "Mars/Olympus"}, "--shop-default-time-zone: 'Mars/Olympus' is not"),
        ({"ORDERNOTIFY_SHOP_DEFAULT_CURRENCY": "euro"}, "--shop-default-currency: 'euro' is not an ISO 4217"),
        ({"ORDERNOTIFY_SALEOR_JWKS_URL": "shop.example/jwks"}, "--saleor-jwks-url must be an http"),
    ],
)
def test_bad_values_are_refused_with_the_setting_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(_args(), env)


def test_secret_from_file_is_never_shown(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("hunter2\n")
    env = {"ORDERNOTIFY_SMTP_PASSWORD_FILE": str(secret_file), "ORDERNOTIFY_SMTP_TLS": "starttls"}
    settings = load_settings(_args(), env)
    assert settings.smtp_password.reveal() == "hunter2"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.masked())
    assert settings.masked()["smtp_password"] == repr(Secret("x"))


def test_readme_configuration_reference_is_current() -> None:
    readme = (Path(__file__).resolve().parents[2] / "ordernotify" / "README.md").read_text(encoding="utf-8")
    hint = "regenerate: python -c 'from ordernotify.config import markdown_table as t; print(t())'"
    assert markdown_table() in readme, hint
