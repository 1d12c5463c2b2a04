"""The unit of work: one database transaction and the repositories that work inside it.

Use cases take an open `UnitOfWork` and never commit: whoever opened it (a request handler, a worker
task, the CLI) decides the transaction's extent, so an Idempotency-Key record or an outbox row can be
written atomically with the change it belongs to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.persistence.db import CONNECTION_ERRORS, SQLITE_BEGIN
from service.persistence.escalations import AlertRepository, EscalationRepository
from service.persistence.idempotency import IdempotencyRepository
from service.persistence.jobs import JobRepository
from service.persistence.outbox import OutboxRepository
from service.persistence.parts import CatalogueRepository, LineRepository, OrderRepository
from service.persistence.staff import BranchRepository, CustomerRepository, UserRepository
from service.persistence.statements import Runner
from service.persistence.suppliers import SupplierRepository


class UnitOfWork:
    def __init__(self, conn: AsyncConnection, driver: Any | None = None) -> None:
        runner = Runner(conn, driver)
        self.connection = conn
        self.jobs = JobRepository(runner)
        self.branches = BranchRepository(runner)
        self.users = UserRepository(conn)
        self.customers = CustomerRepository(runner)
        self.idempotency = IdempotencyRepository(conn)
        self.catalogue = CatalogueRepository(runner)
        self.lines = LineRepository(runner)
        self.orders = OrderRepository(runner, self.lines)
        self.suppliers = SupplierRepository(runner)
        self.outbox = OutboxRepository(runner)
        self.escalations = EscalationRepository(runner)
        self.alerts = AlertRepository(runner)


class Database:
    """Opens units of work on one engine; commits when the block ends cleanly, rolls back otherwise."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[UnitOfWork]:
        async with self.engine.connect() as conn:
            if self.engine.dialect.name == "postgresql":
                async with _postgres_unit(conn, write) as uow:
                    yield uow
                return
            if write and self.engine.dialect.name == "sqlite":
                conn = await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            async with conn.begin():
                yield UnitOfWork(conn)


@asynccontextmanager
async def _postgres_unit(conn: AsyncConnection, write: bool) -> AsyncIterator[UnitOfWork]:
    """On PostgreSQL the unit of work owns the transaction on the asyncpg connection itself, so the hot
    statements (`persistence.statements`) and SQLAlchemy's run in the same one. The engine keeps
    SQLAlchemy in autocommit (`persistence.db`) so it never opens a transaction of its own; a read is
    not wrapped at all (one or two statements: no BEGIN/COMMIT round trips).

    SQLAlchemy cannot see errors raised by the driver itself, so a connection found dead here (the
    server restarted, the backend was killed) is invalidated by hand: it is never pooled again, and
    the request fails cleanly (503) instead of every later request that would draw it."""
    # Just checked out, so never invalidated: reading the driver connection needs no greenlet hop.
    driver = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
    try:
        if not write:
            yield UnitOfWork(conn, driver)
            return
        transaction = driver.transaction()
        await transaction.start()
        try:
            yield UnitOfWork(conn, driver)
        except BaseException:
            await _rollback(transaction)
            raise
        await transaction.commit()
    except BaseException as exc:
        if _connection_lost(exc):
            with suppress(Exception):
                await conn.invalidate()
        raise


async def _rollback(transaction: Any) -> None:
    """Roll back without hiding the error that caused it (a dead connection cannot roll back)."""
    with suppress(Exception):
        await transaction.rollback()


def _connection_lost(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, CONNECTION_ERRORS)
