"""The database drops its connections (a restart, a killed backend): requests fail cleanly (503 with
Retry-After), the pool recovers by itself, and nothing is lost or half written."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from service.persistence.db import create_engine
from service.settings import Settings
from tests.api.helpers import JOBS, create_job, events, imei, intake_body
from tests.conftest import Api

KILL_OTHERS = text(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


async def kill_connections(settings: Settings) -> None:
    engine = create_engine(settings, driver_transactions=False)
    try:
        async with engine.connect() as conn:
            await conn.execute(KILL_OTHERS)
    finally:
        await engine.dispose()


async def test_killed_connections_fail_cleanly_then_the_pool_recovers(
    api: Api, settings: Settings, is_postgres: bool
) -> None:
    if not is_postgres:
        pytest.skip("terminating server connections needs PostgreSQL")
    job = await create_job(api)
    headers = await api.login("desk.valence")
    for _ in range(3):
        assert (await api.client.get(f"{JOBS}/{job['ref']}", headers=headers)).status_code == 200

    await kill_connections(settings)

    answers = [await api.client.get(f"{JOBS}/{job['ref']}", headers=headers) for _ in range(25)]
    assert answers[0].status_code == 503, "the pooled connection was killed: the first request cannot succeed"
    for failed in (a for a in answers if a.status_code != 200):
        assert failed.status_code == 503, failed.text
        assert failed.headers["retry-after"]
        assert failed.headers["content-type"].startswith("application/problem+json")
    assert [a.status_code for a in answers[-10:]] == [200] * 10, "the pool did not recover"
    created = await api.client.post(JOBS, json=intake_body(), headers=headers)
    assert created.status_code == 201


async def test_connections_killed_during_a_burst_of_intakes_lose_and_half_write_nothing(
    live_api: Api, settings: Settings, is_postgres: bool
) -> None:
    if not is_postgres:
        pytest.skip("terminating server connections needs PostgreSQL")
    headers = await live_api.login("desk.valence")
    bodies = {f"burst-{n}": intake_body(device={**intake_body()["device"], "imei": imei(500 + n)}) for n in range(40)}

    async def intake(key: str) -> tuple[str, httpx.Response]:
        sent = {**headers, "Idempotency-Key": key}
        return key, await live_api.client.post(JOBS, json=bodies[key], headers=sent)

    async def kill_twice() -> None:  # while the burst is in flight, twice: a restart is rarely one blow
        for _ in range(2):
            await asyncio.sleep(0.05)
            await kill_connections(settings)

    *answers, _ = await asyncio.gather(*(intake(key) for key in bodies), kill_twice())

    created: dict[str, Any] = {}
    for key, response in answers:
        if response.status_code == 201:
            created[key] = response.json()["ref"]
            continue
        assert response.status_code == 503, response.text  # never a 500
        assert response.headers["retry-after"]
        assert response.headers["content-type"].startswith("application/problem+json")
    assert len(created) < len(bodies), "the connections died after the burst: nothing was tested"
    # The desk sends each refused intake again with its key until it is taken (or replayed, if it had been
    # committed before its connection died): the pool drops its dead connections as it meets them.
    for key in sorted(bodies.keys() - created.keys()):
        for _ in range(25):
            _, again = await intake(key)
            if again.status_code != 503:
                break
        assert again.status_code == 201, again.text
        created[key] = again.json()["ref"]
    assert len(set(created.values())) == len(bodies)  # one job per intake, none twice
    listed = await live_api.client.get(JOBS, params={"limit": 100}, headers=headers)
    assert sorted(job["ref"] for job in listed.json()["items"]) == sorted(created.values())
    for ref in created.values():  # each whole: the job, its customer and its history
        history = await events(live_api, "desk.valence", ref)
        assert [e["kind"] for e in history][:1] == ["created"]
