"""The long-lived resources every entry point shares: built once per process (the API's lifespan, a
worker's startup, a CLI command) and handed to use cases, so requests, tasks and commands run the same
code with the same settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from redis.asyncio import Redis

from integrations.http import Hooks
from integrations.notify.email import EmailChannel, SmtpSettings
from integrations.notify.sms import SmsChannel
from integrations.resilience import BreakerStore, InMemoryRateLimiter, RateLimiter
from integrations.suppliers.registry import SupplierClients
from service.metrics import Metrics
from service.persistence.db import create_engine
from service.secrets import PasscodeCipher
from service.settings import Settings
from service.shared_state import shared_redis, shared_stores
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
    # Request rate limits, counted with the other processes' through Redis when it is configured.
    limiter: RateLimiter = field(default_factory=InMemoryRateLimiter)
    redis: Redis | None = None  # the shared state's client (breakers, rate limits)
    metrics: Metrics = field(default_factory=Metrics)

    async def aclose(self) -> None:
        await self.suppliers.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        for channel in self.channels.values():
            close = getattr(channel, "aclose", None)
            if close is not None:
                await close()
        await self.db.engine.dispose()


def supplier_clients(
    settings: Settings, breakers: BreakerStore, limiter: RateLimiter, metrics: Metrics
) -> SupplierClients:
    """One client per supplier for the process; its breaker and rate limit are shared by every process
    when the stores are Redis's."""
    return SupplierClients(
        allow_private=settings.allow_private_supplier_urls,
        breakers=breakers,
        limiter=limiter,
        settings=settings.supplier_http,
        hooks=Hooks(observe=metrics.supplier_call),
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
    redis = shared_redis(settings.redis_url) if settings.redis_url else None
    breakers, limiter = shared_stores(redis)
    metrics = Metrics()
    suppliers = supplier_clients(settings, breakers, limiter, metrics)
    channels = notification_channels(settings)
    return Services(settings, db, cipher, suppliers, clock, channels, limiter, redis, metrics)
