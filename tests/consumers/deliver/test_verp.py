"""Signed bounce addresses: made and read back, any change refused, short enough, case-blind, off by default."""

from __future__ import annotations

import base64
import dataclasses
import hashlib

import pytest

from consumers.deliver.verp import TOKEN_CHARS, VerpToken, address_digest, envelope_sender, read_token
from consumers.exceptions import ForgedBounce
from ordernotify.config import ConfigError, Secret, Settings, load_settings
from ordernotify.errors import OrderNotifyError

SETTINGS = Settings(sender_address="orders@shop.example", bounce_domain="bounces.shop.example",
                    verp_secret=Secret("a secret of at least 16 characters"))
NOTIFICATION_ID = "0123456789abcdef0123456789abcdef"
RECIPIENT = "Zoe.Unal@Example.org"


def _address() -> str:
    return envelope_sender(NOTIFICATION_ID, RECIPIENT, SETTINGS)


def test_address_digest_is_sha256_of_the_stripped_lower_cased_address() -> None:
    assert address_digest("  Zoe.Unal@Example.ORG\n") == hashlib.sha256(b"zoe.unal@example.org").hexdigest()
    assert len(address_digest(RECIPIENT)) == 64


def test_token_round_trip_names_the_notification_and_the_recipient() -> None:
    address = _address()
    assert address.startswith("bounces+") and address.endswith("@bounces.shop.example")
    assert RECIPIENT.lower() not in address.lower() and "zoe" not in address.lower()
    assert read_token(address, SETTINGS) == VerpToken(NOTIFICATION_ID, address_digest(RECIPIENT)[:10])


def test_the_same_email_gets_the_same_address_and_another_email_another() -> None:
    assert _address() == envelope_sender(NOTIFICATION_ID, RECIPIENT, SETTINGS)
    assert _address() != envelope_sender("f" * 32, RECIPIENT, SETTINGS)
    assert _address() != envelope_sender(NOTIFICATION_ID, "someone@example.org", SETTINGS)


def test_local_part_fits_64_characters_at_the_longest_local_part_allowed() -> None:
    settings = load_settings(environ={"ORDERNOTIFY_BOUNCE_DOMAIN": "bounces.shop.example",
                                      "ORDERNOTIFY_VERP_SECRET": "a secret of at least 16 characters",
                                      "ORDERNOTIFY_BOUNCE_LOCAL_PART": "b" * 15})
    local = envelope_sender(NOTIFICATION_ID, RECIPIENT, settings).rpartition("@")[0]
    assert len(local) == 64 and len(_address().rpartition("@")[0]) == len("bounces+") + TOKEN_CHARS <= 64
    with pytest.raises(ConfigError, match="--bounce-local-part"):
        load_settings(environ={"ORDERNOTIFY_BOUNCE_LOCAL_PART": "b" * 16})


@pytest.mark.parametrize("change", [str.upper, str.lower, lambda a: a.replace("bounces+", "BOUNCES+")])
def test_read_in_any_case_as_mail_servers_may_change_it(change: object) -> None:
    assert callable(change)
    assert read_token(change(_address()), SETTINGS).notification_id == NOTIFICATION_ID


def test_angle_brackets_and_a_trailing_dot_of_the_domain_are_accepted() -> None:
    assert read_token(f" <{_address()}.> ", SETTINGS).notification_id == NOTIFICATION_ID


def _flip(address: str, index: int) -> str:
    """The address with one character of the token replaced by another base32 character."""
    local, _, domain = address.rpartition("@")
    base, _, token = local.partition("+")
    replaced = token[:index] + ("a" if token[index] != "a" else "b") + token[index + 1:]
    return f"{base}+{replaced}@{domain}"


@pytest.mark.parametrize("index", range(TOKEN_CHARS))
def test_any_changed_character_of_the_token_is_refused(index: int) -> None:
    with pytest.raises(ForgedBounce, match="bad signature|not base32"):
        read_token(_flip(_address(), index), SETTINGS)


def _token_with(notification_id: str, digest_prefix: str, mac: bytes) -> str:
    payload = bytes.fromhex(notification_id) + bytes.fromhex(digest_prefix) + mac
    return "bounces+" + base64.b32encode(payload).decode().lower() + "@bounces.shop.example"


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("bounces@bounces.shop.example", "no token"),
        ("bounces+@bounces.shop.example", "no token"),
        ("orders@shop.example", "not in the bounce domain"),
        ("no-at-sign", "no domain"),
        ("", "no domain"),
        ("bounces+abc@bounces.shop.example", "is 3 characters, not 48"),
        ("bounces+" + "1" * TOKEN_CHARS + "@bounces.shop.example", "not base32"),
        ("bounces+" + "=" * TOKEN_CHARS + "@bounces.shop.example", "not base32"),
        ("bounces+" + "é" * TOKEN_CHARS + "@bounces.shop.example", "not base32"),
        (_token_with(NOTIFICATION_ID, "00" * 5, bytes(9)), "bad signature"),
        (_token_with("f" * 32, address_digest(RECIPIENT)[:10], bytes(9)), "bad signature"),
    ],
)
def test_anything_not_made_by_envelope_sender_is_refused_with_why(address: str, why: str) -> None:
    with pytest.raises(ForgedBounce, match=why) as refused:
        read_token(address, SETTINGS)
    assert isinstance(refused.value, OrderNotifyError)


