"""Errors of the application layer that the domain does not know about."""

from __future__ import annotations

from domain.errors import DomainError


class ConfigurationError(Exception):
    """A setting is missing or wrong: the process must not start."""


class IdempotencyKeyReused(DomainError):
    """The same Idempotency-Key came with a different request body."""


class AuthenticationFailed(DomainError):
    """Wrong username or password (never says which)."""


class SupplierFailure(DomainError):
    """A supplier could not do what we asked: unreachable (503, retry later) or refused (409)."""

    def __init__(self, supplier: str, reason: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"{supplier}: {reason}")
        self.supplier = supplier
        self.status = status
        self.retry_after = retry_after


class RateLimited(DomainError):
    """Too many requests for one key (an IP, a link, a job): 429 with Retry-After."""

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
