"""Supplier calls under failure: backoff, which failures are retried, Retry-After, the deadline, the circuit
breaker and the rate limiter (a scripted fake supplier behind httpx.MockTransport, fake time)."""

from __future__ import annotations

import asyncio
import logging
import random
import time as real_time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import structlog
from structlog.testing import capture_logs

from integrations.http import HttpSettings
from integrations.resilience import (
    CLOSED,
    Breaker,
    BreakerPhase,
    BreakerState,
    CircuitBreaker,
    InMemoryBreakerStore,
    InMemoryRateLimiter,
    TokenBucket,
    backoff_delay,
    parse_retry_after,
)
from integrations.suppliers.base import BadSupplierData, SupplierRejected, SupplierUnavailable
from tests.unit.supplier_fakes import Answer, FakeTime, ScriptedSupplier, make_http

# --- backoff ---------------------------------------------------------------------------------------


def test_backoff_ceiling_doubles_per_attempt_up_to_the_cap() -> None:
    top = [backoff_delay(n, base=0.5, cap=6.0, uniform=lambda low, high: high) for n in range(6)]
    assert top == [0.5, 1.0, 2.0, 4.0, 6.0, 6.0]


def test_backoff_draws_over_the_whole_window_from_zero() -> None:
    calls: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        calls.append((low, high))
        return low

    assert backoff_delay(3, base=0.25, cap=10.0, uniform=uniform) == 0.0
    assert calls == [(0.0, 2.0)]


def test_backoff_with_real_randomness_stays_in_bounds_and_spreads() -> None:
    rng = random.Random(7)
    draws = [backoff_delay(4, base=0.1, cap=1.0, uniform=rng.uniform) for _ in range(2000)]
    assert all(0.0 <= d <= 1.0 for d in draws)
    assert min(draws) < 0.1 and max(draws) > 0.9  # full jitter, not "ceiling ± a little"


def test_backoff_of_a_huge_attempt_number_is_capped_not_an_overflow() -> None:
    assert backoff_delay(10_000, base=1.0, cap=3.0, uniform=lambda low, high: high) == 3.0


# --- what is retried ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_retryable_statuses_are_retried_for_an_idempotent_call(status: int) -> None:
    supplier = ScriptedSupplier(Answer(status), Answer(200, {"ok": True}))
    time = FakeTime()
    http = make_http(supplier, time)
    response = await http.request("GET", "/api/v1/stock", operation="stock", idempotent=True)
    assert response.status_code == 200
    assert len(supplier.requests) == 2
    assert len(time.sleeps) == 1


@pytest.mark.parametrize(
    "error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.PoolTimeout, httpx.ReadError]
)
async def test_connection_errors_and_timeouts_are_retried_for_an_idempotent_call(
    error: type[httpx.TransportError],
) -> None:
    supplier = ScriptedSupplier(error, Answer(200, {"ok": True}))
    http = make_http(supplier)
    response = await http.request("GET", "/x", operation="stock", idempotent=True)
    assert response.status_code == 200
    assert len(supplier.requests) == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, SupplierUnavailable),
        (501, SupplierUnavailable),
        (400, SupplierRejected),
        (401, SupplierRejected),
        (404, SupplierRejected),
        (409, SupplierRejected),
        (422, SupplierRejected),
    ],
)
async def test_other_statuses_are_not_retried(status: int, error: type[Exception]) -> None:
    supplier = ScriptedSupplier(Answer(status, {"error": "no"}), Answer(200))
    http = make_http(supplier)
    with pytest.raises(error):
        await http.request("GET", "/x", operation="order_status", idempotent=True)
    assert len(supplier.requests) == 1


