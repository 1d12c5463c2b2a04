"""Supplier polling against the supplier sandbox (a real process, over HTTP) and the real database.

Orders are placed through the API; the sandbox then changes them on its side (`advance`), and
`poll_supplier` must find out and record it through the same use cases as the webhooks. The last tests
run the tasks in a real arq worker on a real Redis (database 7, flushed; with CI=true a missing Redis
fails them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arq import create_pool, func
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from arq.worker import Worker
from sqlalchemy import update

from integrations.http import HttpSettings
from integrations.sandbox.catalogue import seeded
from service.persistence.tables import order_t
from service.secrets import required_secrets
from service.services import Services, build_services
from service.settings import Settings
from service.usecases import polling as polling_usecase
from service.usecases.polling import PollReport, poll_due_suppliers, poll_supplier
from tests.api.parts_helpers import (
    MANAGER,
    NEW_SECRET,
    SKU,
    SKU2,
    SUPPLIERS,
    add_part,
    add_supplier,
    at,
    event_body,
    events_of,
    get_order,
    job_parts,
    job_with_lines,
    line_of,
    msg_id,
    new_tenant,
    ordered,
    pin_stock,
    place_order,
    push,
    signed_headers,
    supplier_skus,
)
from tests.conftest import Api, FakeClock
from tests.integration.worker_support import worker_services
from tests.redis_support import flushed_redis, redis_settings
from tests.sandbox_fixture import SandboxServer
from workers.queue import ArqQueue
from workers.tasks import TASKS

REDIS_DB = 7  # this module's own Redis database


@pytest.fixture
async def services(settings: Settings, clock: FakeClock, clean_db: None) -> AsyncIterator[Services]:
    """What a worker holds, on the test's clock; supplier calls retry fast and the breaker cools down
    in a second, so a healed supplier is polled again within the test."""
    http = HttpSettings(deadline=15, max_attempts=3, backoff_base=0.05, backoff_cap=0.2, breaker_cool_down=1.0)
    async with worker_services(settings, clock, http) as built:
        yield built


async def poll(services: Services, supplier_id: int, clock: FakeClock, minutes: float = 5) -> PollReport:
    """A poll a few minutes after the last thing that happened (so what it records is told apart)."""
    clock.advance(minutes=minutes)
    return await poll_supplier(services, supplier_id, now=clock.now)


async def supplier_second_after(moment: datetime) -> None:
    """Wait until the supplier's clock (the sandbox's: the real one, not the test's) is a whole second
    past `moment`, so the `as_of` of its next feed answer (whole seconds) is later than `moment`."""
    later = moment.replace(microsecond=0) + timedelta(seconds=1)
    await asyncio.sleep(max(0.0, (later - datetime.now(UTC)).total_seconds()) + 0.05)


async def supplier(api: Api, supplier_id: int) -> dict[str, Any]:
    response = await api.client.get(f"{SUPPLIERS}/{supplier_id}", headers=await api.login(MANAGER))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def history(line: dict[str, Any]) -> list[tuple[str, datetime | None, datetime]]:
    return [(r["source"], r["old_eta"] and at(r["old_eta"]), at(r["new_eta"])) for r in line["eta_history"]]


# --- what a poll learns ------------------------------------------------------------------------------


async def test_a_slipped_eta_is_recorded_with_source_poll_and_polling_again_changes_nothing(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed = await place_order(api, sandbox)
    ref, promised = placed.job["ref"], at(placed.order["lines"][0]["promised_at"])
    remote = sandbox.advance(placed.supplier_ref, "slip", tenant=placed.tenant, hours=30)["order"]
    slipped = at(remote["lines"][0]["eta"])
    assert slipped == promised + timedelta(hours=30)

    report = await poll(services, placed.supplier["id"], clock)

    assert (report.orders_checked, report.facts_applied, report.lines_changed, report.failures) == (1, 1, 1, 0)
    assert report.healthy is True and report.stock_items == 1
    line = line_of(await job_parts(api, ref), placed.line_id)
    assert at(line["eta"]) == slipped and at(line["promised_at"]) == promised
    assert history(line) == [("order", None, promised), ("poll", promised, slipped)]
    assert at(line["eta_history"][-1]["learned_at"]) == clock.now
    (revised,) = await events_of(api, ref, "eta_revised")
    assert revised["data"]["source"] == "poll" and revised["actor"] is None
    assert (await supplier(api, placed.supplier["id"]))["last_ok_at"] is not None

    again = await poll(services, placed.supplier["id"], clock)

    assert (again.orders_checked, again.facts_applied, again.lines_changed, again.failures) == (1, 0, 0, 0)
    assert line_of(await job_parts(api, ref), placed.line_id) == line
    assert len(await events_of(api, ref, "eta_revised")) == 1


async def test_a_partial_then_full_shipment_is_recorded_once_each(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed = await place_order(api, sandbox, quantity=2)
    sandbox.advance(placed.supplier_ref, "ship", tenant=placed.tenant, quantity=1)

    first = await poll(services, placed.supplier["id"], clock)

    order = await get_order(api, placed.order["id"])
    assert order["status"] == "partially_shipped" and order["tracking_number"].startswith("SBX")
    assert (order["lines"][0]["shipped_quantity"], order["lines"][0]["status"]) == (1, "ordered")
    assert first.facts_applied == 1

    assert (await poll(services, placed.supplier["id"], clock)).lines_changed == 0
    sandbox.advance(placed.supplier_ref, "ship", tenant=placed.tenant)
    await poll(services, placed.supplier["id"], clock)

    order = await get_order(api, placed.order["id"])
    assert order["status"] == "shipped"
    assert (order["lines"][0]["shipped_quantity"], order["lines"][0]["status"]) == (2, "shipped")
    shipped = await events_of(api, placed.job["ref"], "part_shipped")
    assert [(e["data"]["shipped_quantity"], e["data"]["source"]) for e in shipped] == [(1, "poll"), (2, "poll")]


async def test_a_backorder_moves_the_line_and_its_eta_then_a_confirmation_moves_it_back(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed = await place_order(api, sandbox)
    promised = at(placed.order["lines"][0]["promised_at"])
    remote = sandbox.advance(placed.supplier_ref, "backorder", tenant=placed.tenant)["order"]
    later = at(remote["lines"][0]["eta"])

    await poll(services, placed.supplier["id"], clock)

    line = line_of(await job_parts(api, placed.job["ref"]), placed.line_id)
    assert (line["status"], at(line["eta"])) == ("backordered", later)
    assert history(line)[-1] == ("poll", promised, later)
    (backordered,) = await events_of(api, placed.job["ref"], "part_backordered")
    assert (backordered["data"]["source"], backordered["data"]["backordered"]) == ("poll", True)

    await asyncio.sleep(1.1)  # the supplier's clock has whole seconds: its next statement is newer
    sandbox.advance(placed.supplier_ref, "confirm", tenant=placed.tenant)
    await poll(services, placed.supplier["id"], clock)

    line = line_of(await job_parts(api, placed.job["ref"]), placed.line_id)
    assert line["status"] == "ordered"
    assert [e["data"]["backordered"] for e in await events_of(api, placed.job["ref"], "part_backordered")] == [
        True,
        False,
    ]


async def test_a_cancellation_by_the_supplier_closes_the_order_and_it_is_not_asked_about_again(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed = await place_order(api, sandbox)
    sandbox.advance(placed.supplier_ref, "cancel", tenant=placed.tenant, reason="discontinued")

    report = await poll(services, placed.supplier["id"], clock)

    assert report.facts_applied == 1
    order = await get_order(api, placed.order["id"])
    assert order["status"] == "cancelled" and order["lines"][0]["status"] == "cancelled"
    (cancelled,) = await events_of(api, placed.job["ref"], "part_cancelled")
    assert cancelled["data"]["by_supplier"] is True
    again = await poll(services, placed.supplier["id"], clock)
    assert (again.orders_checked, again.facts_applied) == (0, 0)


# --- a poll and a webhook saying the same thing -------------------------------------------------------


async def test_a_webhook_and_a_poll_reporting_the_same_fact_apply_it_once(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed = await place_order(api, sandbox, secrets=[NEW_SECRET])
    ref, supplier_id = placed.job["ref"], placed.supplier["id"]
    promised = at(placed.order["lines"][0]["promised_at"])

    async def pushed(remote: dict[str, Any]) -> str:
        """The supplier's push of the slip it just made: its own time and ETA, as the sandbox sends it."""
        clock.advance(minutes=1)
        body = event_body(
            "order.eta_revised", at(remote["updated_at"]), order_id=remote["id"], po=remote["po"], eta=remote["eta"]
        )
        response = await push(api, supplier_id, body, signed_headers(NEW_SECRET, msg_id(), clock.now, body))
        assert response.status_code == 200, response.text
        outcome: str = response.json()["outcome"]
        return outcome

    # The webhook first, then the poll: the poll finds nothing new.
    first = sandbox.advance(placed.supplier_ref, "slip", tenant=placed.tenant, hours=10)["order"]
    assert await pushed(first) == "applied"
    report = await poll(services, supplier_id, clock)
    assert (report.orders_checked, report.lines_changed) == (1, 0)

    # The poll first, then the webhook: the webhook is acknowledged and changes nothing.
    await asyncio.sleep(1.1)  # a new second at the supplier: a new fact
    second = sandbox.advance(placed.supplier_ref, "slip", tenant=placed.tenant, hours=10)["order"]
    assert (await poll(services, supplier_id, clock)).lines_changed == 1
    assert await pushed(second) == "applied"

    line = line_of(await job_parts(api, ref), placed.line_id)
    ten, twenty = promised + timedelta(hours=10), promised + timedelta(hours=20)
    assert history(line) == [("order", None, promised), ("webhook", promised, ten), ("poll", ten, twenty)]
    assert [e["data"]["source"] for e in await events_of(api, ref, "eta_revised")] == ["webhook", "poll"]


