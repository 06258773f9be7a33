"""Kafka over SSL/SASL: the settings reach kafka-python under its own option names, secrets from files.

There is no SASL or SSL listener on the embedded dev broker, so these tests stop at the options
handed to kafka-python (and that kafka-python accepts them); connecting is not tested here.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from ordernotify.config import ConfigError, add_settings_arguments, load_settings


def _sasl_ssl_environment(tmp_path: Path) -> dict[str, str]:
    password_file = tmp_path / "sasl_password"
    password_file.write_text("from-the-file-123\n", encoding="utf-8")
    return {
        "ORDERNOTIFY_BOOTSTRAP_SERVERS": "kafka-1.internal:9096, kafka-2.internal:9096",
        "ORDERNOTIFY_SECURITY_PROTOCOL": "SASL_SSL",
        "ORDERNOTIFY_SASL_MECHANISM": "SCRAM-SHA-512",
        "ORDERNOTIFY_SASL_USERNAME": "ordernotify",
        "ORDERNOTIFY_SASL_PASSWORD_FILE": str(password_file),
        "ORDERNOTIFY_SSL_CAFILE": "/etc/kafka/ca.pem",
    }


def test_sasl_ssl_settings_map_to_kafka_python_option_names(tmp_path: Path) -> None:
    settings = load_settings(environ=_sasl_ssl_environment(tmp_path))
    assert settings.kafka_client_options() == {
        "bootstrap_servers": ["kafka-1.internal:9096", "kafka-2.internal:9096"],
        "security_protocol": "SASL_SSL",
        "bootstrap_timeout_ms": 10000,  # --kafka-connect-timeout-s: a broker that is not there is told in 10 s
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ordernotify",
        "sasl_plain_password": "from-the-file-123",  # the file's content, without its line end
        "ssl_cafile": "/etc/kafka/ca.pem",
    }
    assert "from-the-file-123" not in repr(settings) and "from-the-file-123" not in str(settings.masked())


def test_flags_win_over_the_environment_and_the_password_variable_over_its_file(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    args = parser.parse_args(["--sasl-mechanism", "PLAIN", "--sasl-username", "flag-user"])
    environ = {**_sasl_ssl_environment(tmp_path), "ORDERNOTIFY_SASL_PASSWORD": "from-the-variable"}
    options = load_settings(args, environ).kafka_client_options()
    assert (options["sasl_mechanism"], options["sasl_plain_username"]) == ("PLAIN", "flag-user")
    assert options["sasl_plain_password"] == "from-the-variable"


def test_plaintext_by_default_sends_no_sasl_or_ssl_options() -> None:
    assert load_settings(environ={}).kafka_client_options() == {
        "bootstrap_servers": ["127.0.0.1:9092"], "security_protocol": "PLAINTEXT", "bootstrap_timeout_ms": 10000,
    }


def test_an_unknown_protocol_or_an_unreadable_password_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ORDERNOTIFY_SECURITY_PROTOCOL: 'TLS' is not one of"):
        load_settings(environ={"ORDERNOTIFY_SECURITY_PROTOCOL": "TLS"})
    with pytest.raises(ConfigError, match="ORDERNOTIFY_SASL_PASSWORD_FILE: cannot read"):
        load_settings(environ={"ORDERNOTIFY_SASL_PASSWORD_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize("client", [KafkaProducer, KafkaConsumer])
def test_kafka_python_knows_every_option_we_pass(client: Any, tmp_path: Path) -> None:
    options = load_settings(environ=_sasl_ssl_environment(tmp_path)).kafka_client_options()
    unknown = set(options) - set(client.DEFAULT_CONFIG)
    assert unknown == set()
