"""The technician's queue: a branch's open jobs that need bench work, express first, then by due date,
then by parts readiness; a job waiting for parts after every job that can be worked on now."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, update

from service.persistence.tables import line_t
from service.services import Services
from tests.api.helpers import advance_to, approve, assert_problem, create_job, estimate, get_job, move
from tests.api.parts_helpers import SKU, SKU2, add_lines, add_part, at
from tests.conftest import Api, FakeClock

QUEUE = "/api/v1/queue"


async def queue(api: Api, user: str = "tech.valence", **params: Any) -> dict[str, Any]:
    response = await api.client.get(QUEUE, params=params, headers=await api.login(user))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refs(api: Api, user: str = "tech.valence", **params: Any) -> list[str]:
    return [item["ref"] for item in (await queue(api, user, **params))["items"]]


async def waiting_for(api: Api, *skus: str, tier: str = "standard") -> dict[str, Any]:
    """A diagnosed job that got part lines (needed, not ordered yet): it is in awaiting_parts."""
    job = await move(api, "tech.valence", await create_job(api, tier=tier), "diagnosing")
    response = await add_lines(api, job["ref"], {"lines": [{"sku": sku, "quantity": 1} for sku in skus]})
    assert response.status_code == 201, response.text
    assert response.json()["stage"] == "awaiting_parts"
    return job


async def set_lines(services: Services, ref: str, status: str, eta: datetime | None = None) -> None:
    """What ordering and receiving would have done to the job's lines (written directly)."""
    job_id = int(ref.removeprefix("AT-"))
    async with services.db.transaction() as uow:
        await uow.connection.execute(update(line_t).where(line_t.c.job_id == job_id).values(status=status, eta=eta))


async def test_bench_work_in_order(api: Api, services: Services, clock: FakeClock) -> None:
    await add_part(api, SKU)
    waiting = await waiting_for(api, SKU)  # standard, no date for its part yet
    clock.advance(minutes=5)
    waiting_express = await waiting_for(api, SKU, tier="express")
    await set_lines(services, waiting_express["ref"], "shipped", clock.now + timedelta(days=1))
    clock.advance(minutes=5)
    parts_in = await waiting_for(api, SKU)
    await set_lines(services, parts_in["ref"], "received")
    clock.advance(minutes=5)
    received = await create_job(api)
    clock.advance(minutes=5)
    express = await create_job(api, tier="express")
    repairing = await advance_to(api, await create_job(api), "repairing")
    quality = await advance_to(api, await create_job(api), "quality_check")
    # Not bench work: waiting for the customer, on hold, ready, closed; and another branch's.
    awaiting_approval = await advance_to(api, await create_job(api), "awaiting_approval")
    await move(api, "tech.valence", await create_job(api), "on_hold")
    await advance_to(api, await create_job(api), "ready_for_pickup")
    await move(api, "desk.valence", await create_job(api), "cancelled")
    await create_job(api, "desk.guilherand", tier="express")

    body = await queue(api)
    assert body["branch"] == "valence"
    assert [item["ref"] for item in body["items"]] == [
        express["ref"],  # express first
        parts_in["ref"],  # then the earliest promise; its parts are all in, so it is workable
        received["ref"],
        repairing["ref"],
        quality["ref"],
        waiting_express["ref"],  # waiting for parts: after every workable job, whatever its tier
        waiting["ref"],  # standard, its part not even ordered
    ]
    assert awaiting_approval["ref"] not in [item["ref"] for item in body["items"]]

    by_ref = {item["ref"]: item for item in body["items"]}
    shipped = by_ref[waiting_express["ref"]]
    assert at(shipped.pop("parts_eta")) == clock.now - timedelta(minutes=15) + timedelta(days=1)
    assert shipped == {
        "ref": waiting_express["ref"],
        "stage": "awaiting_parts",
        "tier": "express",
        "due_at": waiting_express["due_at"],
        "technician": "tech.valence",
        "device": {"brand": "Apple", "model": "iPhone 13"},
        "fault_category": "screen",
        "parts_ready": False,
        "waiting_for_parts": True,
        "waiting_for_customer": False,
        "at_risk": True,  # promised in 4 business hours, its part comes tomorrow
    }
    assert (by_ref[waiting["ref"]]["parts_eta"], by_ref[waiting["ref"]]["waiting_for_parts"]) == (None, True)
    assert by_ref[parts_in["ref"]]["stage"] == "awaiting_parts"
    assert (by_ref[parts_in["ref"]]["parts_ready"], by_ref[parts_in["ref"]]["waiting_for_parts"]) == (True, False)
    assert by_ref[received["ref"]]["technician"] is None
    assert (by_ref[received["ref"]]["parts_ready"], by_ref[received["ref"]]["at_risk"]) == (True, False)


