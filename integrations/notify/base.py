"""The channel protocol: one call sends one message and returns the provider's id for it.

A failure is either retryable (the provider is down, busy, or timed out: try again later) or permanent
(the address is refused, the request is wrong: trying again cannot help). Nothing else escapes `send`.
"""

from __future__ import annotations

from typing import Protocol


class SendError(Exception):
    retryable = False


class RetryableSendError(SendError):
    retryable = True


class PermanentSendError(SendError):
    retryable = False


class Channel(Protocol):
    async def send(self, to: str, subject: str, body: str, *, idempotency_key: str | None = None) -> str:
        """Send one message; returns the provider's id. `idempotency_key` lets a provider that supports
        it (the SMS gateway) recognise a retry of a message it already accepted."""
        ...
