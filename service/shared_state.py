"""State every process must share, kept in Redis: circuit breakers and token buckets.

Several API processes and workers must count one supplier's failures and one client's requests together:
with a store per process, N processes allow N times a limit, and each rediscovers a dead supplier on its
own. The rules stay the pure ones of `integrations.resilience`; Redis only keeps the state, changed by
small Lua scripts so that a read-decide-write is atomic, on Redis's clock (one clock for every process).

Redis away must not take requests down with it: each store falls back to its in-process twin until Redis
answers again (limits then hold per process, as they did before — degraded, never refused wholesale).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TypeVar

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from integrations.resilience import (
    BreakerPhase,
    BreakerState,
    BreakerStore,
    Clock,
    InMemoryBreakerStore,
    InMemoryRateLimiter,
    RateLimiter,
    TokenBucket,
)

log = structlog.get_logger(__name__)

BREAKER_PREFIX = "atelier:breaker:"
RATE_PREFIX = "atelier:rate:"
BREAKER_TTL_SECONDS = 7 * 24 * 3600  # a breaker untouched for a week is closed again (its key expires)
RETRY_REDIS_AFTER_SECONDS = 5.0  # after a failure, the in-process twin serves alone this long
REDIS_TIMEOUT_SECONDS = 0.5  # a hung Redis costs a request at most this, then the fallback answers

# KEYS[1] the breaker; ARGV[1] the state expected ("" = none stored), ARGV[2] the new state, ARGV[3] ttl.
_COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
  return 1
end
return 0
"""

# `TokenBucket.take` in Lua. KEYS[1] the bucket; ARGV[1] per minute, ARGV[2] burst. Returns the wait in
# seconds as a string (Lua numbers would be truncated to integers on the way back).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1]) / 60
local burst = tonumber(ARGV[2])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = burst
if held[1] then
  tokens = math.min(burst, tonumber(held[1]) + math.max(0, now - tonumber(held[2])) * rate)
end
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.6f', now))
redis.call('EXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1)
return string.format('%.6f', wait)
"""


def shared_redis(url: str) -> Redis:
    """A client for the shared state: short timeouts, so that a hung Redis falls back quickly. No
    connection is made here (the first command connects), so building it does no I/O."""
    client: Redis = Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
    )
    return client


def _dump(state: BreakerState) -> str:
    return json.dumps({**asdict(state), "phase": state.phase.value}, sort_keys=True)


def _load(raw: bytes | str) -> BreakerState:
    data = json.loads(raw)
    return BreakerState(
        phase=BreakerPhase(data["phase"]),
        failures=int(data["failures"]),
        opened_at=data["opened_at"],
        trial_started_at=data["trial_started_at"],
    )


class RedisBreakerStore:
    """Breaker states as JSON strings; compare-and-set compares the stored string in one script."""

    def __init__(self, redis: Redis, *, prefix: str = BREAKER_PREFIX, ttl_seconds: int = BREAKER_TTL_SECONDS) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._cas = redis.register_script(_COMPARE_AND_SET)

    async def load(self, key: str) -> BreakerState | None:
        raw = await self._redis.get(self._prefix + key)
        return _load(raw) if raw is not None else None

    async def compare_and_set(self, key: str, expected: BreakerState | None, new: BreakerState) -> bool:
        was = _dump(expected) if expected is not None else ""
        done = await self._cas(keys=[self._prefix + key], args=[was, _dump(new), self._ttl])
        return bool(done)


class RedisRateLimiter:
    """Token buckets in Redis hashes, refilled on Redis's clock."""

    def __init__(self, redis: Redis, *, prefix: str = RATE_PREFIX, burst: int | None = None) -> None:
        self._redis = redis
        self._prefix = prefix
        self._burst = burst
        self._take = redis.register_script(_TAKE)

    async def acquire(self, key: str, per_minute: int, burst: int | None = None) -> float:
        rules = TokenBucket.for_limit(per_minute, burst if burst is not None else self._burst)
        wait = await self._take(keys=[self._prefix + key], args=[rules.per_minute, rules.burst])
        return float(wait)


T = TypeVar("T")


class _Fallback:
    """Redis first; on a Redis error, the in-process twin, and only the twin for a few seconds (a dead
    Redis is not asked again on every request). Logged once per outage."""

    def __init__(self, name: str, clock: Clock) -> None:
        self._name = name
        self._clock = clock
        self._down_until: float | None = None

    async def run(self, shared: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]) -> T:
        if self._down_until is not None and self._clock() < self._down_until:
            return await local()
        try:
            answer = await shared()
        except (RedisError, OSError, TimeoutError) as exc:
            if self._down_until is None:
                log.warning("shared_state_unavailable", store=self._name, error=type(exc).__name__)
            self._down_until = self._clock() + RETRY_REDIS_AFTER_SECONDS
            return await local()
        if self._down_until is not None:
            log.warning("shared_state_back", store=self._name)  # paired with the outage's warning
            self._down_until = None
        return answer


class FallbackBreakerStore:
    def __init__(self, shared: BreakerStore, local: BreakerStore, *, clock: Clock = time.monotonic) -> None:
        self._shared, self._local = shared, local
        self._fallback = _Fallback("breakers", clock)

    async def load(self, key: str) -> BreakerState | None:
        return await self._fallback.run(lambda: self._shared.load(key), lambda: self._local.load(key))

    async def compare_and_set(self, key: str, expected: BreakerState | None, new: BreakerState) -> bool:
        return await self._fallback.run(
            lambda: self._shared.compare_and_set(key, expected, new),
            lambda: self._local.compare_and_set(key, expected, new),
        )


class FallbackRateLimiter:
    def __init__(self, shared: RateLimiter, local: RateLimiter, *, clock: Clock = time.monotonic) -> None:
        self._shared, self._local = shared, local
        self._fallback = _Fallback("rate_limits", clock)

    async def acquire(self, key: str, per_minute: int, burst: int | None = None) -> float:
        return await self._fallback.run(
            lambda: self._shared.acquire(key, per_minute, burst), lambda: self._local.acquire(key, per_minute, burst)
        )


def shared_stores(redis: Redis | None) -> tuple[BreakerStore, RateLimiter]:
    """The breaker store and rate limiter of a process: in Redis (with an in-process fallback) when one
    is configured, else in the process alone (one process: nothing to share)."""
    if redis is None:
        return InMemoryBreakerStore(), InMemoryRateLimiter()
    breakers = FallbackBreakerStore(RedisBreakerStore(redis), InMemoryBreakerStore())
    return breakers, FallbackRateLimiter(RedisRateLimiter(redis), InMemoryRateLimiter())
