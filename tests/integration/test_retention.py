"""The retention task: customers whose jobs are all closed, the last one more than 36 months ago
(ATELIER_CUSTOMER_RETENTION_MONTHS), are anonymised, a batch at a time, once; and it runs daily."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from service.persistence.tables import customer_t, idempotency_t, job_t
from service.services import Services
from service.usecases.customers import anonymise_expired
from tests.api.erasure_helpers import collected_job, job_id
from tests.api.helpers import JOBS, create_job, events, get_job, intake_body
from tests.conftest import Api, FakeClock
from workers import tasks
from workers.schedule import SCHEDULE
from workers.settings import cron_jobs


async def cancelled_job(api: Api, **overrides: Any) -> dict[str, Any]:
    job = await create_job(api, **overrides)
    response = await api.client.post(
        f"{JOBS}/{job['ref']}/transitions",
        json={"to": "cancelled"},
        headers={**(await api.login("desk.valence")), "If-Match": '"v1"'},
    )
    assert response.status_code == 200, response.text
    return job


async def erased_customers(services: Services) -> set[int]:
    async with services.db.transaction(write=False) as uow:
        rows = await uow.connection.execute(select(customer_t.c.id).where(customer_t.c.erased_at.is_not(None)))
    return {row[0] for row in rows}


async def same_customer(services: Services, job: dict[str, Any], owner: dict[str, Any]) -> None:
    """`job` becomes a job of `owner`'s customer (a returning customer)."""
    async with services.db.transaction() as uow:
        values = {"customer_id": owner["customer"]["id"]}
        await uow.connection.execute(update(job_t).where(job_t.c.id == job_id(job)).values(**values))


async def test_customers_whose_last_job_closed_36_months_ago_are_anonymised(
    api: Api, services: Services, clock: FakeClock
) -> None:
    start = clock.now  # Monday 23 November 2026
    stored = await api.client.post(
        JOBS, json=intake_body(), headers={**(await api.login("desk.valence")), "Idempotency-Key": "old-intake"}
    )
    assert stored.status_code == 201, stored.text
    collected = await collected_job(api, services, clock, stored.json())
    cancelled = await cancelled_job(api)
    still_open = await create_job(api)
    returning_first = await cancelled_job(api)

    clock.now = datetime(2026, 12, 23, 9, 0, tzinfo=UTC)
    on_the_day = await cancelled_job(api)  # exactly 36 months before the run: not more
    clock.now = datetime(2027, 1, 23, 9, 0, tzinfo=UTC)
    recent = await collected_job(api, services, clock)
    returning_again = await cancelled_job(api)
    await same_customer(services, returning_again, returning_first)

    clock.now = datetime(2029, 12, 23, 9, 0, tzinfo=UTC)
    assert await tasks.anonymise_customers({"services": services}) == 2
    assert await erased_customers(services) == {collected["customer"]["id"], cancelled["customer"]["id"]}
    assert await tasks.anonymise_customers({"services": services}) == 0  # a re-run changes nothing

    job = await get_job(api, "manager", collected["ref"])
    assert (job["customer"]["name"], job["customer"]["phone"], job["device"]["imei"]) == ("[erased]", "", None)
    assert (job["stage"], job["paid_cents"], job["estimate"]["total_cents"]) == ("collected", 8900, 8900)
    erased = [e for e in await events(api, "manager", collected["ref"]) if e["kind"] == "customer_erased"]
    assert [(e["actor"], e["data"]) for e in erased] == [("retention", {"customer_id": collected["customer"]["id"]})]
    untouched = await get_job(api, "manager", still_open["ref"])
    assert untouched["customer"]["name"] == "Camille Martin" and untouched["device"]["imei"] is not None
    async with services.db.transaction(write=False) as uow:  # stored answers of long-expired retries too
        assert (await uow.connection.execute(select(idempotency_t.c.id))).all() == []

    # Two months on, the others' time is up too (the returning customer's by their last job); the open job's
    # customer stays, however old.
    clock.now = datetime(2030, 2, 1, 9, 0, tzinfo=UTC)
    assert await anonymise_expired(services, clock.now) == 3
    assert still_open["customer"]["id"] not in await erased_customers(services)
    for ref in (on_the_day["ref"], recent["ref"], returning_first["ref"], returning_again["ref"]):
        assert (await get_job(api, "manager", ref))["customer"]["name"] == "[erased]"
    assert clock.now - start > timedelta(days=36 * 30)


async def test_the_retention_period_is_configurable(api: Api, services: Services, clock: FakeClock) -> None:
    job = await cancelled_job(api)
    clock.advance(days=40)
    shorter = replace(services, settings=services.settings.model_copy(update={"customer_retention_months": 1}))
    assert await anonymise_expired(services, clock.now) == 0
    assert await anonymise_expired(shorter, clock.now) == 1
    assert job["customer"]["id"] in await erased_customers(services)


async def test_customers_are_anonymised_a_batch_at_a_time(api: Api, services: Services, clock: FakeClock) -> None:
    jobs = [await cancelled_job(api) for _ in range(5)]
    clock.now = datetime(2030, 1, 1, tzinfo=UTC)
    assert await anonymise_expired(services, clock.now, batch=2) == 5
    assert await erased_customers(services) == {job["customer"]["id"] for job in jobs}
    for job in jobs:
        kinds = [e["kind"] for e in await events(api, "manager", job["ref"])]
        assert kinds.count("customer_erased") == 1


def test_the_retention_task_runs_daily_at_night() -> None:
    (periodic,) = [p for p in SCHEDULE if p.task == "anonymise_customers"]
    assert periodic.every == timedelta(days=1)
    assert periodic.cron_fields() == {"hour": {3}, "minute": {0}, "second": {0}}
    assert tasks.TASKS["anonymise_customers"] is tasks.anonymise_customers
    assert "cron:anonymise_customers" in {job.name for job in cron_jobs(120)}
