"""Password hashing (argon2) and encryption of customers' passcodes at rest (Fernet, rotatable)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from service.errors import ConfigurationError
from service.settings import Settings

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a miss costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash("atelier-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


class PasscodeCipher:
    """Authenticated encryption with several keys: the first encrypts, any decrypts (key rotation)."""

    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ConfigurationError("ATELIER_PASSCODE_KEYS is empty")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in parts])
        except ValueError as exc:
            raise ConfigurationError(
                "ATELIER_PASSCODE_KEYS must be Fernet keys (32 url-safe base64 bytes), comma-separated"
            ) from exc

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, passcode: str) -> str:
        return self._fernet.encrypt(passcode.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError("no configured passcode key opens this passcode") from exc

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt under the newest key (for `atelier passcodes rotate`)."""
        return self._fernet.rotate(ciphertext.encode()).decode()


def required_secrets(settings: Settings) -> tuple[str, PasscodeCipher]:
    """The JWT secret and the data-key cipher, or a clear ConfigurationError: every process needs both."""
    missing = [
        name
        for name, value in (
            ("ATELIER_JWT_SECRET", settings.jwt_secret),
            ("ATELIER_PASSCODE_KEYS", settings.passcode_keys),
        )
        if value is None
    ]
    if missing:
        raise ConfigurationError(
            f"{' and '.join(missing)} must be set (or run `atelier serve --demo`, which generates demo keys)"
        )
    assert settings.jwt_secret is not None and settings.passcode_keys is not None
    secret = settings.jwt_secret.get_secret_value()
    if len(secret) < 32:
        raise ConfigurationError("ATELIER_JWT_SECRET must be at least 32 characters")
    return secret, PasscodeCipher(settings.passcode_keys.get_secret_value())
