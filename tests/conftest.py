"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL with ATELIER_TEST_DATABASE_URL),
staff seeded once per session, and a fresh app with a controllable clock per test.

With CI=true a missing service fails the run, and on PostgreSQL a skipped test counts as a failure:
a green CI must mean the tests ran against the real thing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from litestar.testing import AsyncTestClient
from sqlalchemy import delete, null, text, update

from domain.stages import Role
from service.app import create_app
from service.persistence import migrate
from service.persistence.db import create_engine
from service.persistence.tables import (
    alert_t,
    branch_t,
    customer_t,
    escalation_t,
    event_t,
    idempotency_t,
    job_t,
    line_t,
    notification_t,
    order_t,
    outbox_t,
    part_t,
    revision_t,
    supplier_sku_t,
    supplier_stock_t,
    supplier_t,
    webhook_t,
)
from service.secrets import required_secrets
from service.services import Services, build_services
from service.settings import Settings
from service.uow import Database
from service.usecases import staff

pytest_plugins = ["tests.sandbox_fixture"]

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get("ATELIER_TEST_DATABASE_URL")
PASSWORD = "correct-horse-battery"
JWT_SECRET = "test-secret-" + "x" * 40
PASSCODE_KEY = Fernet.generate_key().decode()

HOURS_MON_SAT = {d: [["09:00", "19:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat")}
HOURS_MON_FRI = {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
STAFF = (
    ("desk.valence", Role.FRONT_DESK, "valence"),
    ("tech.valence", Role.TECHNICIAN, "valence"),
    ("tech2.valence", Role.TECHNICIAN, "valence"),
    ("manager.valence", Role.MANAGER, "valence"),
    ("desk.guilherand", Role.FRONT_DESK, "guilherand"),
    ("tech.guilherand", Role.TECHNICIAN, "guilherand"),
    ("manager", Role.MANAGER, None),
)


# Children before parents (foreign keys).
CLEANED = (
    notification_t,
    outbox_t,
    escalation_t,
    alert_t,
    webhook_t,
    revision_t,
    line_t,
    order_t,
    supplier_stock_t,
    supplier_sku_t,
    supplier_t,
    part_t,
    event_t,
    idempotency_t,
    job_t,
    customer_t,
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CI and PG_URL and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped on PostgreSQL in CI, which is not allowed: {report.longrepr}"


def _database_url(tmp: Path) -> str:
    return PG_URL or f"sqlite+aiosqlite:///{tmp / 'test.db'}"


async def _reset_postgres(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    except OSError as exc:
        pytest.fail(f"PostgreSQL at {settings.database_url} is not reachable: {exc}")
    finally:
        await engine.dispose()


async def _seed_staff(settings: Settings) -> None:
    engine = create_engine(settings)
    now = datetime.now(UTC)
    try:
        async with Database(engine).transaction() as uow:
            await staff.create_branch(uow, "valence", "Atelier Valence", "Europe/Paris", HOURS_MON_SAT, now=now)
            await staff.create_branch(uow, "guilherand", "Atelier Guilherand", "Europe/Paris", HOURS_MON_FRI, now=now)
            for username, role, branch in STAFF:
                await staff.create_user(uow, username, PASSWORD, role, branch, now=now)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    configured = Settings(
        database_url=_database_url(tmp_path_factory.mktemp("db")),
        jwt_secret=JWT_SECRET,
        passcode_keys=PASSCODE_KEY,
        log_level="WARNING",
        log_format="console",
        allow_private_supplier_urls=True,  # the supplier sandbox listens on 127.0.0.1
        embedded_worker=False,  # tests run tasks themselves, on a clock they control
    )
    if not configured.is_sqlite:
        asyncio.run(_reset_postgres(configured))
    migrate.upgrade(configured)
    asyncio.run(_seed_staff(configured))
    return configured


@pytest.fixture(scope="session")
def is_postgres(settings: Settings) -> bool:
    return not settings.is_sqlite


class FakeClock:
    """The app's `now`, moved by the test; starts on Monday 23 Nov 2026, 10:00 in Paris."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def empty_database(settings: Settings) -> None:
    """No jobs, parts or suppliers; the staff and branches stay (they are made once a session)."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            for table in CLEANED:
                await conn.execute(delete(table))
            # Branches persist for the session: their own settings go back to the defaults.
            await conn.execute(update(branch_t).values(express_capacity=None, storage_slots=null()))
    finally:
        await engine.dispose()


@pytest.fixture
async def clean_db(settings: Settings) -> AsyncIterator[None]:
    """Each test starts with no jobs (staff and branches persist for the session)."""
    await empty_database(settings)
    yield


@dataclass
class Api:
    """A test client plus bearer tokens per user (signed in once per session)."""

    client: AsyncTestClient[Any]
    tokens: dict[str, str]

    async def login(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        if username not in self.tokens:
            response = await self.client.post("/api/v1/auth/token", json={"username": username, "password": password})
            assert response.status_code == 200, response.text
            self.tokens[username] = response.json()["access_token"]
        return {"Authorization": f"Bearer {self.tokens[username]}"}


_TOKENS: dict[str, str] = {}


@pytest.fixture
async def api(settings: Settings, clock: FakeClock, clean_db: None) -> AsyncIterator[Api]:
    app = create_app(settings, clock=clock)
    async with AsyncTestClient(app=app) as client:
        yield Api(client, _TOKENS)


@pytest.fixture
async def services(settings: Settings, clock: FakeClock) -> AsyncIterator[Services]:
    """What a worker holds (database, supplier clients, channels), on the test's clock."""
    _, cipher = required_secrets(settings)
    built = build_services(settings, cipher, clock=clock)
    try:
        yield built
    finally:
        await built.aclose()
