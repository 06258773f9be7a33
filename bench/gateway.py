"""Webhooks/s and answer times at the gateway: ``python -m bench.gateway [--requests N] [--clients 8,32]``.

Starts the embedded broker and the real command, ``python -m cli gateway``, as its own process on a loopback port,
then for each number of concurrent clients (aiohttp, one connection each, keep-alive) sends ``--requests`` signed
``POST /v1/events`` (one ORDER_PLACED each, several locales and currencies, signed the Standard Webhooks way here,
independently of the gateway's code) as fast as the answers come, after a warm-up. Every answer must be 202: the
broker acknowledged the event (acks=all) before the gateway answered. Reported per row: webhooks/s (requests over
the wall time of the measured part), the p50 and p99 answer time seen by the clients, and the gateway process's
CPU seconds per 1,000 webhooks, medians of ``--repeats`` runs, each run on a fresh topic. The clients run in this
process, on the same machine: they take CPU from the gateway and the broker, so the figures are a floor.
Prints a Markdown table; nothing is written to the checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from bench.events import placed_events
from bench.timing import median
from devstack.broker import EmbeddedBroker
from devstack.ports import free_port
from ordernotify.config import Settings
from ordernotify.topics import ensure_topics
from schemas.records import to_json_record

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 300


@dataclasses.dataclass(frozen=True, slots=True)
class RunResult:
    """One measured run at one number of clients."""

    requests: int
    wall_s: float
    p50_s: float
    p99_s: float
    gateway_cpu_s: float

    @property
    def per_s(self) -> float:
        return self.requests / self.wall_s


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """One signed request, ready to send."""

    body: bytes
    headers: dict[str, str]


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` (https://www.standardwebhooks.com)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign(secret: str, body: bytes) -> dict[str, str]:
    """The headers of one delivery signed now, under a new webhook id."""
    webhook_id = f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time())
    return {"content-type": "application/json", "webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, webhook_id, timestamp, body)}


def deliveries(secret: str, count: int, seed: int) -> list[Delivery]:
    events = placed_events(count, seed=seed)
    bodies = [json.dumps(to_json_record(event), ensure_ascii=False).encode() for event in events]
    return [Delivery(body, sign(secret, body)) for body in bodies]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def running_gateway(settings: Settings, secret: str, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m cli gateway`` on 127.0.0.1:port until /readyz answers 200; stopped with SIGTERM afterwards."""
    command = [sys.executable, "-m", "cli", "gateway", "--bootstrap-servers", settings.bootstrap_servers,
               "--events-topic", settings.events_topic, "--gateway-host", "127.0.0.1", "--gateway-port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ORDERNOTIFY_GATEWAY_WEBHOOK_SECRETS": secret}
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_ready(process, port, log)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(process: subprocess.Popen[bytes], port: int, log: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the gateway was not ready within {timeout_s:g} s: {log.read_text()[-2000:]}")


async def _send_all(url: str, work: list[Delivery], clients: int) -> list[float]:
    """Send every delivery from ``clients`` concurrent senders; the answer time of each, in seconds."""
    answer_times: list[float] = []
    queue = iter(work)
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)

    async def sender(session: aiohttp.ClientSession) -> None:
        for delivery in queue:  # one shared iterator: each delivery is sent once
            started = time.perf_counter()
            async with session.post(url, data=delivery.body, headers=delivery.headers) as response:
                text = await response.text()
            answer_times.append(time.perf_counter() - started)
            if response.status != 202:
                raise RuntimeError(f"the gateway answered {response.status}: {text[:500]}")

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(sender(session) for _ in range(clients)))
    return answer_times


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(settings: Settings, clients: int, requests: int, log: Path) -> RunResult:
    """One run: a fresh topic, a fresh gateway, a warm-up, then ``requests`` signed webhooks."""
    run = uuid.uuid4().hex[:8]
    fresh = dataclasses.replace(settings, events_topic=f"bench.gateway.{run}")
    ensure_topics(fresh)
    secret = new_secret()
    port = free_port()
    warm_up = deliveries(secret, WARM_UP, seed=1)
    work = deliveries(secret, requests, seed=2)
    url = f"http://127.0.0.1:{port}/v1/events"
    with running_gateway(fresh, secret, port, log) as process:
        asyncio.run(_send_all(url, warm_up, clients))
        cpu_before = _cpu_s(process.pid)
        started = time.perf_counter()
        answer_times = asyncio.run(_send_all(url, work, clients))
        wall = time.perf_counter() - started
        cpu = _cpu_s(process.pid) - cpu_before
    return RunResult(len(answer_times), wall, _quantile(answer_times, 0.5), _quantile(answer_times, 0.99), cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000, help="measured webhooks per run (default: 6000)")
    parser.add_argument("--clients", default="8,32", help="comma-separated concurrent clients (default: 8,32)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp, EmbeddedBroker() as broker:
        settings = Settings(bootstrap_servers=broker.bootstrap_servers)
        for clients in (int(c) for c in args.clients.split(",")):
            runs = [measure(settings, clients, args.requests, Path(tmp) / f"gateway-{clients}-{n}.log")
                    for n in range(args.repeats)]
            for n, r in enumerate(runs, 1):
                print(f"clients {clients} run {n}: {r.per_s:,.0f}/s, p50 {r.p50_s * 1000:.1f} ms, "
                      f"p99 {r.p99_s * 1000:.1f} ms, gateway CPU {r.gateway_cpu_s / r.requests * 1000:.2f} s / 1,000",
                      file=sys.stderr)
            rows.append((clients, median([r.per_s for r in runs]), median([r.p50_s for r in runs]),
                         median([r.p99_s for r in runs]),
                         median([r.gateway_cpu_s / r.requests * 1000 for r in runs])))
    print(f"\n{args.requests} signed POST /v1/events per run, medians of {args.repeats} runs\n")
    print("| clients | webhooks/s | p50 answer | p99 answer | gateway CPU s / 1,000 |")
    print("|---:|---:|---:|---:|---:|")
    for clients, per_s, p50, p99, cpu in rows:
        print(f"| {clients} | {per_s:,.0f} | {p50 * 1000:.1f} ms | {p99 * 1000:.1f} ms | {cpu:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
