"""One supplier's HTTP calls, made safe: timeouts, a deadline, retries, a breaker, a rate limit, no SSRF.

`SupplierHttp` wraps one `httpx.AsyncClient` per supplier and turns every failure into the errors of
`integrations.suppliers.base`, so adapters only build requests and validate answers. A call:

1. waits for a rate-limit token (never past its deadline);
2. asks the supplier's circuit breaker (open: fail fast with `SupplierUnavailable.retry_after`);
3. unless private addresses are allowed, resolves the host, refuses any non-public address and sends
   the request to the address it checked (Host header and TLS SNI keep the name), so a DNS answer that
   changes between check and connection (rebinding) cannot reach 127.0.0.1;
4. sends it with explicit connect/read/write/pool timeouts, never following redirects, reading at most
   `max_response_bytes`;
5. retries — only when the caller says the call is idempotent — connection errors, timeouts, 429, 502,
   503 and 504, with full-jitter backoff or the supplier's `Retry-After`, all within one overall
   deadline (`asyncio.timeout` around every attempt and every sleep).
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from integrations.resilience import (
    Breaker,
    BreakerStore,
    CircuitBreaker,
    Clock,
    RateLimiter,
    Uniform,
    backoff_delay,
    parse_retry_after,
)
from integrations.suppliers.base import BadSupplierData, SupplierError, SupplierRejected, SupplierUnavailable
from integrations.urlguard import AsyncResolver, UnresolvableHost, UnsafeURL, parse_supplier_url, resolve_public

log = structlog.get_logger("integrations.suppliers")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
_ERROR_BODY_BYTES = 4096  # how much of an error answer we read, for its message


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The knobs of every supplier call (seconds unless named otherwise)."""

    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    write_timeout: float = 10.0
    pool_timeout: float = 3.0
    deadline: float = 20.0  # the whole call: all attempts, backoff sleeps and rate-limit waits
    max_attempts: int = 3  # first try included; only idempotent calls get more than one
    backoff_base: float = 0.25
    backoff_cap: float = 4.0
    retry_after_cap: float = 10.0  # a longer Retry-After is not slept: the call fails with it
    breaker_failure_threshold: int = 5  # consecutive failed attempts (connection errors, timeouts, 5xx)
    breaker_cool_down: float = 30.0
    breaker_trial_timeout: float = 60.0
    max_response_bytes: int = 10 * 1024 * 1024
    max_connections: int = 10

    def __post_init__(self) -> None:
        positive = (self.connect_timeout, self.read_timeout, self.write_timeout, self.pool_timeout, self.deadline)
        if min(positive) <= 0 or self.max_attempts < 1 or self.max_response_bytes < 1 or self.max_connections < 1:
            raise ValueError("timeouts and deadline must be > 0; max_attempts, sizes and connections >= 1")
        if self.backoff_base < 0 or self.backoff_cap < 0 or self.retry_after_cap < 0:
            raise ValueError("backoff and retry-after caps must be >= 0")

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect_timeout, read=self.read_timeout, write=self.write_timeout, pool=self.pool_timeout
        )

    @property
    def breaker_rules(self) -> CircuitBreaker:
        return CircuitBreaker(
            failure_threshold=self.breaker_failure_threshold,
            cool_down=self.breaker_cool_down,
            trial_timeout=self.breaker_trial_timeout,
        )


def _unobserved(supplier: str, operation: str, outcome: str, seconds: float) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Hooks:
    """What tests replace: time, randomness, DNS and the transport (an `httpx.MockTransport`); and who
    hears of each call's outcome (the metrics)."""

    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    uniform: Uniform = random.uniform
    monotonic: Clock = time.monotonic
    wall: Clock = time.time  # breaker times (shared between processes)
    resolver: AsyncResolver | None = None
    transport: httpx.AsyncBaseTransport | None = None
    observe: Callable[[str, str, str, float], None] = _unobserved  # supplier, operation, outcome, seconds


@dataclass(frozen=True, slots=True)
class SupplierResponse:
    status_code: int
    headers: httpx.Headers
    content: bytes


@dataclass(slots=True)
class _Call:
    operation: str
    idempotent: bool
    deadline_at: float  # on the hooks' monotonic clock
    attempts: int = 0
    status: int | None = None  # of the last answer
    in_flight: bool = False


@dataclass(frozen=True, slots=True)
class _Failure:
    """One attempt that did not give a usable answer, and what to do about it."""

    reason: str
    retryable: bool
    status: int | None = None
    retry_after: float | None = None
    error: type[SupplierError] = SupplierUnavailable


