"""Fixtures for the API tests that Litestar's test client cannot serve.

`AsyncTestClient` runs the app in a portal thread and blocks the test's event loop while a request
is served, so requests sent with `asyncio.gather` through it run one after the other. `live_api`
runs the app on the test's own event loop through httpx's ASGI transport instead: gathered requests
really are in flight together, and request bodies can be streamed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import pytest
from litestar import Litestar

from service.app import create_app
from service.settings import Settings
from service.uow import Database, UnitOfWork
from tests.conftest import Api, FakeClock


@pytest.fixture
async def live_app(settings: Settings, clock: FakeClock, clean_db: None) -> AsyncIterator[Litestar]:
    """The app, started on the test's event loop."""
    app = create_app(settings, clock=clock)
    started, stopping = asyncio.Event(), asyncio.Event()

    async def serve() -> None:
        # Entered and left in one task: the app's startup opens anyio task groups.
        async with app.lifespan():
            started.set()
            await stopping.wait()

    server = asyncio.create_task(serve())
    await asyncio.wait_for(started.wait(), timeout=10)
    try:
        yield app
    finally:
        stopping.set()
        await server


@pytest.fixture
async def live_api(live_app: Litestar, api: Api) -> AsyncIterator[Api]:
    """Like `api`, but serving gathered requests concurrently (shares `api`'s tokens and database)."""
    transport = httpx.ASGITransport(app=live_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as client:
        yield Api(cast(Any, client), api.tokens)


@pytest.fixture
def rendezvous(live_app: Litestar, monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """`rendezvous(n)`: the next `n` write transactions of the live app wait for each other to be
    ready before any of them begins, so `n` gathered requests truly race for the same job."""
    db: Database = live_app.state.db
    original = db.transaction

    def arm(parties: int) -> None:
        barrier = asyncio.Barrier(parties)
        waiting = {"left": parties}

        @asynccontextmanager
        async def transaction(*, write: bool = True) -> AsyncIterator[UnitOfWork]:
            if write and waiting["left"] > 0:
                waiting["left"] -= 1
                await asyncio.wait_for(barrier.wait(), timeout=10)
            async with original(write=write) as uow:
                yield uow

        monkeypatch.setattr(db, "transaction", transaction)

    return arm
