"""Per module: an empty database, the app in the slot, and the seeded world."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from litestar import Litestar
from schemathesis.python import asgi

from service.app import create_app
from service.settings import Settings
from tests.conftest import empty_database
from tests.contract.harness import SLOT
from tests.contract.world import World, build_world
from tests.sandbox_fixture import SandboxServer


@pytest.fixture(scope="module")
def contract_app(settings: Settings) -> Iterator[Litestar]:
    asyncio.run(empty_database(settings))
    # The rate limits count real time while the fuzzer sends hundreds of requests a minute: raised, so that the
    # handlers behind them are what is exercised (their 429 is documented, and covered by the API tests).
    limits = {name: 1_000_000 for name in Settings.model_fields if "_rate_per_minute_" in name}
    SLOT.app = create_app(settings.model_copy(update=limits), clock=SLOT.clock)
    try:
        yield SLOT.app
    finally:
        # Schemathesis runs the app's lifespan on its own event loop thread: close the app's resources.
        asgi.shutdown_lifespans()
        SLOT.app = SLOT.world = None


@pytest.fixture(scope="module")
def world(contract_app: Litestar, settings: Settings, sandbox: SandboxServer) -> Iterator[World]:
    with asgi.get_client(SLOT) as client:  # type: ignore[arg-type]
        SLOT.world = build_world(client, sandbox.url, settings, contract_app.state.cipher)
        yield SLOT.world
