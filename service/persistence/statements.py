"""Hot statements, built once and run either through SQLAlchemy or straight on asyncpg.

The request paths that every shop hits all day (intake, reading a job, moving it) spend more CPU in
SQLAlchemy's per-execution machinery than in the database. On PostgreSQL the unit of work hands
repositories the asyncpg connection, and these statements run on it with their SQL compiled once, by
SQLAlchemy, for that dialect: same SQL, same bind conversions (JSON, UTC datetimes), no per-call
overhead. On SQLite (and for everything not hot) SQLAlchemy runs them as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

_PG = PGDialect_asyncpg()
Processor = Callable[[Any], Any] | None


class Prepared:
    """A Core statement plus its asyncpg form. `keys` fixes the columns an INSERT/UPDATE sets."""

    def __init__(self, statement: Executable, keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.keys = list(keys) if keys is not None else None

    @cached_property
    def asyncpg(self) -> tuple[str, tuple[str, ...], tuple[Processor, ...]]:
        compiled = self.statement.compile(dialect=_PG, column_keys=self.keys)  # type: ignore[attr-defined]
        names = tuple(compiled.positiontup or ())
        processors = tuple(compiled.binds[name].type.bind_processor(_PG) for name in names)
        return str(compiled), names, processors

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        _, names, processors = self.asyncpg
        return [
            proc(params[name]) if proc is not None else params[name]
            for name, proc in zip(names, processors, strict=True)
        ]


class Runner:
    """Runs `Prepared` statements on one connection; `driver` is the asyncpg connection or None."""

    def __init__(self, conn: AsyncConnection, driver: Any | None) -> None:
        self.conn = conn
        self.driver = driver

    async def fetchrow(self, stmt: Prepared, params: Mapping[str, Any]) -> Mapping[str, Any] | None:
        if self.driver is not None:
            row: Mapping[str, Any] | None = await self.driver.fetchrow(stmt.asyncpg[0], *stmt.arguments(params))
            return row
        return (await self.conn.execute(stmt.statement, dict(params))).mappings().first()

    async def fetchval(self, stmt: Prepared, params: Mapping[str, Any]) -> Any:
        if self.driver is not None:
            return await self.driver.fetchval(stmt.asyncpg[0], *stmt.arguments(params))
        return (await self.conn.execute(stmt.statement, dict(params))).scalar_one()

    async def execute(self, stmt: Prepared, params: Mapping[str, Any]) -> int:
        """Runs the statement; returns the number of rows it changed."""
        if self.driver is not None:
            status: str = await self.driver.execute(stmt.asyncpg[0], *stmt.arguments(params))
            return int(status.rsplit(" ", 1)[-1]) if status[-1:].isdigit() else 0
        return int((await self.conn.execute(stmt.statement, dict(params))).rowcount)

    async def execute_many(self, stmt: Prepared, rows: Sequence[Mapping[str, Any]]) -> None:
        if len(rows) == 1:
            await self.execute(stmt, rows[0])
        elif self.driver is not None:
            await self.driver.executemany(stmt.asyncpg[0], [stmt.arguments(row) for row in rows])
        else:
            await self.conn.execute(stmt.statement, [dict(row) for row in rows])
