"""The shared stores' fallback: Redis away, the process's own store answers; Redis back, it is used again.
Fakes stand in for Redis (its failure is what is tested here; tests/integration covers the real one)."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from structlog.testing import capture_logs

from integrations.resilience import BreakerPhase, BreakerState, InMemoryBreakerStore, InMemoryRateLimiter
from service.shared_state import RETRY_REDIS_AFTER_SECONDS, FallbackBreakerStore, FallbackRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class FlakyLimiter:
    """A shared limiter that fails while `down`, else lets everything through (and counts the calls)."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    async def acquire(self, key: str, per_minute: int, burst: int | None = None) -> float:
        self.calls += 1
        if self.down:
            raise RedisConnectionError("connection refused")
        return 0.0


async def test_redis_down_the_process_limits_alone_then_redis_is_asked_again() -> None:
    clock, shared = Clock(), FlakyLimiter()
    limiter = FallbackRateLimiter(shared, InMemoryRateLimiter(clock=clock), clock=clock)
    shared.down = True

    with capture_logs() as logs:
        answers = [await limiter.acquire("sign_in_user:ana", 60, burst=2) for _ in range(3)]

    assert answers[:2] == [0.0, 0.0] and answers[2] == pytest.approx(1.0)  # the local bucket limits
    assert shared.calls == 1  # a dead Redis is not asked on every request
    assert [entry["event"] for entry in logs] == ["shared_state_unavailable"]  # once per outage

    shared.down = False
    clock.now += RETRY_REDIS_AFTER_SECONDS
    with capture_logs() as logs:
        assert await limiter.acquire("sign_in_user:ana", 60, burst=2) == 0.0
    assert shared.calls == 2
    assert [entry["event"] for entry in logs] == ["shared_state_back"]


class DownStore:
    async def load(self, key: str) -> BreakerState | None:
        raise OSError("no route to host")

    async def compare_and_set(self, key: str, expected: BreakerState | None, new: BreakerState) -> bool:
        raise OSError("no route to host")


async def test_redis_down_breakers_are_kept_in_the_process() -> None:
    store = FallbackBreakerStore(DownStore(), InMemoryBreakerStore(), clock=Clock())
    opened = BreakerState(BreakerPhase.OPEN, 5, opened_at=10.0)

    assert await store.compare_and_set("supplier:1", None, opened)
    assert await store.load("supplier:1") == opened
    assert not await store.compare_and_set("supplier:1", None, opened)  # compare-and-set still compares