async def test_a_rejection_carries_the_status_and_the_suppliers_message() -> None:
    supplier = ScriptedSupplier(Answer(409, {"error": "order ORD-1 has shipped\n"}))
    http = make_http(supplier)
    with pytest.raises(SupplierRejected) as info:
        await http.request("POST", "/api/v1/orders/ORD-1/cancel", operation="cancel_order", idempotent=True)
    assert info.value.status_code == 409
    assert info.value.supplier == "acme"
    assert info.value.reason == "cancel_order: answered 409: order ORD-1 has shipped"


@pytest.mark.parametrize("step", [Answer(503), Answer(429), httpx.ConnectError, httpx.ReadTimeout])
async def test_a_non_idempotent_call_is_never_retried(step: Answer | type[Exception]) -> None:
    supplier = ScriptedSupplier(step, Answer(200))
    time = FakeTime()
    http = make_http(supplier, time)
    with pytest.raises(SupplierUnavailable):
        await http.request("POST", "/x", operation="place_order", idempotent=False)
    assert len(supplier.requests) == 1
    assert time.sleeps == []


async def test_retries_stop_after_max_attempts() -> None:
    supplier = ScriptedSupplier(Answer(503))
    time = FakeTime()
    http = make_http(supplier, time, settings=HttpSettings(max_attempts=4, backoff_base=0.1, backoff_cap=1.0))
    with pytest.raises(SupplierUnavailable) as info:
        await http.request("GET", "/x", operation="stock", idempotent=True)
    assert len(supplier.requests) == 4
    assert time.sleeps == [0.1, 0.2, 0.4]  # the ceilings (uniform -> high), one fewer than attempts
    assert "after 4 attempts" in info.value.reason


async def test_a_redirect_is_never_followed() -> None:
    supplier = ScriptedSupplier(Answer(302, headers={"location": "http://169.254.169.254/latest/meta-data/"}))
    http = make_http(supplier)
    with pytest.raises(BadSupplierData, match="redirect"):
        await http.request("GET", "/x", operation="stock", idempotent=True)
    assert len(supplier.requests) == 1


async def test_an_answer_larger_than_the_limit_is_refused() -> None:
    supplier = ScriptedSupplier(Answer(200, content=b"x" * 2048))
    http = make_http(supplier, settings=HttpSettings(max_response_bytes=1024))
    with pytest.raises(BadSupplierData, match="larger than 1024 bytes"):
        await http.request("GET", "/feed.csv", operation="stock", idempotent=True)


# --- Retry-After ------------------------------------------------------------------------------------


def test_parse_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after(" 0 ", now=now) == 0.0
    assert parse_retry_after("Thu, 26 Nov 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 26 Nov 2026 11:00:00 GMT", now=now) == 0.0  # in the past: now
    for unreadable in (None, "", "soon", "-5", "1.5", "Thu, 99 Nov 2026 12:00:30 GMT"):
        assert parse_retry_after(unreadable, now=now) is None


async def test_retry_after_seconds_is_slept_instead_of_the_backoff() -> None:
    supplier = ScriptedSupplier(Answer(429, headers={"retry-after": "3"}), Answer(200))
    time = FakeTime()
    http = make_http(supplier, time)
    await http.request("GET", "/x", operation="stock", idempotent=True)
    assert time.sleeps == [3.0]


async def test_retry_after_as_an_http_date_is_honoured() -> None:
    time = FakeTime()
    when = datetime.fromtimestamp(time.wall, UTC) + timedelta(seconds=4)
    supplier = ScriptedSupplier(Answer(503, headers={"retry-after": format_datetime(when, usegmt=True)}), Answer(200))
    http = make_http(supplier, time)
    await http.request("GET", "/x", operation="stock", idempotent=True)
    assert time.sleeps == [4.0]


async def test_a_retry_after_beyond_the_cap_is_reported_not_slept() -> None:
    supplier = ScriptedSupplier(Answer(429, headers={"retry-after": "120"}), Answer(200))
    time = FakeTime()
    http = make_http(supplier, time, settings=HttpSettings(retry_after_cap=10.0))
    with pytest.raises(SupplierUnavailable) as info:
        await http.request("GET", "/x", operation="stock", idempotent=True)
    assert info.value.retry_after == 120.0
    assert time.sleeps == []
    assert len(supplier.requests) == 1


