"""`atelier worker` SIGKILLed in the middle of a task: arq runs the task again in another worker once the
dead one's in-progress key expires (the job timeout + 10 s), and nothing is doubled or lost.

Real processes against a real Redis (database 11, flushed; with CI=true a missing Redis fails the tests)
and the tests' database, so the workers see what the test set up through the API and the supplier
sandbox. The job timeout is ATELIER_WORKER_JOB_TIMEOUT_SECONDS=4 so the re-run comes after 14 s, not 130.
What makes a task slow enough to be killed half-way is real: the sandbox's `latency_ms` fault on a
supplier (a poll, a re-sourcing), and a job row locked by another transaction (the sweep).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.model import parse_ref
from service.persistence.db import create_engine
from service.persistence.tables import (
    alert_t,
    escalation_t,
    event_t,
    job_t,
    order_t,
    outbox_t,
    revision_t,
    supplier_stock_t,
)
from service.secrets import required_secrets
from service.services import build_services
from service.settings import Settings
from service.uow import Database
from service.usecases import escalation
from service.usecases.sourcing import refresh_order
from tests.api.parts_helpers import (
    MANAGER,
    SKU,
    SUPPLIERS,
    add_part,
    change_line,
    events_of,
    iso,
    job_parts,
    job_with_lines,
    line_of,
    new_tenant,
    ordered,
    pin_stock,
    sandbox_orders,
)
from tests.conftest import Api, FakeClock
from tests.integration.test_cli import ATELIER, _env
from tests.redis_support import flushed_redis, redis_url
from tests.sandbox_fixture import SandboxServer

REDIS_DB = 11
REDIS_URL = redis_url(REDIS_DB)
JOB_TIMEOUT = 4  # seconds: a killed worker's task is run again 14 s after it started
LATENCY_MS = 700  # per supplier request while the task is to be killed
BUDGET = 1_000_000


# --- fixtures: Redis, the database, the worker processes ---------------------------------------------


@pytest.fixture
async def redis() -> AsyncIterator[ArqRedis]:
    async with flushed_redis(REDIS_DB) as pool:
        yield pool


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    built = create_engine(settings)
    try:
        yield built
    finally:
        await built.dispose()


class Workers:
    """`atelier worker` processes on the tests' database and Redis; whatever is left is stopped at the end."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        assert settings.jwt_secret is not None and settings.passcode_keys is not None
        self.folder = folder
        self.env = {
            "ATELIER_REDIS_URL": REDIS_URL,
            "ATELIER_DATABASE_URL": settings.database_url,
            "ATELIER_JWT_SECRET": settings.jwt_secret.get_secret_value(),
            "ATELIER_PASSCODE_KEYS": settings.passcode_keys.get_secret_value(),
            "ATELIER_ALLOW_PRIVATE_SUPPLIER_URLS": "true",
            "ATELIER_WORKER_JOB_TIMEOUT_SECONDS": str(JOB_TIMEOUT),
            "ATELIER_LOG_LEVEL": "INFO",
        }
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = self.folder / f"worker-{len(self.started) + 1}.log"
        with log.open("wb") as out:
            # A real process on purpose: it is to be killed.
            process = subprocess.Popen(
                [*ATELIER, "worker"], cwd=self.folder, env=_env(**self.env), stdout=out, stderr=subprocess.STDOUT
            )
        self.started.append(process)
        return process

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)  # no shutdown, no clean-up: the machine lost power
        assert process.wait(timeout=10) == -signal.SIGKILL

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text()[-4000:]}" for p in sorted(self.folder.glob("worker-*.log")))

    def stop(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(settings, tmp_path)
    try:
        yield running
    finally:
        running.stop()


# --- helpers -----------------------------------------------------------------------------------------


async def wait_for(check: Callable[[], Awaitable[Any]], what: str, workers: Workers, within: float = 20) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{workers.logs()}"
        await asyncio.sleep(0.05)


async def in_progress(redis: ArqRedis, pattern: str) -> str | None:
    """The id of a job matching `pattern` that a worker is running (arq's in-progress key)."""
    keys = await redis.keys(f"arq:in-progress:{pattern}")
    return keys[0].decode().removeprefix("arq:in-progress:") if keys else None


async def rerun(redis: ArqRedis, job_id: str, workers: Workers) -> Any:
    """Wait for the killed job to be run again, to its end; it must be its second try, and succeed."""
    job = Job(job_id, redis)
    try:
        result = await job.result(timeout=JOB_TIMEOUT + 10 + 20, poll_delay=0.2)
    except Exception as exc:
        raise AssertionError(f"{job_id} did not complete: {exc!r}\n{workers.logs()}") from exc
    info = await job.result_info()
    assert info is not None and info.success and info.job_try == 2, (info, workers.logs())
    return result


async def scalar(engine: AsyncEngine, query: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(query)).scalar_one()


async def fast_supplier(api: Api, sandbox: SandboxServer, tenant: str) -> dict[str, Any]:
    """A supplier on a sandbox tenant whose rate limit never slows a test: only the latency fault does."""
    body = {
        "name": f"Supplier {tenant}",
        "adapter": "rest_json",
        "base_url": sandbox.tenant_url(tenant),
        "api_key": "test-key",
        "rate_limit_per_minute": 6000,
    }
    response = await api.client.post(SUPPLIERS, json=body, headers=await api.login(MANAGER))
    assert response.status_code == 201, response.text
    supplier: dict[str, Any] = response.json()
    return supplier


# --- a poll --------------------------------------------------------------------------------------------

ORDERS = 4


async def test_a_poll_killed_half_way_is_run_again_and_records_each_eta_revision_once(
    api: Api, sandbox: SandboxServer, clock: FakeClock, redis: ArqRedis, engine: AsyncEngine, workers: Workers
) -> None:
    clock.now = datetime.now(UTC)  # the worker's clock is the real one
    tenant = new_tenant()
    pin_stock(sandbox, tenant, SKU, 50)
    await add_part(api)
    supplier = await fast_supplier(api, sandbox, tenant)
    lines: dict[str, int] = {}
    for _ in range(ORDERS):
        view = await job_with_lines(api, [(SKU, 1)])
        line_id = view["lines"][0]["id"]
        placed = await ordered(api, view["ref"], line_id, supplier["id"])
        sandbox.advance(placed["supplier_ref"], "slip", tenant=tenant, hours=30)  # a poll will learn it
        lines[view["ref"]] = line_id
    polled = (
        select(func.count())
        .select_from(revision_t)
        .where(revision_t.c.line_id.in_(list(lines.values())), revision_t.c.source == "poll")
    )
    stock_seen = select(func.max(supplier_stock_t.c.updated_at)).where(supplier_stock_t.c.supplier_id == supplier["id"])
    sandbox.set_faults(tenant, latency_ms=LATENCY_MS)

    first = workers.start()
    started = datetime.now(UTC)
    # The polling cron as the schedule runs it: it claims the supplier's poll and queues it.
    assert await redis.enqueue_job("poll_suppliers", _job_id="test:poll_suppliers") is not None
    job_id = await wait_for(lambda: in_progress(redis, f"poll:{supplier['id']}:*"), "the poll to start", workers)

    # Half-way: its first answer (the stock) is recorded, the orders' answers are not all in.
    async def half_way() -> bool:
        seen = await scalar(engine, stock_seen)
        return seen is not None and _utc(seen) >= started and await scalar(engine, polled) < ORDERS

    await wait_for(half_way, "the poll's first answer to be recorded", workers)
    workers.kill(first)
    before = await scalar(engine, polled)
    assert before < ORDERS
    sandbox.set_faults(tenant, latency_ms=0)
    workers.start()

    report = await rerun(redis, job_id, workers)

    # The re-run asked again and applied only what the killed run had not.
    assert report["failures"] == 0 and report["healthy"] is True, report
    assert report["lines_changed"] == ORDERS - before, (report, before)
    assert await scalar(engine, polled) == ORDERS
    for ref, line_id in lines.items():
        history = line_of(await job_parts(api, ref), line_id)["eta_history"]
        assert [r["source"] for r in history] == ["order", "poll"], history
        revised = await events_of(api, ref, "eta_revised")
        assert [e["data"]["source"] for e in revised] == ["poll"], revised


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite keeps no offset


# --- a re-sourcing ---------------------------------------------------------------------------------------


async def test_a_re_sourcing_killed_while_the_new_order_is_on_its_way_orders_once_from_the_new_supplier(
    api: Api,
    sandbox: SandboxServer,
    clock: FakeClock,
    settings: Settings,
    redis: ArqRedis,
    engine: AsyncEngine,
    workers: Workers,
) -> None:
    clock.now = datetime.now(UTC)
    tenant_a, tenant_b = new_tenant(), new_tenant()
    pin_stock(sandbox, tenant_a, SKU, 50)
    pin_stock(sandbox, tenant_b, SKU, 20)
    await add_part(api)
    supplier_a = await fast_supplier(api, sandbox, tenant_a)
    supplier_b = await fast_supplier(api, sandbox, tenant_b)
    view = await job_with_lines(api, [(SKU, 1)], tier="express", budget=BUDGET)
    ref, line_id = view["ref"], view["lines"][0]["id"]
    job_id = parse_ref(ref) or 0
    old = await ordered(api, ref, line_id, supplier_a["id"])
    sandbox.advance(old["supplier_ref"], "slip", tenant=tenant_a, hours=200)  # B can now deliver far sooner
    first = workers.start()
    for tenant in (tenant_a, tenant_b):
        sandbox.set_faults(tenant, latency_ms=LATENCY_MS)

    # The poll learns of the slip and the ladder asks for a re-sourcing (an outbox entry), as in a worker.
    _, cipher = required_secrets(settings)
    services = build_services(settings, cipher, clock=clock)
    try:
        assert await refresh_order(
            services.db, old["id"], clients=services.suppliers, cipher=services.cipher, now=clock.now
        )
        await escalation.sweep(services, now=clock.now)  # the worker's own sweep may have been first
    finally:
        await services.aclose()
    entry = await scalar(
        engine, select(outbox_t.c.id).where(outbox_t.c.job_id == job_id, outbox_t.c.kind == escalation.RESOURCE)
    )
    outbox_job = f"outbox:{entry}"
    await redis.enqueue_job("handle_outbox", _job_id=outbox_job, outbox_id=entry)  # or the relay was first
    await wait_for(lambda: in_progress(redis, outbox_job), "the re-sourcing to start", workers)

    # Killed at the worst moment: A's order is cancelled, the new PO is committed and on its way to B.
    new_order = select(order_t.c.id).where(order_t.c.job_id == job_id, order_t.c.supplier_id == supplier_b["id"])

    async def sending_to_b() -> int | None:
        async with engine.connect() as conn:
            return (await conn.execute(new_order)).scalar()

    in_flight = await wait_for(sending_to_b, "the new order to be sent to B", workers)
    workers.kill(first)
    await asyncio.sleep(LATENCY_MS / 1000 + 0.5)  # B finishes the request it was handling
    for tenant in (tenant_a, tenant_b):
        sandbox.set_faults(tenant, latency_ms=0)
    workers.start()

    assert await rerun(redis, outbox_job, workers) is True

    orders = {
        row.id: row
        for row in (await _rows(engine, select(order_t).where(order_t.c.job_id == job_id).order_by(order_t.c.id)))
    }
    pos = {order_id: f"PO-{order_id:06d}" for order_id in orders}
    assert pos[old["id"]] == old["po"]
    # At the old supplier: the order cancelled (once: a second cancel is the same cancel).
    (remote_old,) = sandbox_orders(sandbox, tenant_a, old["po"])
    assert remote_old["state"] == "cancelled"
    assert len(await events_of(api, ref, "order_cancelled")) == 1
    # At the new supplier: exactly one order, whatever POs Atelier opened for it.
    at_b = {po: sandbox_orders(sandbox, tenant_b, po) for order_id, po in pos.items() if order_id != old["id"]}
    placed_at_b = [po for po, found in at_b.items() if found]
    assert len(placed_at_b) == 1, (
        f"B holds {len(placed_at_b)} orders for this one part: {placed_at_b} (the killed run's PO "
        f"{pos[in_flight]}: {'placed' if at_b[pos[in_flight]] else 'never reached B'}); "
        f"Atelier's orders: {[(pos[i], o.supplier_id, o.status) for i, o in orders.items()]}"
    )
    # In Atelier: the old order cancelled, one live order at B holding the line, re-sourced once.
    live = [o for o in orders.values() if o.status != "cancelled"]
    assert [(o.supplier_id, pos[o.id]) for o in live] == [(supplier_b["id"], placed_at_b[0])], orders
    line = line_of(await job_parts(api, ref), line_id)
    assert (line["supplier_id"], line["order_id"], line["status"]) == (supplier_b["id"], live[0].id, "ordered")
    (resourced,) = await events_of(api, ref, "resourced")
    assert resourced["data"]["po"] == placed_at_b[0]
    assert await scalar(engine, select(outbox_t.c.done_at).where(outbox_t.c.id == entry)) is not None


async def _rows(engine: AsyncEngine, query: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(query)).all())


