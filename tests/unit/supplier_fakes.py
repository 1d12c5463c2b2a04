"""Fakes for the supplier-side unit tests: a scripted supplier (an httpx MockTransport), time, DNS."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from integrations.http import Hooks, HttpSettings, SupplierHttp
from integrations.resilience import BreakerStore, InMemoryBreakerStore, InMemoryRateLimiter, RateLimiter

PUBLIC_IP = "93.184.216.34"


@dataclass
class Answer:
    status: int = 200
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> httpx.Response:
        if self.content is not None:
            return httpx.Response(self.status, headers=self.headers, content=self.content)
        return httpx.Response(self.status, headers=self.headers, json=self.json if self.json is not None else {})


Step = Answer | type[Exception] | Callable[[httpx.Request], Any]


class ScriptedSupplier:
    """Answers each request with the next step; the last step repeats. Records every request it got."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps) or [Answer()]
        self.requests: list[httpx.Request] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Answer):
            return step.response()
        if isinstance(step, type) and issubclass(step, httpx.TransportError):
            raise step("scripted failure", request=request)
        if isinstance(step, type):
            raise step("scripted failure")
        result = step(request)
        if asyncio.iscoroutine(result):
            result = await result
        assert isinstance(result, httpx.Response)
        return result

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


class FakeTime:
    """Monotonic and wall clocks that only move when told to, or when the code under test sleeps."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_795_000_000.0  # 2026-11-18
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.mono

    def wall_clock(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)


class FakeDns:
    """A resolver whose answers the test sets (and changes: DNS rebinding)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses: Sequence[str] = addresses or (PUBLIC_IP,)
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        if not self.addresses:
            raise OSError(-2, "Name or service not known")
        return list(self.addresses)


def make_http(
    supplier: ScriptedSupplier,
    time: FakeTime | None = None,
    *,
    settings: HttpSettings | None = None,
    breakers: BreakerStore | None = None,
    limiter: RateLimiter | None = None,
    per_minute: int | None = None,
    allow_private: bool = True,
    dns: FakeDns | None = None,
    base_url: str = "http://supplier.test/t/acme",
    headers: dict[str, str] | None = None,
    uniform: Callable[[float, float], float] = lambda low, high: high,
) -> SupplierHttp:
    time = time or FakeTime()
    return SupplierHttp(
        supplier="acme",
        key="supplier:1",
        base_url=base_url,
        allow_private=allow_private,
        breakers=breakers or InMemoryBreakerStore(),
        limiter=limiter or InMemoryRateLimiter(clock=time.monotonic),
        rate_limit_per_minute=per_minute,
        settings=settings or HttpSettings(),
        headers=headers,
        hooks=Hooks(
            sleep=time.sleep,
            uniform=uniform,
            monotonic=time.monotonic,
            wall=time.wall_clock,
            resolver=dns or FakeDns(),
            transport=supplier.transport,
        ),
    )