def test_the_other_parts_of_the_address_are_checked_too() -> None:
    local, _, domain = _address().rpartition("@")
    with pytest.raises(ForgedBounce, match="not in the bounce domain"):
        read_token(f"{local}@evil.example", SETTINGS)
    with pytest.raises(ForgedBounce, match="local part is not bounces"):
        read_token(f"other{local.removeprefix('bounces')}@{domain}", SETTINGS)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    other = dataclasses.replace(SETTINGS, verp_secret=Secret("another secret of 16+ characters"))
    with pytest.raises(ForgedBounce, match="bad signature"):
        read_token(envelope_sender(NOTIFICATION_ID, RECIPIENT, other), SETTINGS)


def test_verp_is_off_without_a_bounce_domain() -> None:
    settings = Settings(sender_address="orders@shop.example")
    assert envelope_sender(NOTIFICATION_ID, RECIPIENT, settings) == "orders@shop.example"
    with pytest.raises(ForgedBounce, match="no bounce domain"):
        read_token(_address(), settings)


def test_a_bounce_domain_needs_a_long_enough_secret() -> None:
    with pytest.raises(ConfigError, match="ORDERNOTIFY_VERP_SECRET"):
        load_settings(environ={"ORDERNOTIFY_BOUNCE_DOMAIN": "bounces.shop.example"})
    with pytest.raises(ConfigError, match="ORDERNOTIFY_VERP_SECRET"):
        load_settings(environ={"ORDERNOTIFY_BOUNCE_DOMAIN": "bounces.shop.example",
                               "ORDERNOTIFY_VERP_SECRET": "short"})
    with pytest.raises(ConfigError, match="not a domain name"):
        load_settings(environ={"ORDERNOTIFY_BOUNCE_DOMAIN": "bounces..example",
                               "ORDERNOTIFY_VERP_SECRET": "a secret of at least 16 characters"})
    with pytest.raises(ConfigError, match="ORDERNOTIFY_VERP_SECRET"):
        envelope_sender(NOTIFICATION_ID, RECIPIENT, dataclasses.replace(SETTINGS, verp_secret=Secret("")))


def test_a_notification_id_that_is_not_32_hex_digits_is_a_programming_error() -> None:
    for bad in ("abc", "g" * 32, "01 23" * 8):
        with pytest.raises(ValueError, match="32 hex digits"):
            envelope_sender(bad, RECIPIENT, SETTINGS)


# -- rotating the secret ------------------------------------------------------------------------------------

OLD_SECRET = "the old secret, 16+ characters"
ROTATED = dataclasses.replace(SETTINGS, verp_previous_secrets=Secret(f"{OLD_SECRET}\n\nan-even-older-secret-xx\n"))


def test_after_a_rotation_a_bounce_signed_with_the_old_secret_is_still_attributed() -> None:
    before = dataclasses.replace(SETTINGS, verp_secret=Secret(OLD_SECRET))
    sent_before = envelope_sender(NOTIFICATION_ID, RECIPIENT, before)
    assert read_token(sent_before, ROTATED) == VerpToken(NOTIFICATION_ID, address_digest(RECIPIENT)[:10])
    older = dataclasses.replace(SETTINGS, verp_secret=Secret("an-even-older-secret-xx"))
    assert read_token(envelope_sender(NOTIFICATION_ID, RECIPIENT, older), ROTATED).notification_id == NOTIFICATION_ID


def test_after_a_rotation_new_addresses_are_signed_with_the_new_secret_only() -> None:
    assert envelope_sender(NOTIFICATION_ID, RECIPIENT, ROTATED) == _address()
    with pytest.raises(ForgedBounce, match="bad signature"):  # the old key alone does not take the new address
        read_token(_address(), dataclasses.replace(SETTINGS, verp_secret=Secret(OLD_SECRET)))


def test_a_bounce_signed_with_a_secret_not_in_the_list_is_refused() -> None:
    stranger = dataclasses.replace(SETTINGS, verp_secret=Secret("a secret nobody listed, 16+"))
    with pytest.raises(ForgedBounce, match="bad signature"):
        read_token(envelope_sender(NOTIFICATION_ID, RECIPIENT, stranger), ROTATED)


def test_every_key_is_compared_in_constant_time_and_all_of_them_are_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    from consumers.deliver import verp

    compared: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(verp.hmac, "compare_digest", compare_digest)
    assert read_token(_address(), ROTATED).notification_id == NOTIFICATION_ID  # the first key matches
    assert len(compared) == 3  # and the two earlier ones are compared anyway


def test_every_previous_secret_needs_the_minimum_length() -> None:
    environ = {"ORDERNOTIFY_BOUNCE_DOMAIN": "bounces.shop.example",
               "ORDERNOTIFY_VERP_SECRET": "a secret of at least 16 characters"}
    settings = load_settings(environ={**environ, "ORDERNOTIFY_VERP_PREVIOUS_SECRETS": f"  {OLD_SECRET}\r\n"})
    assert read_token(envelope_sender(NOTIFICATION_ID, RECIPIENT, dataclasses.replace(
        settings, verp_secret=Secret(OLD_SECRET))), settings).notification_id == NOTIFICATION_ID
    with pytest.raises(ConfigError, match="VERP_PREVIOUS_SECRETS: key 2 is shorter than 16"):
        load_settings(environ={**environ, "ORDERNOTIFY_VERP_PREVIOUS_SECRETS": f"{OLD_SECRET}\nshort"})
