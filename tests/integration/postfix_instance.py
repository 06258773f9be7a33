"""A private Postfix for the bounce tests: its own configuration and queue in a temporary directory.

``postfix -c DIR start`` with ``inet_interfaces`` on loopback, a free port in its master.cf, no chroot, and a
transport map that says where each test domain's mail goes; nothing outside DIR is touched, and ``stop``
leaves no process behind. Needs root (Postfix's master runs as root) and the Debian postfix package
(scripts/system-deps.sh installs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

# Only the services this test needs: no local delivery, no pickup from the sendmail command
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 1 1 qmgr
tlsmgr    unix - - n 1000? 1 tlsmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
lmtp      unix - - n - - lmtp
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> str | None:
    """Why Postfix cannot run here, or None."""
    if not os.path.exists(POSTFIX):
        return "Postfix is not installed (scripts/system-deps.sh installs it)"
    if os.geteuid() != 0:
        return "Postfix's master process needs root"
    return None


class PostfixInstance:
    def __init__(self, directory: Path, transports: Mapping[str, str], main: Mapping[str, str] | None = None) -> None:
        self.directory = directory
        self.port = free_port()
        self.maillog = directory / "maillog"
        directory.mkdir(parents=True, exist_ok=True)
        for sub in ("queue", "data"):
            (directory / sub).mkdir(exist_ok=True)
        shutil.chown(directory / "data", "postfix", "postfix")
        self._transports = dict(transports)
        self._settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(directory / "queue"),
            "data_directory": str(directory / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "mta.ordernotify.test",
            "mydomain": "ordernotify.test",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtp_dns_support_level": "disabled",
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(directory),
            "notify_classes": "",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            **(main or {}),
        }
        self._write_main_cf()
        (directory / "master.cf").write_text(MASTER_CF.format(port=self.port))

    def write_transport(self, domain: str, where: str) -> None:
        """Mail for ``domain`` goes to ``where`` (e.g. ``lmtp:inet:127.0.0.1:PORT``); before :meth:`start`."""
        self._transports[domain] = where
        self._write_main_cf()

    def _write_main_cf(self) -> None:
        table = ", ".join(f"{domain}={where}" for domain, where in self._transports.items())
        settings = {**self._settings, "relay_domains": ", ".join(self._transports),
                    "transport_maps": f"inline:{{ {table} }}"}
        (self.directory / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))

    def postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([POSTFIX, "-c", str(self.directory), *args], capture_output=True, text=True,
                              timeout=60)

    def check(self) -> str:
        """``postfix check``: its warnings (empty when the configuration is clean)."""
        result = self.postfix("check")
        if result.returncode != 0:
            raise RuntimeError(f"postfix check failed: {result.stderr}")
        return result.stderr

    def start(self) -> None:
        result = self.postfix("start")
        if result.returncode != 0:
            raise RuntimeError(f"postfix start failed: {result.stderr}\n{self.log()}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"postfix did not listen on {self.port}\n{self.log()}")

    def flush(self) -> None:
        """Try the deferred mail again now (``postqueue -f``)."""
        subprocess.run(["postqueue", "-c", str(self.directory), "-f"], capture_output=True, timeout=30)

    def log(self) -> str:
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else "(no maillog)"

    def stop(self) -> None:
        self.postfix("stop")
        pid_file = self.directory / "queue" / "pid" / "master.pid"
        deadline = time.monotonic() + 20
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
