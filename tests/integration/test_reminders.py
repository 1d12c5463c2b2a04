"""Uncollected devices: reminders after 3, 10 and 30 days on the shelf, each once, then the managers."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from service.persistence.tables import alert_t, outbox_t
from service.services import Services
from service.usecases.reminders import remind_uncollected
from tests.api.helpers import JOBS, advance_to, collect, create_job
from tests.conftest import Api, FakeClock


async def _reminders(services: Services) -> list[dict[str, Any]]:
    async with services.db.transaction(write=False) as uow:
        rows = await uow.connection.execute(select(outbox_t.c.job_id, outbox_t.c.payload).order_by(outbox_t.c.id))
    return [
        {"job_id": job_id, **payload["data"]}
        for job_id, payload in rows
        if payload.get("template") == "uncollected_reminder"
    ]


async def _manager_alerts(services: Services) -> list[str]:
    async with services.db.transaction(write=False) as uow:
        rows = await uow.connection.execute(select(alert_t.c.kind).where(alert_t.c.audience == "manager"))
    return [row[0] for row in rows]


async def _ready(api: Api) -> dict[str, Any]:
    job = await create_job(api)
    return await advance_to(api, job, "ready_for_pickup")


async def test_reminders_come_after_3_10_and_30_days_each_once_then_the_managers(
    api: Api, services: Services, clock: FakeClock
) -> None:
    job = await _ready(api)
    job_id = int(job["ref"].removeprefix("AT-"))

    clock.advance(days=2, hours=23)
    assert await remind_uncollected(services, now=clock.now) == 0
    clock.advance(hours=2)  # 3 days on the shelf
    assert await remind_uncollected(services, now=clock.now) == 1
    assert await remind_uncollected(services, now=clock.now) == 0  # a re-run sends nothing more
    assert await _reminders(services) == [{"job_id": job_id, "days": 3}]
    assert await _manager_alerts(services) == []

    clock.advance(days=30)  # 10 and 30 are both due now: each sent once, the managers told once
    results = await asyncio.gather(*(remind_uncollected(services, now=clock.now) for _ in range(2)))
    assert sum(results) == 2
    assert [r["days"] for r in await _reminders(services)] == [3, 10, 30]
    assert await _manager_alerts(services) == ["uncollected"]

    events = (await api.client.get(f"{JOBS}/{job['ref']}/events", headers=await api.login("desk.valence"))).json()
    assert [e["data"]["days"] for e in events if e["kind"] == "reminded"] == [3, 10, 30]


async def test_a_collected_device_gets_no_reminder(api: Api, services: Services, clock: FakeClock) -> None:
    job = await _ready(api)
    await collect(api, "desk.valence", job)
    clock.advance(days=40)
    assert await remind_uncollected(services, now=clock.now) == 0
    assert await _reminders(services) == []
