"""Load shedding: past its bound of requests in flight, a process answers 503 + Retry-After at once, and
takes requests again as soon as the ones it holds are done."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from litestar import Litestar

from service.admission import AdmissionGate
from service.settings import Settings
from service.uow import Database, UnitOfWork
from tests.conftest import Api

LIMIT = 2


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_requests_in_flight": LIMIT})


Held = tuple[asyncio.Event, asyncio.Event]


@pytest.fixture
def hold(live_app: Litestar, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Held]]:
    """`hold()` makes every transaction of the app wait for `release`, and answers (entered, release):
    `entered` is set once LIMIT requests are waiting, so the test knows the process is full."""
    db: Database = live_app.state.db
    original = db.transaction
    entered, release = asyncio.Event(), asyncio.Event()
    waiting = {"n": 0}

    @asynccontextmanager
    async def transaction(*, write: bool = True) -> AsyncIterator[UnitOfWork]:
        waiting["n"] += 1
        if waiting["n"] >= LIMIT:
            entered.set()
        await release.wait()
        async with original(write=write) as uow:
            yield uow

    def arm() -> Held:
        monkeypatch.setattr(db, "transaction", transaction)
        return entered, release

    yield arm
    release.set()


async def _fill(api: Api, headers: dict[str, str], hold: Callable[[], Held]) -> tuple[list[asyncio.Task[Any]], Held]:
    """LIMIT requests in flight, each waiting for its transaction."""
    entered, release = hold()
    busy = [asyncio.create_task(api.client.get("/api/v1/jobs", headers=headers)) for _ in range(LIMIT)]
    await asyncio.wait_for(entered.wait(), timeout=10)
    return busy, (entered, release)


async def test_a_full_process_refuses_at_once_with_retry_after_then_admits_again(
    live_api: Api, hold: Callable[[], Held]
) -> None:
    headers = await live_api.login("desk.valence")
    busy, (_, release) = await _fill(live_api, headers, hold)

    refused = await asyncio.wait_for(live_api.client.get("/api/v1/jobs", headers=headers), timeout=2)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"].startswith("application/problem+json")
    body = refused.json()
    assert body["status"] == 503 and body["type"] == "/problems/overloaded"
    assert "try again" in body["detail"] and body["instance"] == "/api/v1/jobs"
    assert body["request_id"] == refused.headers["x-request-id"]

    # A full process still answers its health checks.
    assert (await live_api.client.get("/health/live")).status_code == 200

    release.set()
    assert [r.status_code for r in await asyncio.gather(*busy)] == [200] * LIMIT
    assert (await live_api.client.get("/api/v1/jobs", headers=headers)).status_code == 200


async def test_a_refused_intake_writes_nothing_and_a_page_is_told_to_reload(
    live_api: Api, hold: Callable[[], Held]
) -> None:
    headers = await live_api.login("desk.valence")
    busy, (_, release) = await _fill(live_api, headers, hold)

    intake = {
        "customer": {"name": "Ada Lovelace", "phone": "06 12 34 56 78"},
        "device": {"brand": "Apple", "model": "iPhone 13", "imei": "490154203237518"},
        "fault": {"category": "screen", "description": "cracked"},
        "tier": "standard",
    }
    refused = await live_api.client.post("/api/v1/jobs", json=intake, headers=headers)
    assert refused.status_code == 503
    page = await live_api.client.get("/app/board", headers={"Accept": "text/html"})
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
    assert 'http-equiv="refresh"' in page.text

    release.set()
    await asyncio.gather(*busy)
    listed = await live_api.client.get("/api/v1/jobs", headers=headers, params={"q": "Lovelace"})
    assert listed.status_code == 200 and listed.json()["items"] == []


def test_only_a_sustained_late_event_loop_sheds() -> None:
    gate = AdmissionGate(limit=10, max_lag_seconds=1.0)
    gate.sample(3.0)  # one long pause (a blocking call, a full collection): not overload
    assert gate.admit()
    gate.sample(1.5)  # late again: sustained, everything is refused
    assert not gate.admit() and gate.shed == 1
    gate.sample(0.01)  # caught up
    assert gate.admit() and gate.in_flight == 2


async def test_a_starved_event_loop_is_measured_and_sheds() -> None:
    gate = AdmissionGate(limit=10, max_lag_seconds=0.05)
    watching = asyncio.create_task(gate.watch_loop())
    try:
        await asyncio.sleep(0)
        for _ in range(3):  # the loop is kept from running for 0.2 s at a time, three times in a row
            time.sleep(0.2)  # noqa: ASYNC251 (starving the loop is the point)
            await asyncio.sleep(0.01)
        assert gate.overloaded and not gate.admit()
        await asyncio.sleep(0.35)  # left alone, it catches up
        assert not gate.overloaded and gate.admit()
    finally:
        watching.cancel()
