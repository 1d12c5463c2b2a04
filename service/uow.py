"""The unit of work: one database transaction and the repositories that work inside it.

Use cases take an open `UnitOfWork` and never commit: whoever opened it (a request handler, a worker
task, the CLI) decides the transaction's extent, so an Idempotency-Key record or an outbox row can be
written atomically with the change it belongs to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.persistence.db import SQLITE_BEGIN
from service.persistence.idempotency import IdempotencyRepository
from service.persistence.jobs import JobRepository
from service.persistence.staff import BranchRepository, CustomerRepository, UserRepository


class UnitOfWork:
    def __init__(self, conn: AsyncConnection) -> None:
        self.connection = conn
        self.jobs = JobRepository(conn)
        self.branches = BranchRepository(conn)
        self.users = UserRepository(conn)
        self.customers = CustomerRepository(conn)
        self.idempotency = IdempotencyRepository(conn)


class Database:
    """Opens units of work on one engine; commits when the block ends cleanly, rolls back otherwise."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[UnitOfWork]:
        dialect = self.engine.dialect.name
        async with self.engine.connect() as conn:
            if write and dialect == "sqlite":
                conn = await conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            elif not write and dialect == "postgresql":
                # A read is one statement or two: no BEGIN/COMMIT round trips around it.
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            async with conn.begin():
                yield UnitOfWork(conn)
