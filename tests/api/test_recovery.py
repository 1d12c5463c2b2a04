"""The database drops its connections (a restart, a killed backend): requests fail cleanly, then recover."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from service.persistence.db import create_engine
from service.settings import Settings
from tests.api.helpers import JOBS, create_job, intake_body
from tests.conftest import Api

KILL_OTHERS = text(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


async def test_killed_connections_fail_cleanly_then_the_pool_recovers(
    api: Api, settings: Settings, is_postgres: bool
) -> None:
    if not is_postgres:
        pytest.skip("terminating server connections needs PostgreSQL")
    job = await create_job(api)
    headers = await api.login("desk.valence")
    for _ in range(3):
        assert (await api.client.get(f"{JOBS}/{job['ref']}", headers=headers)).status_code == 200

    engine = create_engine(settings, driver_transactions=False)
    try:
        async with engine.connect() as conn:
            await conn.execute(KILL_OTHERS)
    finally:
        await engine.dispose()

    answers = [await api.client.get(f"{JOBS}/{job['ref']}", headers=headers) for _ in range(25)]
    assert answers[0].status_code == 503, "the pooled connection was killed: the first request cannot succeed"
    for failed in (a for a in answers if a.status_code != 200):
        assert failed.status_code == 503, failed.text
        assert failed.headers["retry-after"]
        assert failed.headers["content-type"].startswith("application/problem+json")
    assert [a.status_code for a in answers[-10:]] == [200] * 10, "the pool did not recover"
    created = await api.client.post(JOBS, json=intake_body(), headers=headers)
    assert created.status_code == 201
