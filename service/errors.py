"""Errors of the application layer that the domain does not know about."""

from __future__ import annotations

from domain.errors import DomainError


class ConfigurationError(Exception):
    """A setting is missing or wrong: the process must not start."""


class IdempotencyKeyReused(DomainError):
    """The same Idempotency-Key came with a different request body."""


class AuthenticationFailed(DomainError):
    """Wrong username or password (never says which)."""
