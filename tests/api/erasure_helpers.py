"""Closed jobs for the erasure and retention tests: the pickup's hand-over, through the domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.model import Actor, HandOver
from domain.stages import Role
from service.services import Services
from tests.api.helpers import advance_to, create_job, get_job
from tests.conftest import Api, FakeClock

COUNTER = Actor(0, "manager", Role.MANAGER, None)  # hands devices over in these tests


def job_id(job: dict[str, Any]) -> int:
    return int(job["ref"].removeprefix("AT-"))


async def collect(services: Services, ref: str, now: datetime, paid_cents: int = 8900) -> None:
    """The device leaves with its owner (the domain's hand-over, saved as the pickup saves it)."""
    async with services.db.transaction() as uow:
        job = await uow.jobs.get(COUNTER, ref)
        version = job.version
        job.hand_over(COUNTER, HandOver(code_checked=False, paid_cents=paid_cents, reason="test hand-over"), now)
        await uow.jobs.save(job, version)


async def collected_job(
    api: Api, services: Services, clock: FakeClock, job: dict[str, Any] | None = None, **overrides: Any
) -> dict[str, Any]:
    """A valence job (new, or `job`) repaired (estimate 89.00, approved) and collected now, paid 89.00."""
    job = await advance_to(api, job or await create_job(api, **overrides), "ready_for_pickup")
    await collect(services, job["ref"], clock.now)
    return await get_job(api, "manager", job["ref"])
