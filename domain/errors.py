"""Rule violations of the repair world. The service layer maps each family to an HTTP status."""

from __future__ import annotations

from collections.abc import Sequence


class DomainError(Exception):
    """Base of every rule the repair world enforces."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidValue(DomainError):
    """A value that can never be right (bad IMEI, bad phone number, bad hours)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotPermitted(DomainError):
    """The actor's role may not do this."""


class RuleConflict(DomainError):
    """The job's current state does not allow this change."""


class IllegalTransition(RuleConflict):
    """A stage change that the transition table (or a precondition) forbids."""

    def __init__(self, detail: str, allowed: Sequence[str]) -> None:
        super().__init__(detail)
        self.allowed = list(allowed)


class NotFound(DomainError):
    """Absent, or not visible to this actor: another branch's job is 'not found', never 'forbidden'."""


class VersionConflict(DomainError):
    """The caller changed a version of the job that is no longer current (optimistic concurrency)."""
