"""One request to a shop platform's own API (Shopify's Admin API, WooCommerce's REST API), as the adapters make it
to look up what a webhook's payload lacks.

What every such lookup shares: a connection of its own (nothing is kept after the request), no redirect followed
(the address is the configured one and nothing else), an answer read up to :data:`MAX_ANSWER_BYTES`, and the
answers that mean "not now": unreachable, timed out, 429 or 5xx are :class:`PlatformRefused` 503 (logged as a
warning), so that the platform sends the delivery again; a refused key (401, 403), a redirect or any other status
is 503 too, logged as an error naming what to fix. What is left to the caller: 200, and 404 (each platform says
"not there" its own way).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from gateway.adapters.base import PlatformRefused

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 1024 * 1024


@dataclass(frozen=True)
class PlatformApi:
    """How one platform's API is named in answers and logs, and what to check when it refuses the key."""

    name: str  # "Shopify's Admin API"
    key_hint: str  # "check ORDERNOTIFY_SHOPIFY_ADMIN_TOKEN and its read_orders scope"

    def unavailable(self, problem: str) -> PlatformRefused:
        return PlatformRefused(503, "admin_api_unavailable", f"{self.name} {problem}; try again")

    async def ask(self, method: str, url: str, host: str, what: str, headers: dict[str, str],
                  timeout: aiohttp.ClientTimeout, json_body: Any = None) -> tuple[int, bytes]:
        """(status, body) of a 200 or 404 answer; every other outcome raises 503 (``host`` and ``what`` name the
        shop and the object in logs and answers: never a key, never the customer)."""
        for_what = f" for {what}" if what else ""
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.request(
                    method, url, json=json_body, headers=headers, allow_redirects=False) as answer:
                status = answer.status
                retry_after = answer.headers.get("Retry-After", "")
                body = await answer.content.read(MAX_ANSWER_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("%s at %s cannot be reached%s: %s", self.name, host, for_what, type(exc).__name__)
            raise self.unavailable(f"at {host} cannot be reached ({type(exc).__name__}){for_what}") from exc
        if status == 429 or status >= 500:
            log.warning("%s at %s answered %d%s%s", self.name, host, status, for_what,
                        f" (Retry-After {retry_after[:20]})" if retry_after else "")
            raise self.unavailable(f"at {host} answered {status}{for_what}")
        if status in (401, 403):
            log.error("%s at %s refused the key (%d)%s: %s", self.name, host, status, for_what, self.key_hint)
            raise self.unavailable(f"at {host} refused the key ({status}){for_what}")
        if 300 <= status < 400:
            log.error("%s at %s answered %d (a redirect, not followed)%s: is the configured address the one the "
                      "shop answers at (https, www)?", self.name, host, status, for_what)
            raise self.unavailable(f"at {host} redirected the lookup{for_what}")
        if status not in (200, 404) or len(body) > MAX_ANSWER_BYTES:
            log.error("%s at %s answered %d (%d bytes)%s", self.name, host, status, len(body), for_what)
            raise self.unavailable(f"at {host} answered {status}{for_what}")
        return status, body

    def json(self, body: bytes, host: str, what: str = "") -> Any:
        """The answer's JSON; 503 (logged) when it is not JSON."""
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            for_what = f" for {what}" if what else ""
            log.error("%s at %s answered something that is not JSON%s", self.name, host, for_what)
            raise self.unavailable(f"at {host} answered something that is not JSON{for_what}") from exc
