"""Breakers and rate limits shared through a real Redis: two clients stand for two processes (two API
servers, or a server and a worker), which must count together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from integrations.resilience import Breaker, BreakerPhase, BreakerState, CircuitBreaker, InMemoryRateLimiter
from service.app import create_app
from service.settings import Settings
from service.shared_state import FallbackRateLimiter, RedisBreakerStore, RedisRateLimiter, shared_redis
from tests.api.helpers import assert_problem
from tests.conftest import PASSWORD, FakeClock
from tests.redis_support import flushed_redis, redis_url

DATABASE = 12  # this module's own Redis database


@pytest.fixture
async def processes() -> AsyncIterator[tuple[Redis, Redis]]:
    """Two clients of one flushed Redis database: what two processes hold."""
    async with flushed_redis(DATABASE):
        first, second = shared_redis(redis_url(DATABASE)), shared_redis(redis_url(DATABASE))
        try:
            yield first, second
        finally:
            await first.aclose()
            await second.aclose()


async def test_two_processes_take_from_one_bucket(processes: tuple[Redis, Redis]) -> None:
    one, two = (RedisRateLimiter(redis) for redis in processes)
    taken = [await one.acquire("pickup_ip:10.0.0.1", 60, 3), await two.acquire("pickup_ip:10.0.0.1", 60, 3)]
    taken.append(await one.acquire("pickup_ip:10.0.0.1", 60, 3))
    assert taken == [0.0, 0.0, 0.0]

    wait = await two.acquire("pickup_ip:10.0.0.1", 60, 3)  # the fourth, whoever asks: refused

    assert 0.9 < wait <= 1.0  # one token a second at 60 a minute
    assert await two.acquire("pickup_ip:10.0.0.2", 60, 3) == 0.0  # another key has its own bucket


async def test_many_requests_at_once_never_take_more_than_the_bucket(processes: tuple[Redis, Redis]) -> None:
    limiters = [RedisRateLimiter(redis) for redis in processes]
    waits = await asyncio.gather(*(limiters[i % 2].acquire("track_ip:x", 600, 10) for i in range(40)))
    assert sum(1 for wait in waits if wait == 0.0) == 10


async def test_a_breaker_opened_through_one_process_is_open_for_the_other(processes: tuple[Redis, Redis]) -> None:
    rules = CircuitBreaker(failure_threshold=2, cool_down=30.0)
    here, there = (Breaker(rules, RedisBreakerStore(redis), "supplier:7") for redis in processes)
    await here.record_failure()
    await there.record_failure()  # the second consecutive failure, counted with the first

    refused = await here.admit()

    assert not refused.allowed and refused.retry_after is not None and refused.retry_after > 25
    assert (await there.state()).phase is BreakerPhase.OPEN


async def test_of_two_racing_writers_one_wins(processes: tuple[Redis, Redis]) -> None:
    one, two = (RedisBreakerStore(redis) for redis in processes)
    opened = BreakerState(BreakerPhase.OPEN, 5, opened_at=1.5)
    trial = BreakerState(BreakerPhase.HALF_OPEN, 5, opened_at=1.5, trial_started_at=40.25)
    assert await one.compare_and_set("supplier:9", None, opened)

    wins = await asyncio.gather(*(store.compare_and_set("supplier:9", opened, trial) for store in (one, two)))

    assert sorted(wins) == [False, True]  # one trial call, not one per process
    assert await two.load("supplier:9") == trial


async def test_without_redis_the_limit_holds_in_the_process() -> None:
    nowhere = shared_redis("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        limiter = FallbackRateLimiter(RedisRateLimiter(nowhere), InMemoryRateLimiter())
        waits = [await limiter.acquire("sign_in_ip:x", 60, 2) for _ in range(3)]
    finally:
        await nowhere.aclose()
    assert waits[:2] == [0.0, 0.0] and waits[2] > 0


@pytest.fixture
async def two_servers(
    settings: Settings, clock: FakeClock, clean_db: None
) -> AsyncIterator[Callable[[int], AsyncTestClient[Any]]]:
    """Two app instances (two server processes) on one database and one Redis."""
    async with flushed_redis(DATABASE):
        shared = settings.model_copy(update={"redis_url": redis_url(DATABASE), "sign_in_rate_per_minute_user": 3})
        clients = [AsyncTestClient(app=create_app(shared, clock=clock)) for _ in range(2)]
        for client in clients:
            await client.__aenter__()
        try:
            yield lambda index: clients[index]
        finally:
            for client in clients:
                await client.__aexit__(None, None, None)


async def test_sign_in_attempts_count_across_server_processes(
    two_servers: Callable[[int], AsyncTestClient[Any]],
) -> None:
    wrong = {"username": "desk.valence", "password": "guess"}
    for server in (0, 1, 0):  # three wrong guesses, spread over both servers
        assert (await two_servers(server).post("/api/v1/auth/token", json=wrong)).status_code == 401

    refused = await two_servers(1).post("/api/v1/auth/token", json={**wrong, "password": PASSWORD})

    assert_problem(refused, 429)
    assert int(refused.headers["retry-after"]) >= 1
    other = await two_servers(1).post("/api/v1/auth/token", json={"username": "tech.valence", "password": PASSWORD})
    assert other.status_code == 200  # another username is not slowed by this one's guesses
