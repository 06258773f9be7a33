"""Session fixtures: a real Kafka-protocol broker and a real SMTP server on free loopback ports.

Each test gets its own topics and consumer group, so tests never see each
other's events even though they share one broker.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from devstack.broker import EmbeddedBroker
from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Settings
from ordernotify.topics import ensure_topics

# Hypothesis keeps its example database and caches in ./.hypothesis by default: in the source tree, which tests
# never write to. A directory under the system's temporary directory keeps them between runs all the same
# (HYPOTHESIS_STORAGE_DIRECTORY, if set, still decides).
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "ordernotify-hypothesis")


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A command run in a test (``main([...])``) configures logging: its handler writes to that test's captured
    stderr, which pytest closes after the test. Left in place, every later log line of the worker printed
    "--- Logging error ---" with a traceback into whatever test failed next. Handlers and levels are put back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in CONFIGURED_LOGGERS}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, named_level in levels.items():
            logging.getLogger(name).setLevel(named_level)


CONFIGURED_LOGGERS = ("kafka", "kafka.net.connection", "mail.log")  # those ordernotify.logs sets a level of


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def smtp_server() -> Iterator[SmtpCapture]:
    with SmtpCapture() as server:
        yield server


@pytest.fixture
def settings(broker: EmbeddedBroker, smtp_server: SmtpCapture, tmp_path: Path) -> Settings:
    """Settings pointing at the session broker and this test's SMTP server, with topics of its own."""
    run = uuid.uuid4().hex[:8]
    configured = dataclasses.replace(
        Settings(),
        bootstrap_servers=broker.bootstrap_servers,
        events_topic=f"orders.events.{run}",
        preferences_topic=f"customers.preferences.{run}",
        suppressions_topic=f"customers.suppressions.{run}",
        sent_topic=f"notifications.sent.{run}",
        dlq_topic=f"notifications.dlq.{run}",
        group_id=f"ordernotify-test-{run}",
        session_timeout_ms=6000,  # the dev broker's group join takes half of it
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_retry_budget_s=20.0,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        coalesce_window_s=1.0,  # tests that check windows set their own
        metrics_port=0,  # off: tests that read the endpoints pick a free port
    )
    ensure_topics(configured, partitions=3)
    return configured


POSTGRES = "postgresql://postgres@127.0.0.1/test"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A state-store URL on the machine's PostgreSQL, in a schema of this test's own."""
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES} (scripts/system-deps.sh starts it): {exc}")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def pytest_configure(config: pytest.Config) -> None:
    """The controller (or a run without xdist) names the fault table's file before any worker starts."""
    import os
    import tempfile

    from tests.integration.fault_support import RESULTS_VARIABLE

    if not hasattr(config, "workerinput"):
        os.environ[RESULTS_VARIABLE] = str(Path(tempfile.mkdtemp(prefix="ordernotify-faults-")) / "faults.jsonl")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The fault tests' table (tests/integration/fault_support.py), also written as faults.json beside its rows."""
    import json

    from tests.integration.fault_support import recorded

    results = recorded()
    if not results or hasattr(config, "workerinput"):
        return
    columns = ("scenario", "events", "expected", "received", "lost", "duplicated", "dead_lettered", "recovery_s")
    rows = [[str(getattr(r, c)) if getattr(r, c) is not None else "-" for c in columns] for r in results]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    terminalreporter.section("faults")
    terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        terminalreporter.write_line("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    from tests.integration.fault_support import results_file

    out = results_file().with_name("faults.json")
    out.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=2) + "\n")
    terminalreporter.write_line(f"(also in {out})")
