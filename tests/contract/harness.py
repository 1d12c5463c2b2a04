"""What the contract tests share: the schema the app serves, and the slot Schemathesis calls the app through."""

from __future__ import annotations

from functools import cache
from typing import Any

from cryptography.fernet import Fernet
from litestar import Litestar
from litestar.testing import TestClient
from litestar.types import Receive, Scope, Send

from service.app import create_app
from service.settings import Settings
from tests.conftest import JWT_SECRET, FakeClock
from tests.contract.world import World


class AppSlot:
    """The ASGI app Schemathesis calls. Operations are collected before fixtures run, so schemas are bound to
    this slot, and each module's app (on the session's test database) is put in it before its first request."""

    def __init__(self) -> None:
        self.app: Litestar | None = None
        self.world: World | None = None
        self.clock = FakeClock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "the contract_app fixture fills the slot"
        await self.app(scope, receive, send)


SLOT = AppSlot()


@cache
def served_schema() -> dict[str, Any]:
    """What `/schema/openapi.json` serves: routes and models do not depend on the settings, and the schema
    route needs no lifespan, so a throwaway app answers it at collection time."""
    settings = Settings(
        database_url="sqlite+aiosqlite:///:memory:",
        jwt_secret=JWT_SECRET,
        passcode_keys=Fernet.generate_key().decode(),
        log_level="WARNING",
        log_format="console",
        embedded_worker=False,
    )
    response = TestClient(create_app(settings)).get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    raw: dict[str, Any] = response.json()
    return raw
