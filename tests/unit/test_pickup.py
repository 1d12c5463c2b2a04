"""Pickup codes, their hashes, the wrong-code lockout, storage slots and the message that gives the code."""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import secrets
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.calendar import OpeningHours
from domain.errors import InvalidValue, RuleConflict
from domain.notifications import ChannelName, Facts, Template, render
from domain.pickup import (
    ALPHABET,
    CODE_LENGTH,
    KEY_LABEL,
    Attempts,
    Lockout,
    derive_key,
    first_free_slot,
    format_code,
    generate_code,
    hash_code,
    normalise_code,
    unique_code,
    verify_code,
)

KEY = derive_key("a-server-secret-of-at-least-32-characters")
SALT = bytes(range(16))
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

# --- codes -------------------------------------------------------------------------------------


def test_the_alphabet_has_no_look_alikes() -> None:
    assert not set("0O1IL") & set(ALPHABET)
    assert set(ALPHABET) == set("23456789ABCDEFGHJKMNPQRSTUVWXYZ")
    assert len(set(ALPHABET)) == len(ALPHABET) == 31


def test_a_code_is_8_characters_drawn_with_the_given_choice() -> None:
    draws: list[str] = []

    def choice(alphabet: str) -> str:
        draws.append(alphabet)
        return alphabet[len(draws) % len(alphabet)]

    code = generate_code(choice)
    assert len(code) == CODE_LENGTH == 8
    assert draws == [ALPHABET] * 8
    assert code == "3456789A"
    for _ in range(200):  # with the real generator too
        assert re.fullmatch(f"[{ALPHABET}]{{8}}", generate_code(secrets.choice))


def test_codes_are_random_enough_not_to_repeat() -> None:
    rng = random.Random(7)
    assert len({generate_code(rng.choice) for _ in range(2000)}) == 2000


@pytest.mark.parametrize(
    "typed",
    ["ABCD2345", "abcd2345", "abcd-2345", " AbCd 2345 ", "ABCD\u20132345", "A-B-C-D 2 3 4 5", "abcd\t2345\n"],
)
def test_what_the_customer_types_is_forgiven_case_spaces_and_dashes(typed: str) -> None:
    assert normalise_code(typed) == "ABCD2345"


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("ABCD234", "8 characters"),
        ("ABCD23456", "8 characters"),
        ("", "8 characters"),
        ("----", "8 characters"),
        ("ABCD2340", "letters other than I, L and O"),  # a zero is never in a code
        ("ABCDO345", "letters other than I, L and O"),
        ("ABCD1345", "letters other than I, L and O"),
        ("ABCDI345", "letters other than I, L and O"),
        ("ABCDL345", "letters other than I, L and O"),
        ("ABCD_345", "letters other than I, L and O"),
        ("ABCDÉ345", "letters other than I, L and O"),
    ],
)
def test_a_malformed_code_is_invalid_naming_the_code(typed: str, reason: str) -> None:
    with pytest.raises(InvalidValue) as info:
        normalise_code(typed)
    assert info.value.field == "code"
    assert reason in info.value.reason


def test_codes_are_written_in_two_groups_that_read_back() -> None:
    assert format_code("ABCD2345") == "ABCD-2345"
    assert normalise_code(format_code("ABCD2345")) == "ABCD2345"


def test_unique_code_draws_again_while_the_code_is_in_use() -> None:
    script = iter("AAAAAAAABBBBBBBBCCCCCCCC")
    taken = {"AAAAAAAA", "BBBBBBBB"}
    assert unique_code(lambda _alphabet: next(script), taken.__contains__) == "CCCCCCCC"


def test_unique_code_gives_up_on_a_broken_generator() -> None:
    with pytest.raises(RuleConflict):
        unique_code(lambda _alphabet: "A", lambda _code: True)


# --- hashes --------------------------------------------------------------------------------------


def test_the_key_is_an_hmac_of_a_fixed_label_under_the_secret() -> None:
    secret = "a-server-secret-of-at-least-32-characters"
    assert KEY == hmac.new(secret.encode(), KEY_LABEL, hashlib.sha256).digest()
    assert derive_key(secret) == KEY  # stable: codes sent yesterday still check today
    assert derive_key(secret + "!") != KEY
    assert KEY != secret.encode()  # the JWT signing key itself is never the hash key


def test_the_hash_is_a_salted_keyed_hmac_and_never_the_code() -> None:
    stored = hash_code(KEY, "ABCD2345", SALT)
    scheme, salt_hex, digest = stored.split("$")
    assert (scheme, salt_hex) == ("v1", SALT.hex())
    assert digest == hmac.new(KEY, SALT + b"ABCD2345", hashlib.sha256).hexdigest()
    assert "ABCD2345" not in stored
    assert len(stored) <= 200  # the storage column
    # Salted: the same code of two jobs hashes differently.
    assert hash_code(KEY, "ABCD2345", secrets.token_bytes(16)) != hash_code(KEY, "ABCD2345", secrets.token_bytes(16))


