"""What a worker holds, built for a test: the test's clock and supplier-call settings of its choosing
(short timeouts, a quick breaker), with the breakers and rate limits in the process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from integrations.http import HttpSettings
from integrations.resilience import InMemoryBreakerStore, InMemoryRateLimiter
from integrations.suppliers.registry import SupplierClients
from service.persistence.db import create_engine
from service.secrets import required_secrets
from service.services import Services
from service.settings import Settings
from service.uow import Database
from tests.conftest import FakeClock


@asynccontextmanager
async def worker_services(settings: Settings, clock: FakeClock, http: HttpSettings) -> AsyncIterator[Services]:
    _, cipher = required_secrets(settings)
    clients = SupplierClients(
        allow_private=True, breakers=InMemoryBreakerStore(), limiter=InMemoryRateLimiter(), settings=http
    )
    built = Services(settings=settings, db=Database(create_engine(settings)), cipher=cipher, suppliers=clients)
    built.clock = clock
    try:
        yield built
    finally:
        await built.aclose()
