"""The long-lived resources every entry point shares: built once per process (the API's lifespan, a
worker's startup, a CLI command) and handed to use cases, so requests, tasks and commands run the same
code with the same settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from integrations.notify.email import EmailChannel, SmtpSettings
from integrations.notify.sms import SmsChannel
from integrations.resilience import InMemoryBreakerStore, InMemoryRateLimiter
from integrations.suppliers.registry import SupplierClients
from service.persistence.db import create_engine
from service.secrets import PasscodeCipher
from service.settings import Settings
from service.uow import Database

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class TaskQueue(Protocol):
    """Hands a task to the workers. `job_id` makes it idempotent: the same id is queued once."""

    async def enqueue(self, task: str, *, job_id: str, **kwargs: Any) -> bool: ...


@dataclass
class Services:
    settings: Settings
    db: Database
    cipher: PasscodeCipher
    suppliers: SupplierClients
    clock: Clock = utc_now
    channels: dict[str, Any] = field(default_factory=dict)  # notification channels by name ("email", "sms")

    async def aclose(self) -> None:
        await self.suppliers.aclose()
        for channel in self.channels.values():
            close = getattr(channel, "aclose", None)
            if close is not None:
                await close()
        await self.db.engine.dispose()


def supplier_clients(settings: Settings) -> SupplierClients:
    """One client per supplier for the process. Breakers and rate limits live in this process for now
    (a shared store across processes is a drop-in `BreakerStore`/`RateLimiter`)."""
    return SupplierClients(
        allow_private=settings.allow_private_supplier_urls,
        breakers=InMemoryBreakerStore(),
        limiter=InMemoryRateLimiter(),
        settings=settings.supplier_http,
    )


def notification_channels(settings: Settings) -> dict[str, Any]:
    """The configured channels only: a shop without an SMS gateway sends email alone."""
    channels: dict[str, Any] = {}
    if settings.smtp_host and settings.smtp_from:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        s = settings
        channels["email"] = EmailChannel(
            SmtpSettings(s.smtp_host, s.smtp_port, s.smtp_from, s.smtp_starttls, s.smtp_user, password)
        )
    if settings.sms_gateway_url and settings.sms_gateway_key:
        channels["sms"] = SmsChannel(settings.sms_gateway_url, settings.sms_gateway_key.get_secret_value())
    return channels


def build_services(settings: Settings, cipher: PasscodeCipher, *, clock: Clock = utc_now) -> Services:
    """Everything built here is per process: call it where the process starts, never at import."""
    db = Database(create_engine(settings))
    return Services(settings, db, cipher, supplier_clients(settings), clock, notification_channels(settings))
