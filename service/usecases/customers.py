"""Customers' personal data: erasure on request (a manager), and the retention task that anonymises
customers whose last job closed more than N months ago (ATELIER_CUSTOMER_RETENTION_MONTHS, default 36).

Both keep the jobs' anonymous history and amounts, record a CUSTOMER_ERASED event on each job, and are
idempotent: a customer erased already is answered with the same result and changed no further.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from domain.erasure import (
    ERASED_NAME,
    RETENTION_ACTOR,
    check_erasable,
    check_may_erase,
    months_before,
    scrub,
)
from domain.errors import NotFound
from domain.model import Actor, EventKind, JobEvent
from domain.stages import TERMINAL
from service.persistence.customers import CustomerDataRepository, CustomerJob
from service.services import Services
from service.uow import UnitOfWork

log = structlog.get_logger("atelier.customers")

RETENTION_BATCH = 200  # customers a transaction: their jobs' events go in one multi-row INSERT


@dataclass(frozen=True, slots=True)
class Erasure:
    customer_id: int
    erased_at: datetime
    jobs: list[str]  # the references of the customer's jobs, kept anonymous


async def erase_customer(uow: UnitOfWork, actor: Actor, customer_id: int, *, now: datetime) -> Erasure:
    """Anonymise a customer with no open job. A manager of a branch sees only customers with a job there."""
    check_may_erase(actor)
    store = CustomerDataRepository(uow.connection)
    exists, erased_at = await store.lock(customer_id)
    jobs = await store.jobs_of([customer_id]) if exists else []
    if not exists or not (actor.chain_wide or any(job.branch_id == actor.branch_id for job in jobs)):
        raise NotFound(f"no customer {customer_id}")
    refs = [job.ref for job in jobs]
    if erased_at is not None:
        return Erasure(customer_id, erased_at, refs)
    check_erasable([job.ref for job in jobs if job.stage not in TERMINAL])
    await _erase(uow, store, [customer_id], jobs, actor.username, now)
    await store.forget_responses([job.job_id for job in jobs])
    log.info("customer_erased", customer_id=customer_id, jobs=len(jobs), by=actor.username)
    return Erasure(customer_id, now, refs)


async def anonymise_expired(services: Services, now: datetime, *, batch: int = RETENTION_BATCH) -> int:
    """Anonymise every customer whose jobs are all closed, the last one more than the retention period
    ago; a batch of customers a transaction. Returns how many were anonymised. Idempotent."""
    closed_before = months_before(now, services.settings.customer_retention_months)
    total = 0
    while True:
        async with services.db.transaction() as uow:
            store = CustomerDataRepository(uow.connection)
            found = await store.expired(closed_before, batch)
            if found:
                total += await _erase(uow, store, found, await store.jobs_of(found), RETENTION_ACTOR, now)
        if len(found) < batch:
            break
    if total:
        # The stored answers of retried requests expire after a day; those of customers kept for years have.
        async with services.db.transaction() as uow:
            await uow.idempotency.purge(now - timedelta(hours=services.settings.idempotency_ttl_hours))
        log.info("customers_anonymised", customers=total, closed_before=closed_before.isoformat())
    return total


async def _erase(
    uow: UnitOfWork,
    store: CustomerDataRepository,
    customer_ids: list[int],
    jobs: list[CustomerJob],
    actor: str,
    now: datetime,
) -> int:
    """Erase the customers not erased yet (a concurrent erasure may have come first); returns how many."""
    erased = set(await store.erase_customers(customer_ids, ERASED_NAME, now))
    job_ids = [job.job_id for job in jobs if job.customer_id in erased]
    if job_ids:
        await store.erase_jobs(job_ids)
        await store.scrub_events(job_ids, scrub)
        await store.scrub_notifications(job_ids, ERASED_NAME)
        events = [
            (job.job_id, JobEvent(EventKind.CUSTOMER_ERASED, now, actor, data={"customer_id": job.customer_id}))
            for job in jobs
            if job.customer_id in erased
        ]
        await uow.jobs.add_events_of_jobs(events)
    return len(erased)
