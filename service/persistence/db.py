"""The async engine: one per process, built from settings, with each database's needs set once."""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from service.settings import Settings

# Errors that mean the database connection is gone (server restarted, backend killed), from SQLAlchemy,
# asyncpg (which the hot paths call directly) or the socket. InternalClientError: asyncpg's protocol is
# stuck in a state it cannot leave, as seen on a killed connection.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,  # the server is starting up (after a restart)
)

# Execution option read by the `begin` hook: writers on SQLite take the write lock up front, so two
# transactions never both read and then fail to upgrade (SQLITE_BUSY that busy_timeout cannot wait out).
SQLITE_BEGIN = "atelier_sqlite_begin"


def create_engine(settings: Settings, *, driver_transactions: bool = True) -> AsyncEngine:
    """The engine for units of work. On PostgreSQL the unit of work runs transactions on the asyncpg
    connection itself (`service.uow`), so SQLAlchemy is kept in autocommit and skips its reset on
    return; pass `driver_transactions=False` for SQLAlchemy-managed transactions (migrations)."""
    if settings.is_sqlite:
        return _sqlite_engine(settings.database_url)
    driver_options: dict[str, Any] = (
        {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None} if driver_transactions else {}
    )
    return create_async_engine(
        settings.database_url,
        **driver_options,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # No pre-ping (a round trip per checkout): a dead connection fails its request cleanly (503 +
        # Retry-After) and is invalidated (`service.uow`), so the pool heals as it is used.
        pool_recycle=1800,
    )


def _sqlite_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit transactions defer and then deadlock).
        dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        # SQLite's own lower() folds ASCII only: searching "LÉA" must find "Léa" (as on PostgreSQL).
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _unicode_lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value