# --- faults -------------------------------------------------------------------------------------------


async def test_a_failing_supplier_is_marked_stale_keeping_its_last_good_answer_and_healing_clears_it(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed = await place_order(api, sandbox)
    supplier_id = placed.supplier["id"]
    assert (await poll(services, supplier_id, clock)).healthy is True
    good_at = clock.now
    sandbox.advance(placed.supplier_ref, "slip", tenant=placed.tenant, hours=5)
    sandbox.set_faults(placed.tenant, error_rate=1.0)

    failed = await poll(services, supplier_id, clock)
    failed_at = clock.now

    # Its first call failed (5xx after retries): the rest were not made, nothing was applied.
    assert failed.healthy is False and (failed.failures, failed.calls_skipped) == (1, 1), failed
    assert failed.lines_changed == 0 and "answered 50" in failed.errors[0], failed.errors
    state = await supplier(api, supplier_id)
    assert at(state["stale_since"]) == failed_at and at(state["last_ok_at"]) == good_at
    line = line_of(await job_parts(api, placed.job["ref"]), placed.line_id)
    assert [r["source"] for r in line["eta_history"]] == ["order"]

    # Failing on until its breaker opens: still stale since the first failure, last good answer kept.
    for _ in range(6):
        again = await poll(services, supplier_id, clock)
        assert again.healthy is False
        if "circuit breaker open" in again.errors[0]:
            break
    else:
        raise AssertionError("the breaker never opened")
    state = await supplier(api, supplier_id)
    assert at(state["stale_since"]) == failed_at and at(state["last_ok_at"]) == good_at

    sandbox.set_faults(placed.tenant, error_rate=0.0)
    await asyncio.sleep(1.1)  # the breaker's cool-down: the next call is its trial
    healed = await poll(services, supplier_id, clock)

    assert healed.healthy is True and healed.failures == 0 and healed.lines_changed == 1
    state = await supplier(api, supplier_id)
    assert state["stale_since"] is None and at(state["last_ok_at"]) == clock.now
    line = line_of(await job_parts(api, placed.job["ref"]), placed.line_id)
    assert [r["source"] for r in line["eta_history"]] == ["order", "poll"]


def _dice_429_then_fine(sandbox: SandboxServer, rate: float, fine: int) -> str:
    """A fresh tenant whose fault dice, with only `rate_429` on, answer 429 once then `fine` times not."""
    for _ in range(2000):
        tenant = new_tenant()
        rng = seeded(sandbox.seed, tenant, "faults")
        if rng.random() < rate and all(rng.random() >= rate for _ in range(fine)):
            return tenant
    raise AssertionError("no tenant with the wanted dice")


async def test_a_429_is_retried_after_its_retry_after(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    tenant = _dice_429_then_fine(sandbox, 0.5, 4)
    placed = await place_order(api, sandbox, tenant=tenant)  # no fault on yet: no dice drawn
    sandbox.advance(placed.supplier_ref, "slip", tenant=tenant, hours=3)
    sandbox.set_faults(tenant, rate_429=0.5, retry_after_seconds=2)

    started = time.monotonic()
    report = await poll(services, placed.supplier["id"], clock)
    elapsed = time.monotonic() - started

    # One of the two calls was told to come back in 2 s (backoff alone would be under 0.2 s here).
    assert elapsed >= 2.0, elapsed
    assert report.healthy is True and report.failures == 0 and report.lines_changed == 1
    assert (await supplier(api, placed.supplier["id"]))["stale_since"] is None


async def test_malformed_answers_are_rejected_nothing_is_applied_and_the_supplier_is_stale(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed = await place_order(api, sandbox)
    supplier_id = placed.supplier["id"]
    stock_before = await supplier_skus(api, supplier_id)
    sandbox.advance(placed.supplier_ref, "backorder", tenant=placed.tenant)
    sandbox.set_faults(placed.tenant, malformed_rate=1.0)

    report = await poll(services, supplier_id, clock)

    assert report.healthy is False and report.failures == 2 and report.stock_items == 0
    assert report.orders_checked == 0 and report.facts_applied == 0
    assert all("invalid answer" in e for e in report.errors), report.errors
    line = line_of(await job_parts(api, placed.job["ref"]), placed.line_id)
    assert line["status"] == "ordered" and [r["source"] for r in line["eta_history"]] == ["order"]
    assert await supplier_skus(api, supplier_id) == stock_before
    assert at((await supplier(api, supplier_id))["stale_since"]) == clock.now

    sandbox.set_faults(placed.tenant, malformed_rate=0.0)
    healed = await poll(services, supplier_id, clock)
    assert healed.healthy is True and healed.facts_applied == 1
    assert line_of(await job_parts(api, placed.job["ref"]), placed.line_id)["status"] == "backordered"


# --- stock -------------------------------------------------------------------------------------------


async def test_stock_is_recorded_for_the_skus_on_open_lines_under_the_suppliers_codes(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    ours = "BAT-IP13"  # our code for what the suppliers call IPH13-BATTERY
    await add_part(api, SKU)
    await add_part(api, ours, "our iPhone 13 battery")
    await add_part(api, "IPH14-BATTERY", "iPhone 14 battery")
    tenant, other = new_tenant(), new_tenant()
    for name in (tenant, other):
        pin_stock(sandbox, name, SKU, 7)
        pin_stock(sandbox, name, "IPH14-BATTERY", 3)
    polled = await add_supplier(api, sandbox, tenant)
    elsewhere = await add_supplier(api, sandbox, other)
    mapped = await api.client.put(
        f"{SUPPLIERS}/{polled['id']}/skus/{SKU2}", json={"sku": ours}, headers=await api.login(MANAGER)
    )
    assert mapped.status_code == 200, mapped.text
    await job_with_lines(api, [(SKU, 1), (ours, 2)])  # needed: any supplier may be asked
    # Ordered from the other supplier: not this one's business.
    view = await job_with_lines(api, [("IPH14-BATTERY", 1)])
    await ordered(api, view["ref"], view["lines"][0]["id"], elsewhere["id"])

    report = await poll(services, polled["id"], clock)

    assert (report.skus_asked, report.stock_items, report.unknown_skus, report.healthy) == (2, 2, 0, True)
    skus = await supplier_skus(api, polled["id"])
    assert set(skus) == {SKU, SKU2}
    assert (skus[SKU]["sku"], skus[SKU]["available"], at(skus[SKU]["observed_at"])) == (SKU, 7, clock.now)
    assert (skus[SKU2]["sku"], at(skus[SKU2]["observed_at"])) == (ours, clock.now)


async def test_a_stock_feed_supplier_is_polled_for_stock_only(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    await add_part(api, SKU)
    feed = await add_supplier(api, sandbox, new_tenant(), adapter="csv_feed")
    await job_with_lines(api, [(SKU, 1)])

    report = await poll(services, feed["id"], clock)

    assert (report.stock_items, report.orders_checked, report.healthy) == (1, 0, True)
    assert at((await supplier_skus(api, feed["id"]))[SKU]["observed_at"]) == clock.now


# --- the schedule ------------------------------------------------------------------------------------


class FakeQueue:
    """Records what is queued; like arq, a job id already queued is not queued again."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.fail = fail

    async def enqueue(self, task: str, *, job_id: str, **kwargs: Any) -> bool:
        if self.fail:
            raise ConnectionError("redis is away")
        known = any(call[1] == job_id for call in self.calls)
        self.calls.append((task, job_id, kwargs))
        return not known

    def supplier_ids(self) -> list[int]:
        return [kwargs["supplier_id"] for _, _, kwargs in self.calls]


async def new_supplier(api: Api, sandbox: SandboxServer, *, interval: int, active: bool = True) -> int:
    body = {
        "name": f"Supplier {new_tenant()}",
        "adapter": "rest_json",
        "base_url": sandbox.tenant_url(new_tenant()),
        "poll_interval_seconds": interval,
        "active": active,
    }
    response = await api.client.post(SUPPLIERS, json=body, headers=await api.login(MANAGER))
    assert response.status_code == 201, response.text
    supplier_id: int = response.json()["id"]
    return supplier_id


async def test_only_due_suppliers_are_queued_and_each_slot_once(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    often = await new_supplier(api, sandbox, interval=60)
    rarely = await new_supplier(api, sandbox, interval=600)
    await new_supplier(api, sandbox, interval=60, active=False)
    queue = FakeQueue()
    start = clock.now

    assert sorted(await poll_due_suppliers(services, now=start, queue=queue)) == sorted([often, rarely])
    slot = int(start.timestamp())
    assert sorted(queue.calls, key=lambda c: c[1]) == sorted(
        [
            ("poll_supplier", f"poll:{often}:{slot // 60}", {"supplier_id": often}),
            ("poll_supplier", f"poll:{rarely}:{slot // 600}", {"supplier_id": rarely}),
        ],
        key=lambda c: c[1],
    )

    # Another worker's cron at the same moment, then 30 s later: nothing is due.
    assert await poll_due_suppliers(services, now=start, queue=queue) == []
    assert await poll_due_suppliers(services, now=start + timedelta(seconds=30), queue=queue) == []
    assert len(queue.calls) == 2

    # A minute on, two workers at once: the frequent one is queued once, the other is not due.
    later = start + timedelta(seconds=60)
    both = await asyncio.gather(*(poll_due_suppliers(services, now=later, queue=queue) for _ in range(2)))
    assert sorted(both) == [[], [often]]
    assert queue.supplier_ids() == [*queue.supplier_ids()[:2], often]

    # Ten minutes after the start both are due again, each in a new slot.
    queue.calls.clear()
    end = start + timedelta(seconds=600)
    assert sorted(await poll_due_suppliers(services, now=end, queue=queue)) == sorted([often, rarely])
    assert {job for _, job, _ in queue.calls} == {
        f"poll:{often}:{int(end.timestamp()) // 60}",
        f"poll:{rarely}:{int(end.timestamp()) // 600}",
    }


async def test_a_poll_the_queue_could_not_take_is_claimed_again_by_the_next_run(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    supplier_id = await new_supplier(api, sandbox, interval=300)

    with pytest.raises(ConnectionError):
        await poll_due_suppliers(services, now=clock.now, queue=FakeQueue(fail=True))

    queue = FakeQueue()
    clock.advance(minutes=1)
    assert await poll_due_suppliers(services, now=clock.now, queue=queue) == [supplier_id]


# --- a real arq worker on a real Redis -----------------------------------------------------------------


@pytest.fixture
async def redis() -> AsyncIterator[ArqRedis]:
    async with flushed_redis(REDIS_DB) as pool:
        yield pool


async def run_worker(services: Services) -> Worker:
    """An arq worker with every task, in burst mode: it runs what is queued (and what that queues) and stops."""
    pool = await create_pool(redis_settings(REDIS_DB))
    worker = Worker(
        functions=[func(task, name=name) for name, task in TASKS.items()],  # type: ignore[arg-type]
        redis_pool=pool,
        burst=True,
        poll_delay=0,
        handle_signals=False,
        ctx={"services": services, "queue": ArqQueue(pool)},
    )
    try:
        await asyncio.wait_for(worker.main(), timeout=60)
    finally:
        await worker.close()
    return worker


async def test_an_arq_worker_runs_the_polling_cron_and_the_poll_it_queues(
    api: Api, sandbox: SandboxServer, clock: FakeClock, settings: Settings, redis: ArqRedis
) -> None:
    placed = await place_order(api, sandbox)
    remote = sandbox.advance(placed.supplier_ref, "slip", tenant=placed.tenant, hours=12)["order"]
    _, cipher = required_secrets(settings)
    services = build_services(settings, cipher, clock=clock)
    queue = ArqQueue(redis)
    try:
        clock.advance(minutes=1)
        assert await queue.enqueue("poll_suppliers", job_id="cron:poll_suppliers:1")
        worker = await run_worker(services)

        assert (worker.jobs_complete, worker.jobs_failed) == (2, 0)
        supplier_id = placed.supplier["id"]
        job_id = f"poll:{supplier_id}:{int(clock.now.timestamp()) // 900}"
        poll_job = Job(job_id, redis)
        assert await poll_job.status() is JobStatus.complete
        result = await poll_job.result(timeout=5)
        assert (result["orders_checked"], result["lines_changed"], result["healthy"]) == (1, 1, True)
        line = line_of(await job_parts(api, placed.job["ref"]), placed.line_id)
        assert history(line)[-1][0] == "poll" and at(line["eta"]) == at(remote["lines"][0]["eta"])

        # The same slot queued again (another worker's cron, a redelivery): arq keeps the id once.
        assert not await queue.enqueue("poll_supplier", job_id=job_id, supplier_id=supplier_id)
        assert await queue.enqueue("poll_supplier", job_id=f"{job_id}-manual", supplier_id=supplier_id)
        again = await run_worker(services)
        assert (again.jobs_complete, again.jobs_failed) == (1, 0)
        manual = await Job(f"{job_id}-manual", redis).result(timeout=5)
        assert (manual["orders_checked"], manual["lines_changed"]) == (1, 0)
        assert len(await events_of(api, placed.job["ref"], "eta_revised")) == 1
    finally:
        await services.aclose()


# --- the changes feed ----------------------------------------------------------------------------------


def sandbox_requests(sandbox: SandboxServer, tenant: str) -> dict[str, int]:
    """The API requests the tenant received so far, per operation (the sandbox counts them)."""
    response = sandbox.client.get(f"{sandbox.tenant_url(tenant)}/_sandbox/stats")
    response.raise_for_status()
    counts: dict[str, int] = response.json()["requests"]
    return counts


async def more_orders(api: Api, placed: Any, count: int) -> list[dict[str, Any]]:
    """`count` more jobs whose line is ordered from the same supplier as `placed`."""
    orders = []
    for _ in range(count):
        view = await job_with_lines(api, [(SKU, 1)])
        orders.append(await ordered(api, view["ref"], view["lines"][0]["id"], placed.supplier["id"]))
    return orders


async def test_one_poll_applies_every_change_from_the_feed_in_one_call(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed = await place_order(api, sandbox)
    slipped, shipped, backordered, cancelled = [placed.order, *await more_orders(api, placed, 3)]
    tenant, supplier_id = placed.tenant, placed.supplier["id"]
    remote = sandbox.advance(slipped["supplier_ref"], "slip", tenant=tenant, hours=30)["order"]
    sandbox.advance(shipped["supplier_ref"], "ship", tenant=tenant)
    sandbox.advance(backordered["supplier_ref"], "backorder", tenant=tenant)
    sandbox.advance(cancelled["supplier_ref"], "cancel", tenant=tenant)
    before = sandbox_requests(sandbox, tenant)

    report = await poll(services, supplier_id, clock)

    asked = sandbox_requests(sandbox, tenant)
    assert asked.get("order_changes", 0) - before.get("order_changes", 0) == 1
    assert asked.get("get_order", 0) == before.get("get_order", 0)  # no order asked about one by one
    assert report.feed_since is None and report.feed_watermark is not None
    assert (report.feed_changes, report.orders_checked, report.facts_applied, report.failures) == (4, 4, 4, 0)
    line = (await get_order(api, slipped["id"]))["lines"][0]
    assert at(line["eta"]) == at(remote["lines"][0]["eta"])
    assert (await get_order(api, shipped["id"]))["status"] == "shipped"
    assert (await get_order(api, backordered["id"]))["lines"][0]["status"] == "backordered"
    assert (await get_order(api, cancelled["id"]))["status"] == "cancelled"
    (revised,) = await events_of(api, placed.job["ref"], "eta_revised")
    assert revised["data"]["source"] == "poll"


async def test_the_next_poll_reads_the_feed_from_the_watermark_and_changes_nothing(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    placed = await place_order(api, sandbox)
    supplier_id = placed.supplier["id"]
    sandbox.advance(placed.supplier_ref, "slip", tenant=placed.tenant, hours=8)
    first = await poll(services, supplier_id, clock)
    assert first.lines_changed == 1 and first.feed_watermark is not None

    # With the default overlap the last minute is read again: applied already, so nothing changes.
    again = await poll(services, supplier_id, clock)
    assert again.feed_since == first.feed_watermark
    assert (again.feed_changes, again.orders_checked, again.facts_applied, again.lines_changed) == (1, 1, 0, 0)
    assert len(await events_of(api, placed.job["ref"], "eta_revised")) == 1

    # Without the overlap, the feed from the watermark holds only what changed after it.
    monkeypatch.setattr(polling_usecase, "FEED_OVERLAP", timedelta(0))
    await asyncio.sleep(1.1)  # the feed's `as_of` has whole seconds: a second after the last change
    read = await poll(services, supplier_id, clock)
    assert read.feed_watermark is not None
    await supplier_second_after(read.feed_watermark)  # else the next `as_of` may be the same second
    quiet = await poll(services, supplier_id, clock)
    assert (quiet.feed_changes, quiet.orders_checked, quiet.failures) == (0, 0, 0)
    assert quiet.feed_watermark is not None and quiet.feed_since is not None
    assert quiet.feed_watermark > quiet.feed_since

    sandbox.advance(placed.supplier_ref, "slip", tenant=placed.tenant, hours=2)
    newer = await poll(services, supplier_id, clock)
    assert (newer.feed_changes, newer.facts_applied, newer.lines_changed) == (1, 1, 1)


async def test_a_poll_after_thousands_of_changes_makes_a_handful_of_calls(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed = await place_order(api, sandbox)
    ours = [placed.order, *await more_orders(api, placed, 2)]
    tenant, supplier_id = placed.tenant, placed.supplier["id"]
    # 2,500 orders of other customers of this supplier, changed since: the feed has three pages.
    created = sandbox.client.post(
        f"{sandbox.tenant_url(tenant)}/_sandbox/orders/bulk",
        json={"orders": [{"po": f"OTHER-{n:05d}", "lines": [{"sku": SKU, "quantity": 1}]} for n in range(2500)]},
    )
    assert created.status_code == 201, created.text
    for order in ours:
        sandbox.advance(order["supplier_ref"], "slip", tenant=tenant, hours=6)
    before = sandbox_requests(sandbox, tenant)

    report = await poll(services, supplier_id, clock)

    counts = sandbox_requests(sandbox, tenant).items()
    asked = {op: count - before.get(op, 0) for op, count in counts if count > before.get(op, 0)}
    assert asked == {"order_changes": 3, "stock": 1}, asked
    assert (report.feed_changes, report.orders_checked, report.facts_applied, report.failures) == (2503, 3, 3, 0)
    for order in ours:
        assert [r["source"] for r in (await get_order(api, order["id"]))["lines"][0]["eta_history"]][-1] == "poll"


async def test_an_order_whose_supplier_id_we_never_learned_is_found_in_the_feed_by_its_po(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed = await place_order(api, sandbox)
    # As if the supplier's answer to the order had been lost: the order is ours, its id there unknown.
    async with services.db.transaction() as uow:
        await uow.connection.execute(
            update(order_t).where(order_t.c.id == placed.order["id"]).values(supplier_ref=None)
        )
    sandbox.advance(placed.supplier_ref, "ship", tenant=placed.tenant)

    report = await poll(services, placed.supplier["id"], clock)

    assert (report.orders_without_ref, report.orders_checked, report.facts_applied) == (1, 1, 1)
    order = await get_order(api, placed.order["id"])
    assert (order["supplier_ref"], order["status"]) == (placed.supplier_ref, "shipped")
    assert (await poll(services, placed.supplier["id"], clock)).orders_without_ref == 0