async def test_a_job_waiting_for_parts_is_never_on_top(api: Api, services: Services, clock: FakeClock) -> None:
    await add_part(api, SKU)
    waiting = await waiting_for(api, SKU, tier="express")
    await set_lines(services, waiting["ref"], "ordered", clock.now + timedelta(hours=1))
    clock.advance(days=5)
    late_standard = await create_job(api)
    assert await refs(api) == [late_standard["ref"], waiting["ref"]]

    # Its parts arrive: it is workable, and express goes first again.
    await set_lines(services, waiting["ref"], "received")
    assert await refs(api) == [waiting["ref"], late_standard["ref"]]
    item = (await queue(api))["items"][0]
    assert (item["parts_ready"], item["parts_eta"], item["waiting_for_parts"]) == (True, None, False)


async def test_a_job_whose_estimate_the_customer_has_not_approved_is_never_on_top(
    api: Api, services: Services, clock: FakeClock
) -> None:
    # Express, no pre-approved budget: estimated, then its part ordered before the customer answered.
    await add_part(api, SKU)
    express = await move(api, "tech.valence", await create_job(api, tier="express"), "diagnosing")
    express = await estimate(api, "tech.valence", express, 5000)
    response = await add_lines(api, express["ref"], {"sku": SKU, "quantity": 1})
    assert response.status_code == 201, response.text
    await set_lines(services, express["ref"], "received")
    clock.advance(minutes=5)
    standard = await create_job(api)

    # Its parts are in, but no technician can start the repair: the standard job goes first.
    assert await refs(api) == [standard["ref"], express["ref"]]
    item = (await queue(api))["items"][1]
    assert (item["parts_ready"], item["waiting_for_parts"], item["waiting_for_customer"]) == (True, False, True)

    # The customer approves: it is workable, and express goes first again.
    await approve(api, "desk.valence", await get_job(api, "desk.valence", express["ref"]), True)
    assert await refs(api) == [express["ref"], standard["ref"]]
    assert (await queue(api))["items"][0]["waiting_for_customer"] is False


async def test_parts_readiness_orders_jobs_due_at_the_same_time(api: Api, services: Services) -> None:
    await add_part(api, SKU)
    await add_part(api, SKU2, "iPhone 13 battery")
    jobs = [await waiting_for(api, SKU, SKU2) for _ in range(3)]  # same clock: same due date
    now = datetime.fromisoformat(jobs[0]["created_at"].replace("Z", "+00:00"))
    await set_lines(services, jobs[0]["ref"], "ordered", now + timedelta(days=3))
    await set_lines(services, jobs[1]["ref"], "ordered", now + timedelta(days=1))
    assert await refs(api) == [jobs[1]["ref"], jobs[0]["ref"], jobs[2]["ref"]]  # soonest, later, no date


async def test_the_queue_is_the_callers_branch(api: Api) -> None:
    valence = await create_job(api)
    guilherand = await create_job(api, "desk.guilherand")
    for user in ("tech.valence", "desk.valence", "manager.valence"):
        assert await refs(api, user) == [valence["ref"]]
    assert await refs(api, "tech.guilherand") == [guilherand["ref"]]
    assert await refs(api, "tech.valence", branch="valence") == [valence["ref"]]
    other = await api.client.get(QUEUE, params={"branch": "guilherand"}, headers=await api.login("tech.valence"))
    assert_problem(other, 404)
    # A chain-wide manager names the branch.
    assert_problem(await api.client.get(QUEUE, headers=await api.login("manager")), 422, "branch")
    assert await refs(api, "manager", branch="guilherand") == [guilherand["ref"]]


async def test_limit(api: Api, clock: FakeClock) -> None:
    created = []
    for _ in range(4):
        created.append((await create_job(api))["ref"])
        clock.advance(minutes=1)
    assert await refs(api, limit=2) == created[:2]
    assert await refs(api) == created  # 50 by default
    tech = await api.login("tech.valence")
    for bad in (0, 201, "x"):
        assert_problem(await api.client.get(QUEUE, params={"limit": bad}, headers=tech), 422, "limit")
    assert (await api.client.get(QUEUE, params={"limit": 200}, headers=tech)).status_code == 200


async def test_express_at_risk_as_its_promise_nears(api: Api, clock: FakeClock) -> None:
    job = await create_job(api, tier="express")  # Monday 10:00, promised by 14:00
    assert (await queue(api))["items"][0]["at_risk"] is False
    clock.advance(hours=3, minutes=30)  # 13:30: an hour at the bench ends after 14:00
    item = (await queue(api))["items"][0]
    assert (item["ref"], item["at_risk"]) == (job["ref"], True)


async def test_the_queue_reads_a_fixed_number_of_statements(api: Api) -> None:
    """Part lines of all the jobs in one query, not one per job."""
    await add_part(api, SKU)
    engine = api.client.app.state.db.engine.sync_engine
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    async def statements_for_queue() -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            await queue(api)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    await waiting_for(api, SKU)
    few = await statements_for_queue()
    assert few >= 2  # its bench jobs and their part lines, at least
    for _ in range(5):
        await waiting_for(api, SKU)
    assert len((await queue(api))["items"]) == 6
    assert await statements_for_queue() == few