async def test_a_retry_after_past_the_deadline_is_reported_not_slept() -> None:
    supplier = ScriptedSupplier(Answer(503, headers={"retry-after": "8"}), Answer(200))
    time = FakeTime()
    http = make_http(supplier, time, settings=HttpSettings(deadline=5.0, retry_after_cap=30.0))
    with pytest.raises(SupplierUnavailable) as info:
        await http.request("GET", "/x", operation="stock", idempotent=True)
    assert info.value.retry_after == 8.0
    assert time.sleeps == []


# --- deadline -------------------------------------------------------------------------------------


async def test_the_deadline_stops_retries_before_a_sleep_would_cross_it() -> None:
    time = FakeTime()

    def slow_failure(request: httpx.Request) -> httpx.Response:
        time.advance(4.0)  # each attempt takes 4 s
        return httpx.Response(503, headers={"retry-after": "1"})

    supplier = ScriptedSupplier(slow_failure)
    http = make_http(supplier, time, settings=HttpSettings(deadline=10.0, max_attempts=10))
    with pytest.raises(SupplierUnavailable):
        await http.request("GET", "/x", operation="stock", idempotent=True)
    # t=4 fail, sleep 1, t=9 fail: another 1 s sleep would reach the 10 s deadline, so stop.
    assert len(supplier.requests) == 2
    assert time.sleeps == [1.0]


async def test_the_deadline_cuts_a_hanging_attempt_in_real_time() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200)

    supplier = ScriptedSupplier(hang)
    http = make_http(supplier, settings=HttpSettings(deadline=0.2, breaker_failure_threshold=1))
    started = real_time.monotonic()
    with pytest.raises(SupplierUnavailable, match="deadline"):
        await http.request("GET", "/x", operation="stock", idempotent=True)
    assert real_time.monotonic() - started < 2.0
    assert (await http.breaker.state()).phase is BreakerPhase.OPEN  # a cut attempt counts as a failure


async def test_a_per_call_deadline_overrides_the_default() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200)

    http = make_http(ScriptedSupplier(hang), settings=HttpSettings(deadline=60.0))
    started = real_time.monotonic()
    with pytest.raises(SupplierUnavailable, match=r"0\.1 s deadline"):
        await http.request("GET", "/x", operation="stock", idempotent=True, deadline=0.1)
    assert real_time.monotonic() - started < 2.0


# --- circuit breaker: the rules ---------------------------------------------------------------------


def test_breaker_opens_after_n_consecutive_failures_only() -> None:
    rules = CircuitBreaker(failure_threshold=3, cool_down=30.0)
    state = rules.on_failure(rules.on_failure(CLOSED, now=0.0), now=1.0)
    assert state.phase is BreakerPhase.CLOSED and state.failures == 2
    assert rules.on_success(state) == CLOSED  # a success in between resets the count
    state = rules.on_failure(state, now=2.0)
    assert state.phase is BreakerPhase.OPEN and state.opened_at == 2.0


def test_open_breaker_refuses_until_the_cool_down_then_lets_one_trial_through() -> None:
    rules = CircuitBreaker(failure_threshold=1, cool_down=30.0, trial_timeout=60.0)
    opened = rules.on_failure(CLOSED, now=100.0)
    refused = rules.admit(opened, now=110.0)
    assert not refused.allowed and refused.retry_after == pytest.approx(20.0)
    trial = rules.admit(opened, now=130.0)
    assert trial.allowed and trial.state.phase is BreakerPhase.HALF_OPEN
    second = rules.admit(trial.state, now=131.0)
    assert not second.allowed  # one trial at a time


