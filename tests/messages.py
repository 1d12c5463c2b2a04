"""The customer's messages as the customer gets them: what a worker does with a job's outbox, sent
through the supplier sandbox's SMS gateway over real HTTP, and what that gateway received."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import SecretStr
from sqlalchemy import select

from service.persistence.tables import outbox_t
from service.secrets import PasscodeCipher
from service.services import Services, build_services
from service.settings import Settings
from service.usecases import outbox
from tests.conftest import PASSCODE_KEY, FakeClock
from tests.sandbox_fixture import SandboxServer

CODE = re.compile(r"\b([A-HJKMNP-Z2-9]{4})-([A-HJKMNP-Z2-9]{4})\b")  # a pickup code, as the message writes it


@asynccontextmanager
async def sms_services(
    settings: Settings, clock: FakeClock, sandbox: SandboxServer, tenant: str
) -> AsyncIterator[Services]:
    """The worker side, with the SMS gateway (the sandbox's `tenant`) configured as an operator would."""
    configured = settings.model_copy(
        update={"sms_gateway_url": sandbox.tenant_url(tenant), "sms_gateway_key": SecretStr("sms-key")}
    )
    built = build_services(configured, PasscodeCipher(PASSCODE_KEY), clock=clock)
    try:
        yield built
    finally:
        await built.aclose()


async def deliver(services: Services, ref: str, clock: FakeClock) -> None:
    """What the relay and a worker do: hand every due entry of the job to its handler."""
    async with services.db.transaction(write=False) as uow:
        query = select(outbox_t.c.id).where(
            outbox_t.c.job_id == int(ref.removeprefix("AT-")),
            outbox_t.c.done_at.is_(None),
            outbox_t.c.available_at <= clock.now,
        )
        due = [row.id for row in await uow.connection.execute(query.order_by(outbox_t.c.id))]
    for entry_id in due:
        await outbox.handle(services, entry_id, now=clock.now)


def texts_to(sandbox: SandboxServer, tenant: str, phone: str) -> list[str]:
    """The SMS bodies the gateway received for `phone`, oldest first."""
    response = sandbox.client.get(f"{sandbox.tenant_url(tenant)}/_sandbox/sms")
    response.raise_for_status()
    return [item["body"] for item in response.json()["items"] if item["to"] == phone]