# --- the sweep -------------------------------------------------------------------------------------------

LATE_JOBS = 4
BLOCKED = 2  # the index of the job whose row another transaction holds
SWEEP_BATCH = 2  # jobs per unit of work of the sweep: the first batch commits, the second waits on BLOCKED


async def test_a_sweep_killed_half_way_is_run_again_and_records_each_rung_once(
    api: Api,
    sandbox: SandboxServer,
    clock: FakeClock,
    redis: ArqRedis,
    engine: AsyncEngine,
    workers: Workers,
    is_postgres: bool,
) -> None:
    clock.now = datetime.now(UTC)
    tenant = new_tenant()
    pin_stock(sandbox, tenant, SKU, 50)
    await add_part(api)
    supplier = await fast_supplier(api, sandbox, tenant)
    refs: list[str] = []
    for _ in range(LATE_JOBS):
        view = await job_with_lines(api, [(SKU, 1)])
        line_id = view["lines"][0]["id"]
        await ordered(api, view["ref"], line_id, supplier["id"])
        # The supplier said on the phone it would be there two hours ago; it is not: late.
        response = await change_line(api, view["ref"], line_id, {"eta": iso(clock.now - timedelta(hours=2))})
        assert response.status_code == 200, response.text
        refs.append(view["ref"])
    ids = [parse_ref(ref) or 0 for ref in refs]
    workers.env["ATELIER_ESCALATION_SWEEP_BATCH"] = str(SWEEP_BATCH)
    first = workers.start()

    def rungs(job_id: int) -> Any:
        return select(func.count()).select_from(escalation_t).where(escalation_t.c.job_id == job_id)

    # Another transaction holds one job's row (PostgreSQL: that row; SQLite: the database's write lock):
    # the sweep records the batch before it and waits in the batch that holds it.
    async with Database(engine).transaction() as holder:
        await holder.connection.execute(select(job_t.c.id).where(job_t.c.id == ids[BLOCKED]).with_for_update())
        assert await redis.enqueue_job("sweep_escalations", _job_id="test:sweep") is not None
        await wait_for(lambda: in_progress(redis, "test:sweep"), "the sweep to start", workers)
        if is_postgres:

            async def waiting() -> bool:
                blocked = text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
                return bool(await scalar(engine, blocked))

            await wait_for(waiting, "the sweep to wait for the held row", workers, within=JOB_TIMEOUT - 1)
            done = [await scalar(engine, rungs(job_id)) for job_id in ids]
            assert all(done[:BLOCKED]) and not any(done[BLOCKED:]), done  # half-way, for real
        else:
            await asyncio.sleep(1)  # it read the candidates; its first write waits for the lock
        workers.kill(first)
    workers.start()

    await rerun(redis, "test:sweep", workers)

    for ref, job_id in zip(refs, ids, strict=True):
        levels = [row.level for row in await _rows(engine, select(escalation_t).where(escalation_t.c.job_id == job_id))]
        assert levels == [1], (ref, levels)  # late, once
        escalated = await events_of(api, ref, "escalated")
        assert [e["data"]["level"] for e in escalated] == ["late"], (ref, escalated)
        alerts = await _rows(engine, select(alert_t.c.kind).where(alert_t.c.job_id == job_id))
        assert [a.kind for a in alerts] == ["parts_late"], (ref, alerts)
        events = await scalar(
            engine,
            select(func.count()).select_from(event_t).where(event_t.c.job_id == job_id, event_t.c.kind == "escalated"),
        )
        assert events == 1