def test_half_open_trial_success_closes_and_failure_reopens() -> None:
    rules = CircuitBreaker(failure_threshold=1, cool_down=30.0)
    half_open = rules.admit(rules.on_failure(CLOSED, now=0.0), now=30.0).state
    assert rules.on_success(half_open) == CLOSED
    reopened = rules.on_failure(half_open, now=31.0)
    assert reopened.phase is BreakerPhase.OPEN and reopened.opened_at == 31.0
    assert not rules.admit(reopened, now=50.0).allowed


def test_a_trial_that_never_reports_is_given_up_after_its_timeout() -> None:
    rules = CircuitBreaker(failure_threshold=1, cool_down=10.0, trial_timeout=20.0)
    half_open = rules.admit(rules.on_failure(CLOSED, now=0.0), now=10.0).state
    assert not rules.admit(half_open, now=29.0).allowed
    assert rules.admit(half_open, now=30.0).allowed


async def test_two_processes_sharing_a_store_get_one_trial_between_them() -> None:
    store = InMemoryBreakerStore()
    now = [0.0]
    rules = CircuitBreaker(failure_threshold=1, cool_down=10.0)
    first = Breaker(rules, store, "supplier:1", clock=lambda: now[0])
    second = Breaker(rules, store, "supplier:1", clock=lambda: now[0])
    await first.record_failure()
    now[0] = 10.0
    admissions = [await first.admit(), await second.admit()]
    assert [a.allowed for a in admissions] == [True, False]


async def test_the_store_refuses_a_stale_compare_and_set() -> None:
    store = InMemoryBreakerStore()
    assert await store.compare_and_set("k", None, BreakerState(failures=1))
    assert not await store.compare_and_set("k", None, BreakerState(failures=2))
    assert await store.load("k") == BreakerState(failures=1)


# --- circuit breaker: around real calls -------------------------------------------------------------


async def test_the_breaker_opens_fails_fast_then_closes_after_a_good_trial() -> None:
    supplier = ScriptedSupplier(Answer(500), Answer(500), Answer(200, {"ok": True}))
    time = FakeTime()
    settings = HttpSettings(breaker_failure_threshold=2, breaker_cool_down=30.0)
    http = make_http(supplier, time, settings=settings)
    for _ in range(2):
        with pytest.raises(SupplierUnavailable, match="answered 500"):
            await http.request("GET", "/x", operation="stock", idempotent=True)
    with pytest.raises(SupplierUnavailable, match="circuit breaker open") as info:
        await http.request("GET", "/x", operation="stock", idempotent=True)
    assert len(supplier.requests) == 2  # refused without calling
    assert info.value.retry_after == pytest.approx(30.0)
    time.advance(30.0)
    await http.request("GET", "/x", operation="stock", idempotent=True)  # the trial
    assert (await http.breaker.state()) == CLOSED


async def test_a_failed_trial_reopens_the_breaker() -> None:
    supplier = ScriptedSupplier(httpx.ConnectError)
    time = FakeTime()
    http = make_http(supplier, time, settings=HttpSettings(breaker_failure_threshold=1, max_attempts=1))
    with pytest.raises(SupplierUnavailable, match="connection failed"):
        await http.request("GET", "/x", operation="stock", idempotent=True)
    time.advance(30.0)
    with pytest.raises(SupplierUnavailable, match="connection failed"):
        await http.request("GET", "/x", operation="stock", idempotent=True)
    with pytest.raises(SupplierUnavailable, match="circuit breaker open"):
        await http.request("GET", "/x", operation="stock", idempotent=True)
    assert len(supplier.requests) == 2


async def test_retries_stop_when_the_breaker_opens_mid_call() -> None:
    supplier = ScriptedSupplier(Answer(503))
    http = make_http(supplier, settings=HttpSettings(breaker_failure_threshold=2, max_attempts=5))
    with pytest.raises(SupplierUnavailable, match="circuit breaker open"):
        await http.request("GET", "/x", operation="stock", idempotent=True)
    assert len(supplier.requests) == 2


