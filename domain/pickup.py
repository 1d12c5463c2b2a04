"""Pickup codes, the wrong-code lockout and storage slots: the rules of handing a device back. Pure.

- A code is 8 characters from an alphabet without the look-alikes 0/O and 1/I/L, so that what the
  customer reads in a message and what the counter types agree (31^8, about 8.5e11 codes). What the
  customer types is forgiven its case, spaces and dashes ("abcd-efgh" is ABCDEFGH).
- Only a salted, keyed hash is stored: `v1$<salt hex>$<HMAC-SHA256(key, salt || code) hex>`. The key is
  derived from a server secret that is not in the database (`derive_key`), so a leaked database alone
  cannot be brute-forced offline (a plain hash of so few codes falls in minutes on a GPU); the salt
  makes equal codes of two jobs hash differently. Checks compare in constant time.
- Wrong codes are counted per job; the 5th (configurable) locks pickup of that job for 15 minutes.
- A device waiting for its owner sits in the first free slot (shelf/bin) of the branch's list.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.errors import InvalidValue, NotPermitted, RuleConflict

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L
CODE_LENGTH = 8
SALT_BYTES = 16
HASH_SCHEME = "v1"
# The label the hash key is derived under: another use of the same secret (JWT signing) never yields it.
KEY_LABEL = b"atelier/pickup-code/v1"
_SEPARATORS = str.maketrans("", "", " \t\r\n-\u2010\u2011\u2012\u2013\u2014\u2212")  # spaces, ASCII/Unicode dashes
_UNIQUE_TRIES = 20


class WrongCode(NotPermitted):
    """A pickup code that is not the job's (403, naming the field)."""

    field = "code"


def derive_key(secret: str) -> bytes:
    """The key of the code hashes: HMAC-SHA256 of a fixed label under the server secret."""
    return hmac.new(secret.encode(), KEY_LABEL, hashlib.sha256).digest()


def generate_code(choice: Callable[[str], str]) -> str:
    """A new code; `choice` picks one character of a string (`secrets.choice` in service)."""
    return "".join(choice(ALPHABET) for _ in range(CODE_LENGTH))


def unique_code(choice: Callable[[str], str], in_use: Callable[[str], bool]) -> str:
    """A new code that `in_use` does not know (another ready job of the branch holds it)."""
    for _ in range(_UNIQUE_TRIES):
        code = generate_code(choice)
        if not in_use(code):
            return code
    raise RuleConflict("no unused pickup code could be drawn")  # 20 collisions in 8.5e11: a broken `choice`


def format_code(code: str) -> str:
    """How a code is written to the customer: two groups of four (ABCD-EFGH)."""
    half = CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def normalise_code(raw: str) -> str:
    """The code as stored, from what the customer typed (any case, spaces, dashes)."""
    code = raw.translate(_SEPARATORS).upper()
    if len(code) != CODE_LENGTH:
        raise InvalidValue("code", f"a pickup code has {CODE_LENGTH} characters")
    if any(char not in ALPHABET for char in code):
        raise InvalidValue("code", "a pickup code has only digits 2-9 and letters other than I, L and O")
    return code


def hash_code(key: bytes, code: str, salt: bytes) -> str:
    digest = hmac.new(key, salt + code.encode(), hashlib.sha256).hexdigest()
    return f"{HASH_SCHEME}${salt.hex()}${digest}"


def verify_code(key: bytes, code: str, stored: str | None) -> bool:
    """Whether `code` (normalised) is the one `stored` was made from; constant time in the code."""
    if stored is None:
        return False
    scheme, _, rest = stored.partition("$")
    salt_hex, _, digest = rest.partition("$")
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    if scheme != HASH_SCHEME or not digest:
        return False
    expected = hmac.new(key, salt + code.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, digest)


# --- the wrong-code lockout ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempts:
    """Wrong codes given for a job since its last lock, and the lock they caused (if any)."""

    failures: int = 0
    locked_until: datetime | None = None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def retry_after(self, now: datetime) -> timedelta:
        """How long the lock still holds (zero when it does not)."""
        if self.locked_until is None or now >= self.locked_until:
            return timedelta(0)
        return self.locked_until - now


@dataclass(frozen=True, slots=True)
class Lockout:
    max_failures: int = 5
    duration: timedelta = timedelta(minutes=15)

    def after_failure(self, attempts: Attempts, now: datetime) -> Attempts:
        """The count after one more wrong code: the `max_failures`-th locks, and the count starts over
        (after the lock, as many tries again)."""
        if attempts.locked(now):
            raise RuleConflict("no code is checked while pickup is locked")
        failures = attempts.failures + 1
        if failures >= self.max_failures:
            return Attempts(0, now + self.duration)
        return Attempts(failures, None)


# --- storage slots -------------------------------------------------------------------------------


def first_free_slot(slots: Sequence[str], taken: Collection[str]) -> str | None:
    """The first slot of the branch's list that holds no device (freed slots are reused), or None: full."""
    return next((slot for slot in slots if slot not in taken), None)
