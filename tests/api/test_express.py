"""Express capacity per branch and day: intake shows the slots left and refuses express beyond capacity
(a manager may override, recorded); branch settings set the capacity and the storage slots."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select

from domain.model import parse_ref
from service.persistence.tables import outbox_t
from service.services import Services
from tests.api.helpers import JOBS, assert_problem, estimate, events, get_job, intake_body, list_refs, move
from tests.api.parts_helpers import SKU, add_lines, add_part
from tests.conftest import Api, FakeClock

CAPACITY = "/api/v1/express/capacity"
BRANCHES = "/api/v1/branches"


async def intake(api: Api, user: str = "desk.valence", **overrides: Any) -> httpx.Response:
    return await api.client.post(JOBS, json=intake_body(**overrides), headers=await api.login(user))


async def express(api: Api, user: str = "desk.valence", **overrides: Any) -> dict[str, Any]:
    response = await intake(api, user, tier="express", **overrides)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


async def set_capacity(api: Api, capacity: int | None, branch: str = "valence") -> None:
    response = await api.client.patch(
        f"{BRANCHES}/{branch}", json={"express_capacity": capacity}, headers=await api.login("manager")
    )
    assert response.status_code == 200, response.text


async def capacity(api: Api, user: str = "desk.valence", **params: str) -> dict[str, Any]:
    response = await api.client.get(CAPACITY, params=params, headers=await api.login(user))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- intake ------------------------------------------------------------------------------------------


async def test_intake_shows_the_express_slots_left_after_it(api: Api) -> None:
    standard = await intake(api)
    assert standard.status_code == 201, standard.text
    assert standard.json()["express_slots_left"] == 6  # the default, ATELIER_EXPRESS_CAPACITY_PER_DAY
    assert (await express(api))["express_slots_left"] == 5
    assert (await express(api))["express_slots_left"] == 4
    # Only the intake answer carries it.
    listed = await api.client.get(JOBS, headers=await api.login("desk.valence"))
    assert {job["express_slots_left"] for job in listed.json()["items"]} == {None}


async def test_express_beyond_capacity_is_refused_with_a_clear_reason(api: Api) -> None:
    await set_capacity(api, 2)
    assert [(await express(api))["express_slots_left"] for _ in range(2)] == [1, 0]

    refused = await intake(api, tier="express")
    body = assert_problem(refused, 409, "tier")
    (error,) = body["errors"]
    assert "capacity" in error["reason"] and "2 of 2" in error["reason"]
    assert len(await list_refs(api)) == 2  # nothing was created

    # Standard is never refused for capacity.
    standard = await intake(api)
    assert standard.status_code == 201, standard.text
    assert standard.json()["express_slots_left"] == 0


async def test_a_manager_overrides_the_capacity_and_it_is_recorded(api: Api) -> None:
    await set_capacity(api, 1)
    await express(api)
    job = await express(api, "manager.valence", express_override_reason="hospital phone, needed tonight")
    assert job["tier"] == "express" and job["express_slots_left"] == 0
    (created,) = [e for e in await events(api, "manager", job["ref"]) if e["kind"] == "created"]
    assert created["actor"] == "manager.valence"
    assert created["data"]["express_override"] == {
        "reason": "hospital phone, needed tonight",
        "by": "manager.valence",
        "capacity": 1,
        "used": 1,
    }
    # The day is now over capacity: the next one is refused again.
    assert_problem(await intake(api, tier="express"), 409, "tier")
    day = await capacity(api)
    assert (day["capacity"], day["used"], day["left"]) == (1, 2, 0)


async def test_an_override_not_needed_is_not_recorded(api: Api) -> None:
    job = await express(api, "manager.valence", express_override_reason="just in case")
    (created,) = [e for e in await events(api, "manager", job["ref"]) if e["kind"] == "created"]
    assert "express_override" not in created["data"]


async def test_only_a_manager_overrides_and_only_an_express_intake(api: Api) -> None:
    await set_capacity(api, 0)
    assert_problem(await intake(api, tier="express", express_override_reason="please"), 403)
    await set_capacity(api, 5)
    assert_problem(await intake(api, tier="express", express_override_reason="please"), 403)  # slots or not
    standard = await intake(api, "manager.valence", express_override_reason="why not")
    assert_problem(standard, 422, "express_override_reason")
    blank = await intake(api, "manager.valence", tier="express", express_override_reason="   ")
    assert_problem(blank, 422, "express_override_reason")
    assert await list_refs(api) == []


async def test_a_cancelled_express_job_frees_its_slot(api: Api) -> None:
    await set_capacity(api, 1)
    job = await express(api)
    assert_problem(await intake(api, tier="express"), 409, "tier")
    await move(api, "desk.valence", job, "cancelled")
    assert (await express(api))["express_slots_left"] == 0


async def test_the_count_is_per_branch_and_per_branch_local_day(api: Api, clock: FakeClock) -> None:
    await set_capacity(api, 1)
    await express(api)  # Monday 10:00 in Valence
    assert_problem(await intake(api, tier="express"), 409, "tier")
    # Guilherand has its own slots.
    assert (await express(api, "desk.guilherand"))["express_slots_left"] == 5

    clock.advance(hours=13, minutes=30)  # 22:30 UTC: still Monday in Paris
    assert (await capacity(api))["date"] == "2026-11-23"
    assert_problem(await intake(api, tier="express"), 409, "tier")
    clock.advance(hours=1)  # 00:30 on Tuesday in Paris, still Monday in UTC
    assert await capacity(api) == {"branch": "valence", "date": "2026-11-24", "capacity": 1, "used": 0, "left": 1}
    assert (await express(api))["express_slots_left"] == 0


async def test_two_desks_cannot_both_take_the_last_slot(live_api: Api, rendezvous: Callable[[int], None]) -> None:
    api = live_api
    await set_capacity(api, 1)
    for desk in ("desk.valence", "manager.valence"):
        await api.login(desk)
    rendezvous(2)
    first, second = await asyncio.gather(
        intake(api, "desk.valence", tier="express"), intake(api, "manager.valence", tier="express")
    )
    assert sorted([first.status_code, second.status_code]) == [201, 409], (first.text, second.text)
    assert len(await list_refs(api)) == 1
    assert (await capacity(api))["used"] == 1


# --- the capacity of the day -------------------------------------------------------------------------


async def test_capacity_of_the_callers_branch(api: Api) -> None:
    await express(api)
    expected = {"branch": "valence", "date": "2026-11-23", "capacity": 6, "used": 1, "left": 5}
    for user in ("desk.valence", "tech.valence", "manager.valence"):
        assert await capacity(api, user) == expected
    assert await capacity(api, "desk.valence", branch="valence") == expected
    assert (await capacity(api, "desk.guilherand"))["used"] == 0


async def test_a_chain_wide_manager_names_the_branch(api: Api) -> None:
    manager = await api.login("manager")
    assert_problem(await api.client.get(CAPACITY, headers=manager), 422, "branch")
    assert (await capacity(api, "manager", branch="guilherand"))["branch"] == "guilherand"
    assert_problem(await api.client.get(CAPACITY, params={"branch": "nowhere"}, headers=manager), 404)
    # Branch staff see their own branch only.
    other = await api.client.get(CAPACITY, params={"branch": "guilherand"}, headers=await api.login("desk.valence"))
    assert_problem(other, 404)


# --- branch settings ---------------------------------------------------------------------------------


async def test_branch_settings_are_read_by_its_staff_and_chain_wide_managers(api: Api) -> None:
    for user in ("desk.valence", "tech.valence", "manager.valence", "manager"):
        response = await api.client.get(f"{BRANCHES}/valence", headers=await api.login(user))
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["code"], body["timezone"]) == ("valence", "Europe/Paris")
        assert (body["express_capacity"], body["storage_slots"]) == (None, None)  # the defaults apply
        assert body["effective_express_capacity"] == 6
        assert body["effective_storage_slots"][:2] == ["A-01", "A-02"]
    for user in ("desk.guilherand", "tech.guilherand"):
        assert_problem(await api.client.get(f"{BRANCHES}/valence", headers=await api.login(user)), 404)
    assert_problem(await api.client.get(f"{BRANCHES}/nowhere", headers=await api.login("manager")), 404)


async def test_a_manager_changes_the_branch_settings(api: Api) -> None:
    manager = await api.login("manager.valence")
    slots = ["Shelf-1", "Shelf-2", "Drawer"]
    response = await api.client.patch(
        f"{BRANCHES}/valence", json={"express_capacity": 3, "storage_slots": slots}, headers=manager
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["express_capacity"], body["effective_express_capacity"]) == (3, 3)
    assert body["storage_slots"] == body["effective_storage_slots"] == slots
    assert (await capacity(api))["capacity"] == 3

    # Only what is sent changes; null goes back to the default.
    response = await api.client.patch(f"{BRANCHES}/valence", json={"express_capacity": None}, headers=manager)
    body = response.json()
    assert (body["express_capacity"], body["effective_express_capacity"], body["storage_slots"]) == (None, 6, slots)
    response = await api.client.patch(f"{BRANCHES}/valence", json={"storage_slots": None}, headers=manager)
    assert response.json()["storage_slots"] is None
    assert (await api.client.get(f"{BRANCHES}/valence", headers=manager)).json()["storage_slots"] is None

    # Zero: no express intake at all that day (a manager may still override).
    await set_capacity(api, 0)
    assert_problem(await intake(api, tier="express"), 409, "tier")


async def test_only_a_manager_of_the_branch_changes_its_settings(api: Api) -> None:
    body = {"express_capacity": 1}
    for user in ("desk.valence", "tech.valence"):
        response = await api.client.patch(f"{BRANCHES}/valence", json=body, headers=await api.login(user))
        assert_problem(response, 403)
    response = await api.client.patch(f"{BRANCHES}/guilherand", json=body, headers=await api.login("manager.valence"))
    assert_problem(response, 404)
    response = await api.client.patch(f"{BRANCHES}/guilherand", json=body, headers=await api.login("manager"))
    assert response.status_code == 200, response.text
    assert (await capacity(api))["capacity"] == 6  # valence unchanged


async def test_invalid_branch_settings_are_422_naming_the_field(api: Api) -> None:
    manager = await api.login("manager.valence")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"express_capacity": -1}, "express_capacity"),
        ({"express_capacity": 1001}, "express_capacity"),
        ({"express_capacity": "5"}, "express_capacity"),
        ({"express_capacity": True}, "express_capacity"),
        ({"express_capacity": 2.5}, "express_capacity"),
        ({"storage_slots": []}, "storage_slots"),
        ({"storage_slots": ["A-01", "A-01"]}, "storage_slots"),
        ({"storage_slots": ["A-01", " "]}, "storage_slots"),
        ({"storage_slots": ["x" * 21]}, "storage_slots"),
        ({"storage_slots": "A-01"}, "storage_slots"),
        ({"storage_slots": ["A\x00"]}, "storage_slots"),
        ({"hours": {}}, "hours"),
    ]
    for body, field in cases:
        response = await api.client.patch(f"{BRANCHES}/valence", json=body, headers=manager)
        assert_problem(response, 422, field)
    settings = (await api.client.get(f"{BRANCHES}/valence", headers=manager)).json()
    assert (settings["express_capacity"], settings["storage_slots"]) == (None, None)  # nothing changed


async def _estimate_requests(services: Services, ref: str) -> int:
    """The "estimate ready" messages asked for the job (outbox entries for the notification workers)."""
    async with services.db.transaction(write=False) as uow:
        rows = await uow.connection.execute(select(outbox_t.c.payload).where(outbox_t.c.job_id == parse_ref(ref)))
        return sum(1 for (payload,) in rows if payload.get("template") == "estimate_ready")


async def test_an_estimate_over_the_budget_asks_the_customer_even_when_parts_are_ordered_first(
    api: Api, services: Services
) -> None:
    await add_part(api, SKU)
    over = await move(api, "tech.valence", await express(api, preapproved_budget_cents=3000), "diagnosing")
    over = await estimate(api, "tech.valence", over, 5000)
    assert await _estimate_requests(services, over["ref"]) == 0  # written, not sent yet
    assert (await add_lines(api, over["ref"], {"sku": SKU, "quantity": 1})).status_code == 201
    assert await _estimate_requests(services, over["ref"]) == 1  # the parts skipped the approval stage

    # Within the budget: approval is skipped on purpose, the customer is not asked.
    within = await move(api, "tech.valence", await express(api, preapproved_budget_cents=9000), "diagnosing")
    within = await estimate(api, "tech.valence", within, 5000)
    assert (await add_lines(api, within["ref"], {"sku": SKU, "quantity": 1})).status_code == 201
    assert await _estimate_requests(services, within["ref"]) == 0

    # Parts first, estimate after: the estimate is what asks.
    late = await move(api, "tech.valence", await express(api), "diagnosing")
    assert (await add_lines(api, late["ref"], {"sku": SKU, "quantity": 1})).status_code == 201
    assert await _estimate_requests(services, late["ref"]) == 0  # adding parts alone tells nobody
    await estimate(api, "tech.valence", await get_job(api, "tech.valence", late["ref"]), 5000)
    assert await _estimate_requests(services, late["ref"]) == 1
