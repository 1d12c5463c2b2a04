"""Five suppliers polled together while four of them misbehave the ways suppliers do — half their answers
errors, ten seconds of latency, a storm of 429s, garbage bodies — over real HTTP (the sandbox). Each
poll ends within its deadline, the healthy supplier is served as usual, the failing ones are marked stale
and their breakers open, no thread or socket leaks, and polling resumes by itself once they heal."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator

import pytest

from integrations.http import HttpSettings
from service.services import Services
from service.settings import Settings
from service.usecases.polling import PollReport, poll_supplier
from tests.api.parts_helpers import MANAGER, SUPPLIERS, PlacedOrder, place_order
from tests.conftest import Api, FakeClock
from tests.integration.worker_support import worker_services
from tests.sandbox_fixture import SandboxServer

DEADLINE = 3.0  # each call's, retries included: the latency supplier must cost no more than this
FAULTS = {
    "healthy": {},
    "flaky": {"error_rate": 0.5},
    "slow": {"latency_ms": 10_000},
    "throttled": {"rate_429": 1.0, "retry_after_seconds": 1},
    "garbled": {"malformed_rate": 1.0},
}
HEALED = {"error_rate": 0.0, "latency_ms": 0, "rate_429": 0.0, "malformed_rate": 0.0}


@pytest.fixture
async def services(settings: Settings, clock: FakeClock, clean_db: None) -> AsyncIterator[Services]:
    """A worker's services with short timeouts, a quick breaker and a one-second cool-down."""
    http = HttpSettings(
        connect_timeout=1.0,
        read_timeout=1.0,
        deadline=DEADLINE,
        max_attempts=3,
        backoff_base=0.05,
        backoff_cap=0.2,
        breaker_failure_threshold=3,
        breaker_cool_down=1.0,
    )
    async with worker_services(settings, clock, http) as built:
        yield built


async def poll_all(services: Services, placed: dict[str, PlacedOrder], clock: FakeClock) -> dict[str, PollReport]:
    clock.advance(minutes=5)
    names = list(placed)
    reports = await asyncio.gather(*(poll_supplier(services, placed[n].supplier["id"], now=clock.now) for n in names))
    return dict(zip(names, reports, strict=True))


def open_sockets_and_threads() -> tuple[int, int]:
    return len(os.listdir("/proc/self/fd")), threading.active_count()


async def test_polling_survives_a_storm_of_failing_suppliers_and_resumes_when_they_heal(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed = {name: await place_order(api, sandbox) for name in FAULTS}
    assert all(report.healthy for report in (await poll_all(services, placed, clock)).values())
    for name, faults in FAULTS.items():
        sandbox.set_faults(placed[name].tenant, **faults)

    rounds: list[dict[str, PollReport]] = []
    for round_number in range(4):
        started = time.monotonic()
        rounds.append(await poll_all(services, placed, clock))
        # A poll makes a few calls (stock, the orders' feed), each bounded by the deadline: nothing hangs.
        assert time.monotonic() - started < 4 * DEADLINE, f"round {round_number} took too long"
        if round_number == 1:
            before = open_sockets_and_threads()  # steady state: every client's pool is open by now

    sockets, threads = open_sockets_and_threads()
    assert threads == before[1], "threads leaked"
    assert sockets <= before[0] + 5, f"sockets leaked: {before[0]} then {sockets}"
    assert all(r["healthy"].healthy for r in rounds)  # the healthy supplier is served as usual meanwhile
    for name in ("slow", "throttled", "garbled"):
        assert not any(r[name].healthy for r in rounds), name
        assert all(r[name].lines_changed == 0 for r in rounds), name  # garbage is never applied
    # Timing out on every call: its breaker opens and stops the calls (an answer, even garbage or a 429,
    # shows the supplier is up: those are refused answers, not a reason to stop calling).
    assert any("circuit breaker open" in " ".join(r["slow"].errors) for r in rounds[1:]), rounds[-1]["slow"]
    stale = {s["name"] for s in await suppliers(api) if s["stale_since"]}
    assert {placed[n].supplier["name"] for n in ("slow", "throttled", "garbled")} <= stale

    for plan in placed.values():
        sandbox.set_faults(plan.tenant, **HEALED)
    await asyncio.sleep(1.1)  # the breakers' cool-down: the next call of each is its trial

    healed = await poll_all(services, placed, clock)

    assert {name: report.healthy for name, report in healed.items()} == dict.fromkeys(FAULTS, True)
    assert not [s["name"] for s in await suppliers(api) if s["stale_since"]]


async def suppliers(api: Api) -> list[dict[str, str | None]]:
    response = await api.client.get(SUPPLIERS, headers=await api.login(MANAGER))
    assert response.status_code == 200, response.text
    found: list[dict[str, str | None]] = response.json()
    return found