class SupplierHttp:
    """The resilient HTTP client of one supplier; `request` is the only way adapters talk to it."""

    def __init__(
        self,
        *,
        supplier: str,
        key: str,
        base_url: str,
        allow_private: bool,
        breakers: BreakerStore,
        limiter: RateLimiter,
        rate_limit_per_minute: int | None = None,
        settings: HttpSettings | None = None,
        headers: Mapping[str, str] | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.supplier = supplier
        self.settings = settings or HttpSettings()
        self._hooks = hooks or Hooks()
        self._target = parse_supplier_url(base_url)
        self.base_url = self._target.url.rstrip("/")
        self._allow_private = allow_private
        self._limiter = limiter
        self._limit_key = key
        self._per_minute = rate_limit_per_minute
        self._breaker = Breaker(self.settings.breaker_rules, breakers, key, clock=self._hooks.wall)
        self._client = httpx.AsyncClient(
            timeout=self.settings.timeout,
            follow_redirects=False,
            trust_env=False,  # no proxy or .netrc credentials picked up from the environment
            headers={"user-agent": "Atelier/0.1", **(headers or {})},
            limits=httpx.Limits(max_connections=self.settings.max_connections, keepalive_expiry=30.0),
            transport=self._hooks.transport,
        )
        self._log = log.bind(supplier=supplier)

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def breaker(self) -> Breaker:
        return self._breaker

    async def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        idempotent: bool,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> SupplierResponse:
        """A 2xx answer, or `SupplierUnavailable` / `SupplierRejected` / `BadSupplierData`.

        `idempotent`: the caller's word that sending the request twice does no harm (a GET, or a POST
        carrying an idempotency key); only then are failed attempts retried.
        """
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        budget = deadline if deadline is not None else self.settings.deadline
        started = self._hooks.monotonic()
        call = _Call(operation, idempotent, started + budget)
        request = self._client.build_request(method, self.base_url + path, params=params, json=json, headers=headers)
        timer = asyncio.timeout(budget)
        try:
            async with timer:
                response = await self._attempts(request, call)
        except TimeoutError:
            if not timer.expired():
                raise
            if call.in_flight:  # the deadline cut an attempt short: for the breaker, a timeout
                await self._breaker.record_failure()
            error = SupplierUnavailable(self.supplier, f"{operation}: no answer within the {budget:g} s deadline")
            self._log_outcome(call, started, "deadline", error.reason)
            raise error from None
        except SupplierError as error:
            self._log_outcome(call, started, type(error).__name__, error.reason)
            raise
        self._log_outcome(call, started, "ok", None)
        return response

    # --- the attempt loop ---------------------------------------------------------------------

    async def _attempts(self, template: httpx.Request, call: _Call) -> SupplierResponse:
        while True:
            await self._take_token(call)
            admission = await self._breaker.admit()
            if not admission.allowed:
                raise SupplierUnavailable(
                    self.supplier, f"{call.operation}: circuit breaker open", retry_after=admission.retry_after
                )
            call.attempts += 1
            call.in_flight = True
            result = await self._attempt(_copy(template), call.attempts)
            call.in_flight = False
            call.status = result.status_code if isinstance(result, SupplierResponse) else result.status
            if isinstance(result, SupplierResponse):
                return result
            delay = self._retry_delay(result, call)
            if delay is None:
                raise self._final_error(result, call)
            self._log.info(
                "supplier.retry",
                operation=call.operation,
                attempt=call.attempts,
                cause=result.reason,
                status=result.status,
                delay=round(delay, 3),
            )
            await self._hooks.sleep(delay)

    def _retry_delay(self, failure: _Failure, call: _Call) -> float | None:
        """Seconds to sleep before the next attempt, or None to stop now."""
        if not (failure.retryable and call.idempotent and call.attempts < self.settings.max_attempts):
            return None
        if failure.retry_after is not None:
            if failure.retry_after > self.settings.retry_after_cap:
                return None  # the supplier asks for longer than we wait inline: report it instead
            delay = failure.retry_after
        else:
            delay = backoff_delay(
                call.attempts - 1,
                base=self.settings.backoff_base,
                cap=self.settings.backoff_cap,
                uniform=self._hooks.uniform,
            )
        if self._hooks.monotonic() + delay >= call.deadline_at:
            return None  # sleeping would end past the deadline: give up now, not at the deadline
        return delay

    def _final_error(self, failure: _Failure, call: _Call) -> SupplierError:
        reason = f"{call.operation}: {failure.reason}"
        if call.attempts > 1:
            reason += f" (after {call.attempts} attempts)"
        if failure.error is SupplierRejected:
            return SupplierRejected(self.supplier, reason, status_code=failure.status)
        if failure.error is BadSupplierData:
            return BadSupplierData(self.supplier, reason)
        return SupplierUnavailable(self.supplier, reason, retry_after=failure.retry_after)

    async def _take_token(self, call: _Call) -> None:
        if self._per_minute is None:
            return
        while True:
            wait = await self._limiter.acquire(self._limit_key, self._per_minute)
            if wait <= 0:
                return
            if self._hooks.monotonic() + wait >= call.deadline_at:
                raise SupplierUnavailable(self.supplier, f"{call.operation}: rate limit reached", retry_after=wait)
            await self._hooks.sleep(wait)

    # --- one attempt --------------------------------------------------------------------------

    async def _attempt(self, request: httpx.Request, attempt: int) -> SupplierResponse | _Failure:
        try:
            await self._pin(request, attempt)
        except UnresolvableHost as exc:
            await self._breaker.record_failure()
            return _Failure(exc.reason, retryable=True)
        except UnsafeURL as exc:
            # Not the supplier's health: the breaker is not told (a half-open trial lease just expires).
            self._log.error("supplier.unsafe_address", reason=exc.reason)
            return _Failure(f"refused to call: {exc.reason}", retryable=False)
        try:
            response = await self._client.send(request, stream=True, follow_redirects=False)
            try:
                status = response.status_code
                limit = self.settings.max_response_bytes if 200 <= status < 300 else _ERROR_BODY_BYTES
                content = await _read_capped(response, limit, truncate=not 200 <= status < 300)
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            await self._breaker.record_failure()
            return _Failure(f"timed out ({type(exc).__name__})", retryable=True)
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            await self._breaker.record_failure()
            return _Failure(f"connection failed ({type(exc).__name__})", retryable=True)
        except httpx.DecodingError:
            await self._breaker.record_success()
            return _Failure("answer could not be decoded", retryable=False, error=BadSupplierData)
        except _TooLarge:
            await self._breaker.record_success()
            limit = self.settings.max_response_bytes
            return _Failure(f"answer larger than {limit} bytes", retryable=False, error=BadSupplierData)
        except httpx.HTTPError as exc:  # a local protocol error, an unsupported URL...: ours, not the supplier's
            return _Failure(f"request failed ({type(exc).__name__})", retryable=False)
        return await self._classify(status, response.headers, content)

    async def _classify(self, status: int, headers: httpx.Headers, content: bytes) -> SupplierResponse | _Failure:
        if 200 <= status < 300:
            await self._breaker.record_success()
            return SupplierResponse(status, headers, content)
        if status in RETRY_STATUSES:
            # A 429 proves the supplier is up: it counts as a success for the breaker.
            await (self._breaker.record_success() if status == 429 else self._breaker.record_failure())
            retry_after = parse_retry_after(
                headers.get("retry-after"), now=datetime.fromtimestamp(self._hooks.wall(), UTC)
            )
            return _Failure(f"answered {status}", retryable=True, status=status, retry_after=retry_after)
        if status >= 500:
            await self._breaker.record_failure()
            return _Failure(f"answered {status}", retryable=False, status=status)
        await self._breaker.record_success()
        if 300 <= status < 400:
            return _Failure(
                f"answered a redirect ({status}), which is never followed", False, status, None, BadSupplierData
            )
        message = _error_message(content)
        reason = f"answered {status}" + (f": {message}" if message else "")
        return _Failure(reason, retryable=False, status=status, error=SupplierRejected)

    async def _pin(self, request: httpx.Request, attempt: int) -> None:
        """Check the host's addresses and send the request to one of them (rotating on retries)."""
        if self._allow_private:
            return
        addresses = await resolve_public(self._target, resolver=self._hooks.resolver)
        if self._target.ip is not None:
            return  # an address literal: checked, nothing to pin
        pin(request, addresses[(attempt - 1) % len(addresses)].compressed, self._target.host)

    def _log_outcome(self, call: _Call, started: float, outcome: str, reason: str | None) -> None:
        elapsed = self._hooks.monotonic() - started
        self._hooks.observe(self.supplier, call.operation, outcome, elapsed)
        elapsed_ms = round(elapsed * 1000, 1)
        fields: dict[str, Any] = {
            "operation": call.operation,
            "status": call.status,
            "attempts": call.attempts,
            "elapsed_ms": elapsed_ms,
            "outcome": outcome,
        }
        if reason is None:
            self._log.info("supplier.call", **fields)
        else:
            self._log.warning("supplier.call", reason=reason, **fields)


def pin(request: httpx.Request, address: str, host: str) -> None:
    """Send `request` to `address` while still speaking to `host`: the Host header (set when the request
    was built) keeps the name, and TLS sends it as SNI and verifies the certificate against it."""
    request.extensions = {**request.extensions, "sni_hostname": host}
    request.url = request.url.copy_with(host=address)


class _TooLarge(Exception):
    pass


async def _read_capped(response: httpx.Response, limit: int, *, truncate: bool) -> bytes:
    """The (decoded) body, refusing more than `limit` bytes, or keeping only the first `limit` bytes."""
    declared = response.headers.get("content-length")
    if not truncate and declared and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            if truncate:
                chunks.append(chunk[: limit - (size - len(chunk))])
                break
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _copy(template: httpx.Request) -> httpx.Request:
    """A fresh request per attempt: pinning rewrites the URL, and the body stream is read once."""
    return httpx.Request(
        template.method,
        template.url,
        headers=template.headers,
        content=template.content,
        extensions=dict(template.extensions),
    )


def _error_message(content: bytes) -> str:
    """The `{"error": ...}` text of an error answer, short and printable (it ends up in logs and UIs)."""
    try:
        body = jsonlib.loads(content)
    except ValueError:
        return ""
    text = body.get("error") if isinstance(body, dict) else None
    if not isinstance(text, str):
        return ""
    printable = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return printable[:200]
