from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.adapters.base import PlatformRefused, ShopDefaults
from gateway.adapters.saleor import SaleorAdapter
from gateway.adapters.saleor_signature import JwksKeys
from schemas.events import EventType, OrderPlaced
from tests.gateway.adapters_support import fixture

DEFAULTS = ShopDefaults(locale="en", time_zone="Europe/Warsaw")
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": _b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": _b64(numbers.e.to_bytes(3, "big"))}


def sign(body: bytes, key: rsa.RSAPrivateKey = KEY, kid: str = "k1") -> str:
    """A detached JWS as Saleor makes it: RS256, unencoded payload (b64: false, critical)."""
    protected = _b64(json.dumps({"alg": "RS256", "kid": kid, "b64": False, "crit": ["b64"]}).encode())
    signature = key.sign(protected.encode() + b"." + body, padding.PKCS1v15(), hashes.SHA256())
    return f"{protected}..{_b64(signature)}"


class Jwks:
    """The shop's /.well-known/jwks.json over loopback, counting its fetches."""

    def __init__(self) -> None:
        self.keys = [_jwk(KEY, "k1")]
        self.fetches = 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                jwks.fetches += 1
                data = json.dumps({"keys": jwks.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    served = Jwks()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()


def _headers(event: str, body: bytes, signature: str | None = None) -> dict[str, str]:
    return {"Saleor-Event": event, "Saleor-Signature": signature if signature is not None else sign(body),
            "Saleor-Domain": "shop.example.org", "Saleor-Api-Url": "https://shop.example.org/graphql/"}


@pytest.mark.parametrize(("event", "name", "expected"), [
    ("order_created", "order_created.json", [EventType.ORDER_PLACED]),
    ("order_cancelled", "order_cancelled.json", [EventType.ORDER_CANCELLED]),
    ("product_updated", "order_created.json", []),
])
def test_each_fixture_is_verified_against_the_shops_jwks_and_mapped(jwks: Jwks, event: str, name: str,
                                                                     expected: list[EventType]) -> None:
    body = fixture("saleor", name)
    adapter = SaleorAdapter(JwksKeys(jwks.url, 600))
    adapter.verify(_headers(event, body), body)
    events = adapter.events(_headers(event, body), body, DEFAULTS)
    assert [e.event_type for e in events] == expected


def test_an_order_is_read_to_the_grosz_with_gross_prices(jwks: Jwks) -> None:
    body = fixture("saleor", "order_created.json")
    (event,) = SaleorAdapter(JwksKeys(jwks.url, 600)).events(_headers("order_created", body), body, DEFAULTS)
    placed = event.payload
    assert isinstance(placed, OrderPlaced) and placed.prices_include_tax is True
    assert (placed.items[0].unit_price.amount_minor, placed.subtotal.amount_minor, placed.shipping_cost.amount_minor,
            placed.tax.amount_minor, placed.total.amount_minor) == (2460, 7380, 1230, 1610, 8610)
    assert (event.customer.locale, event.customer.time_zone) == ("pl", "Europe/Warsaw")
    again = SaleorAdapter(JwksKeys(jwks.url, 600)).events(_headers("order_created", body), body, DEFAULTS)
    assert again[0].event_id == event.event_id


def test_the_keys_are_cached_and_fetched_again_for_a_new_kid(jwks: Jwks) -> None:
    adapter = SaleorAdapter(JwksKeys(jwks.url, 600))
    body = fixture("saleor", "order_created.json")
    adapter.verify(_headers("order_created", body), body)
    adapter.verify(_headers("order_created", body), body)
    assert jwks.fetches == 1
    clock = iter([0.0, 100.0])  # the second request comes 100 s later: within the cache, past REFETCH_MIN_S
    rotating = SaleorAdapter(JwksKeys(jwks.url, 600, clock=lambda: next(clock)))
    rotating.verify(_headers("order_created", body), body)
    jwks.keys = [_jwk(KEY, "k1"), _jwk(OTHER_KEY, "k2")]  # Saleor rotated its key
    rotating.verify(_headers("order_created", body, sign(body, OTHER_KEY, "k2")), body)
    assert jwks.fetches == 3


@pytest.mark.parametrize("signature", [
    "", "not-a-jws", sign(b"another body"), sign(fixture("saleor", "order_created.json"), OTHER_KEY),
    sign(fixture("saleor", "order_created.json"), OTHER_KEY, "unknown-kid"),
])
def test_a_bad_signature_is_refused_with_401(jwks: Jwks, signature: str) -> None:
    body = fixture("saleor", "order_created.json")
    with pytest.raises(PlatformRefused) as refused:
        SaleorAdapter(JwksKeys(jwks.url, 600)).verify(_headers("order_created", body, signature), body)
    assert (refused.value.status, refused.value.reason) == (401, "bad_signature")


def test_unreachable_keys_are_answered_503_so_saleor_retries() -> None:
    body = fixture("saleor", "order_created.json")
    with pytest.raises(PlatformRefused) as refused:
        SaleorAdapter(JwksKeys("http://127.0.0.1:9/.well-known/jwks.json", 600)).verify(
            _headers("order_created", body), body)
    assert (refused.value.status, refused.value.retriable) == (503, True)


def test_sums_that_do_not_add_up_are_refused_with_400_naming_the_field(jwks: Jwks) -> None:
    body = fixture("saleor", "order_created_sums_off.json")
    with pytest.raises(PlatformRefused) as refused:
        SaleorAdapter(JwksKeys(jwks.url, 600)).events(_headers("order_created", body), body, DEFAULTS)
    assert refused.value.status == 400
    assert str(refused.value).startswith("total_gross_amount (payload.total): total 90.00")
