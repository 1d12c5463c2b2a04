"""The policies that keep a slow or failing supplier from taking Atelier down with it, free of HTTP.

- `backoff_delay` and `parse_retry_after`: how long to wait before trying again.
- `CircuitBreaker`: stop calling a supplier that keeps failing, try again after a cool-down. The state
  transitions are a pure class; a `BreakerStore` only keeps the state, with compare-and-set so that a
  shared (Redis) store can be used by several processes without two of them both taking the one trial.
- `RateLimiter`: a token bucket per supplier so we stay under the supplier's requests-per-minute.

Breaker times are wall-clock seconds (`time.time`): a state shared between processes cannot use a
process's monotonic clock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Protocol

Uniform = Callable[[float, float], float]
Clock = Callable[[], float]

# --- backoff and Retry-After ----------------------------------------------------------------------


def backoff_delay(attempt: int, *, base: float, cap: float, uniform: Uniform = random.uniform) -> float:
    """Full jitter: a uniform draw in [0, min(cap, base * 2**attempt)] (attempt 0 is the first retry).

    Spreading retries over the whole window keeps many clients that failed together from retrying
    together (AWS, "Exponential Backoff And Jitter").
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    ceiling = min(cap, base * 2.0 ** min(attempt, 62))
    return uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).

    None when absent or unreadable (the caller falls back to its backoff); a date in the past is 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text[:12]))  # 12 digits is over 30,000 years: no giant ints from a header
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC per RFC 5322; HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


# --- circuit breaker ------------------------------------------------------------------------------


