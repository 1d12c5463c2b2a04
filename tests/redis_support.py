"""A flushed Redis database of a test module's own (each module names its database number, so modules
never see each other's queues). Missing Redis: skipped locally, a failure in CI."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from tests.conftest import IN_CI

REDIS_HOST_URL = os.environ.get("ATELIER_TEST_REDIS", "redis://127.0.0.1:6379")


def redis_url(database: int) -> str:
    return f"{REDIS_HOST_URL}/{database}"


def redis_settings(database: int) -> RedisSettings:
    settings = RedisSettings.from_dsn(redis_url(database))
    settings.conn_retries = 0  # a missing Redis is a failure to report, not to wait out
    settings.conn_timeout = 2
    return settings


@asynccontextmanager
async def flushed_redis(database: int) -> AsyncIterator[ArqRedis]:
    url = redis_url(database)
    try:
        pool = await create_pool(redis_settings(database))
        await pool.flushdb()
    except Exception as exc:  # OSError, redis-py's ConnectionError, a timeout: no Redis to test with
        message = f"Redis at {url} is not reachable: {type(exc).__name__}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield pool
    finally:
        await pool.flushdb()
        await pool.aclose()