def test_verification_takes_the_right_code_only() -> None:
    stored = hash_code(KEY, "ABCD2345", SALT)
    assert verify_code(KEY, "ABCD2345", stored)
    assert not verify_code(KEY, "ABCD2346", stored)
    assert not verify_code(derive_key("another-server-secret-of-32-characters"), "ABCD2345", stored)


@pytest.mark.parametrize(
    "stored",
    [None, "", "v1", "v1$$", "v2$" + SALT.hex() + "$00", "v1$zz$00", "v1$" + SALT.hex() + "$", "ABCD2345"],
)
def test_a_missing_or_malformed_hash_matches_nothing(stored: str | None) -> None:
    assert not verify_code(KEY, "ABCD2345", stored)


def test_verification_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module domain.pickup calls through
    stored = hash_code(KEY, "ABCD2345", SALT)
    assert verify_code(KEY, "ABCD2345", stored)
    assert not verify_code(KEY, "WXYZ2345", stored)
    assert len(compared) == 2
    assert all(b == stored.split("$")[2] for _a, b in compared)


# --- the lockout ---------------------------------------------------------------------------------


def test_the_fifth_wrong_code_locks_for_15_minutes_and_the_count_starts_over() -> None:
    rule = Lockout()
    attempts = Attempts()
    for failures in range(1, 5):
        attempts = rule.after_failure(attempts, NOW)
        assert attempts == Attempts(failures, None)
        assert not attempts.locked(NOW)
    attempts = rule.after_failure(attempts, NOW)
    assert attempts == Attempts(0, NOW + timedelta(minutes=15))
    assert attempts.locked(NOW)
    assert attempts.locked(NOW + timedelta(minutes=14, seconds=59))
    assert attempts.retry_after(NOW + timedelta(minutes=10)) == timedelta(minutes=5)
    assert not attempts.locked(NOW + timedelta(minutes=15))
    assert attempts.retry_after(NOW + timedelta(minutes=15)) == timedelta(0)
    # After the lock, a new wrong code counts from one again and clears the old lock.
    later = NOW + timedelta(minutes=16)
    assert rule.after_failure(attempts, later) == Attempts(1, None)


def test_no_code_is_counted_while_locked() -> None:
    locked = Attempts(0, NOW + timedelta(minutes=1))
    with pytest.raises(RuleConflict):
        Lockout().after_failure(locked, NOW)


def test_the_lockout_follows_its_settings() -> None:
    rule = Lockout(max_failures=2, duration=timedelta(minutes=3))
    assert rule.after_failure(Attempts(), NOW) == Attempts(1, None)
    assert rule.after_failure(Attempts(1, None), NOW) == Attempts(0, NOW + timedelta(minutes=3))


def test_an_unlocked_job_waits_for_nothing() -> None:
    assert Attempts().retry_after(NOW) == timedelta(0)
    assert not Attempts(4, None).locked(NOW)


# --- storage slots -------------------------------------------------------------------------------


def test_the_first_free_slot_in_the_branchs_order_is_given_and_freed_ones_reused() -> None:
    slots = ["A-01", "A-02", "B-01"]
    assert first_free_slot(slots, set()) == "A-01"
    assert first_free_slot(slots, {"A-01"}) == "A-02"
    assert first_free_slot(slots, {"A-02", "B-01"}) == "A-01"  # A-01 was freed: reused first
    assert first_free_slot(slots, {"A-01", "A-02", "X-99"}) == "B-01"  # a slot no longer listed is ignored


def test_no_slot_when_every_one_is_taken() -> None:
    assert first_free_slot(["A-01", "A-02"], {"A-01", "A-02"}) is None
    assert first_free_slot([], set()) is None


# --- the message ---------------------------------------------------------------------------------


def _facts(**data: object) -> Facts:
    hours = OpeningHours.from_mapping({d: [["09:00", "19:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat")})
    return Facts("AT-000042", "Camille", "Apple iPhone 13", "Atelier Valence", hours, ZoneInfo("Europe/Paris"), data)


@pytest.mark.parametrize("channel", list(ChannelName))
def test_the_ready_message_gives_the_code_and_the_hours(channel: ChannelName) -> None:
    fr = render(Template.READY_FOR_PICKUP, channel, "fr", _facts(outcome="repaired", pickup_code="ABCD-2345"))
    assert "Votre code de retrait : ABCD-2345." in fr.body
    assert "Horaires : lun-sam 09:00-19:00." in fr.body
    en = render(Template.READY_FOR_PICKUP, channel, "en", _facts(outcome="not_repaired", pickup_code="ABCD-2345"))
    assert "Your pickup code: ABCD-2345." in en.body
    assert "Opening hours: Mon-Sat 09:00-19:00." in en.body


def test_a_message_without_a_code_does_not_mention_one() -> None:
    message = render(Template.READY_FOR_PICKUP, ChannelName.SMS, "en", _facts(outcome="repaired"))
    assert "code" not in message.body