class BreakerPhase(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerState:
    """What a store keeps for one supplier; plain values so that it serialises as it is."""

    phase: BreakerPhase = BreakerPhase.CLOSED
    failures: int = 0  # consecutive failed attempts while closed
    opened_at: float | None = None  # when it last opened
    trial_started_at: float | None = None  # half-open: when the one trial call was let through


CLOSED = BreakerState()


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    state: BreakerState
    retry_after: float | None = None  # when refused: seconds until a trial may be let through


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """The breaker's rules, pure: state in, state out.

    closed → open after `failure_threshold` consecutive failures; open → half-open once `cool_down`
    seconds have passed, letting one trial call through; the trial's success closes it, its failure
    opens it again. A trial that never reports (its process died) is given up after `trial_timeout`,
    and another trial is let through.
    """

    failure_threshold: int = 5
    cool_down: float = 30.0
    trial_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.cool_down < 0 or self.trial_timeout <= 0:
            raise ValueError("failure_threshold >= 1, cool_down >= 0 and trial_timeout > 0 are required")

    def admit(self, state: BreakerState, now: float) -> Admission:
        if state.phase is BreakerPhase.CLOSED:
            return Admission(True, state)
        if state.phase is BreakerPhase.OPEN:
            opened_at = state.opened_at if state.opened_at is not None else now
            waited = now - opened_at
            if waited < self.cool_down:
                return Admission(False, state, retry_after=self.cool_down - waited)
            return Admission(True, replace(state, phase=BreakerPhase.HALF_OPEN, trial_started_at=now))
        started = state.trial_started_at if state.trial_started_at is not None else now
        if now - started >= self.trial_timeout:
            return Admission(True, replace(state, trial_started_at=now))
        return Admission(False, state, retry_after=max(0.0, min(self.cool_down, started + self.trial_timeout - now)))

    def on_success(self, state: BreakerState) -> BreakerState:
        return CLOSED

    def on_failure(self, state: BreakerState, now: float) -> BreakerState:
        if state.phase is BreakerPhase.CLOSED:
            failures = state.failures + 1
            if failures < self.failure_threshold:
                return replace(state, failures=failures)
            return BreakerState(BreakerPhase.OPEN, failures=failures, opened_at=now)
        if state.phase is BreakerPhase.HALF_OPEN:
            return BreakerState(BreakerPhase.OPEN, failures=state.failures, opened_at=now)
        return state  # already open: a late failure from before it opened changes nothing


class BreakerStore(Protocol):
    """Keeps breaker states by key; knows nothing of the rules.

    `compare_and_set` must be atomic (a Redis implementation: WATCH/MULTI or a small Lua script
    comparing the stored value), which is all it takes for processes to share one breaker safely.
    """

    async def load(self, key: str) -> BreakerState | None: ...

    async def compare_and_set(self, key: str, expected: BreakerState | None, new: BreakerState) -> bool: ...


class InMemoryBreakerStore:
    """One process's breakers (a dict; single-threaded asyncio makes compare-and-set trivial)."""

    def __init__(self) -> None:
        self._states: dict[str, BreakerState] = {}

    async def load(self, key: str) -> BreakerState | None:
        return self._states.get(key)

    async def compare_and_set(self, key: str, expected: BreakerState | None, new: BreakerState) -> bool:
        if self._states.get(key) != expected:
            return False
        self._states[key] = new
        return True


class Breaker:
    """A `CircuitBreaker`'s rules applied to one key of a store (read, decide, compare-and-set)."""

    _MAX_RACES = 8

    def __init__(self, rules: CircuitBreaker, store: BreakerStore, key: str, *, clock: Clock = time.time) -> None:
        self.rules = rules
        self.store = store
        self.key = key
        self._clock = clock

    async def admit(self) -> Admission:
        for _ in range(self._MAX_RACES):
            current = await self.store.load(self.key)
            admission = self.rules.admit(current or CLOSED, self._clock())
            if admission.state == (current or CLOSED):
                return admission
            if await self.store.compare_and_set(self.key, current, admission.state):
                return admission
        # Lost every race: another process is moving the breaker right now; let it decide.
        return Admission(False, current or CLOSED, retry_after=self.rules.cool_down)

    async def record_success(self) -> None:
        await self._update(lambda state: self.rules.on_success(state))

    async def record_failure(self) -> None:
        await self._update(lambda state: self.rules.on_failure(state, self._clock()))

    async def state(self) -> BreakerState:
        return await self.store.load(self.key) or CLOSED

    async def _update(self, transition: Callable[[BreakerState], BreakerState]) -> None:
        for _ in range(self._MAX_RACES):
            current = await self.store.load(self.key)
            new = transition(current or CLOSED)
            if new == (current or CLOSED) or await self.store.compare_and_set(self.key, current, new):
                return


# --- rate limiter ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """Refills `per_minute / 60` tokens a second up to `burst`; a request takes one token.

    A small burst (default a tenth of a minute's allowance) keeps any 60-second window at most
    `per_minute + burst` requests, where a full minute's bucket would allow twice the limit.
    """

    per_minute: int
    burst: int

    @classmethod
    def for_limit(cls, per_minute: int, burst: int | None = None) -> TokenBucket:
        if per_minute < 1:
            raise ValueError("per_minute must be >= 1")
        return cls(per_minute, burst if burst is not None else max(1, per_minute // 10))

    def take(self, bucket: Bucket | None, now: float) -> tuple[float, Bucket]:
        """(0, new bucket) when a token was taken, else (seconds until one is due, unchanged-but-refilled)."""
        rate = self.per_minute / 60.0
        if bucket is None:
            tokens = float(self.burst)
        else:
            tokens = min(float(self.burst), bucket.tokens + max(0.0, now - bucket.updated_at) * rate)
        if tokens >= 1.0:
            return 0.0, Bucket(tokens - 1.0, now)
        return (1.0 - tokens) / rate, Bucket(tokens, now)


class RateLimiter(Protocol):
    """Takes a token for a request to `key`; `service.shared_state` runs the same `TokenBucket` in Redis
    so that every process counts together."""

    async def acquire(self, key: str, per_minute: int, burst: int | None = None) -> float:
        """0 when the request may go now (a token was taken), else seconds to wait (nothing taken).
        `burst`: the bucket's size (default `TokenBucket.for_limit`'s)."""
        ...


class InMemoryRateLimiter:
    """One process's buckets. Past `max_keys` (a flood of new client addresses), buckets that are full
    again are dropped: forgetting a full bucket changes nothing."""

    def __init__(self, *, burst: int | None = None, clock: Clock = time.monotonic, max_keys: int = 100_000) -> None:
        self._burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[Bucket, float]] = {}  # the bucket, and when it is full again

    async def acquire(self, key: str, per_minute: int, burst: int | None = None) -> float:
        rules = TokenBucket.for_limit(per_minute, burst if burst is not None else self._burst)
        now = self._clock()
        held = self._buckets.get(key)
        wait, bucket = rules.take(held[0] if held else None, now)
        self._buckets[key] = (bucket, now + (rules.burst - bucket.tokens) * 60.0 / rules.per_minute)
        if len(self._buckets) > self._max_keys:
            self._buckets = {k: held for k, held in self._buckets.items() if held[1] > now}
        return wait