async def test_rejections_and_429_do_not_trip_the_breaker() -> None:
    supplier = ScriptedSupplier(Answer(404), Answer(429), Answer(422))
    http = make_http(supplier, settings=HttpSettings(breaker_failure_threshold=1, max_attempts=1))
    for _ in range(3):
        with pytest.raises((SupplierRejected, SupplierUnavailable)):
            await http.request("GET", "/x", operation="stock", idempotent=True)
    assert (await http.breaker.state()) == CLOSED


# --- rate limiter ---------------------------------------------------------------------------------


def test_token_bucket_allows_its_burst_then_one_request_per_interval() -> None:
    bucket = TokenBucket.for_limit(60, burst=3)  # one a second
    state = None
    waits = []
    for _ in range(4):
        wait, state = bucket.take(state, now=0.0)
        waits.append(wait)
    assert waits == [0.0, 0.0, 0.0, pytest.approx(1.0)]
    assert bucket.take(state, now=0.5)[0] == pytest.approx(0.5)
    assert bucket.take(state, now=1.0)[0] == 0.0
    assert bucket.take(state, now=1000.0)[1].tokens == pytest.approx(2.0)  # refills to the burst, no more


def test_default_burst_is_a_tenth_of_the_minute() -> None:
    assert TokenBucket.for_limit(600).burst == 60
    assert TokenBucket.for_limit(5).burst == 1


async def test_in_memory_limiter_keeps_one_bucket_per_supplier() -> None:
    time = FakeTime()
    limiter = InMemoryRateLimiter(burst=1, clock=time.monotonic)
    assert await limiter.acquire("supplier:1", 60) == 0.0
    assert await limiter.acquire("supplier:1", 60) == pytest.approx(1.0)
    assert await limiter.acquire("supplier:2", 60) == 0.0


async def test_calls_wait_for_the_rate_limit() -> None:
    supplier = ScriptedSupplier(Answer(200))
    time = FakeTime()
    limiter = InMemoryRateLimiter(burst=1, clock=time.monotonic)
    http = make_http(supplier, time, limiter=limiter, per_minute=30)
    await http.request("GET", "/x", operation="stock", idempotent=True)
    await http.request("GET", "/x", operation="stock", idempotent=True)
    assert time.sleeps == [pytest.approx(2.0)]
    assert len(supplier.requests) == 2


async def test_a_rate_limit_wait_past_the_deadline_fails_without_calling() -> None:
    supplier = ScriptedSupplier(Answer(200))
    time = FakeTime()
    limiter = InMemoryRateLimiter(burst=1, clock=time.monotonic)
    http = make_http(supplier, time, limiter=limiter, per_minute=1, settings=HttpSettings(deadline=5.0))
    await http.request("GET", "/x", operation="stock", idempotent=True)
    with pytest.raises(SupplierUnavailable, match="rate limit") as info:
        await http.request("GET", "/x", operation="stock", idempotent=True)
    assert info.value.retry_after == pytest.approx(60.0)
    assert len(supplier.requests) == 1


# --- logging --------------------------------------------------------------------------------------


@pytest.fixture
def every_level() -> Iterator[None]:
    """The app's logging config (set by other tests) may filter info out: capture everything here."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    yield
    structlog.configure(**saved)


async def test_outcomes_are_logged_without_credentials(every_level: None) -> None:
    supplier = ScriptedSupplier(Answer(503), Answer(200))
    http = make_http(supplier, headers={"authorization": "Bearer sk-very-secret"})
    with capture_logs() as logs:
        await http.request("GET", "/x", operation="stock", idempotent=True)
    assert supplier.requests[0].headers["authorization"] == "Bearer sk-very-secret"
    assert "sk-very-secret" not in repr(logs)
    call = next(entry for entry in logs if entry["event"] == "supplier.call")
    assert call["supplier"] == "acme"
    assert call["operation"] == "stock"
    assert call["status"] == 200
    assert call["attempts"] == 2
    assert "elapsed_ms" in call
