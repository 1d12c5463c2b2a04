"""The job list: cursor pagination, the default order, filters and search."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.api.helpers import JOBS, assert_problem, create_job, imei, list_refs, move
from tests.conftest import Api, FakeClock

# Customers whose names, phones and IMEIs have nothing in common.
PEOPLE = [
    ("Camille Martin", "06 12 34 56 78", 910001),
    ("Léa Dubois", "07 81 22 33 44", 920002),
    ("Hugo Bernard", "06 55 44 33 22", 930003),
    ("Chloé Petit", "04 75 12 98 76", 940004),
]


def _person(i: int) -> dict[str, Any]:
    name, phone, n = PEOPLE[i]
    return {
        "customer": {"name": name, "phone": phone},
        "device": {"brand": "Samsung", "model": "Galaxy S21", "imei": imei(n)},
    }


async def _page(api: Api, user: str = "desk.valence", **params: Any) -> Any:
    return await api.client.get(JOBS, params=params, headers=await api.login(user))


# --- pagination --------------------------------------------------------------------------------


async def test_walking_all_pages_returns_every_job_once_in_order(api: Api, clock: FakeClock) -> None:
    created = []
    for i in range(7):
        clock.advance(minutes=7)
        created.append((await create_job(api, tier="express" if i % 3 == 0 else "standard"))["ref"])
    everything = await list_refs(api, "desk.valence")
    assert sorted(everything) == sorted(created)

    walked: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await _page(api, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        walked += [job["ref"] for job in page["items"]]
        sizes.append(len(page["items"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [2, 2, 2, 1]
    assert walked == everything  # no duplicates, no gaps, same order as one big page


async def test_last_full_page_has_no_next_cursor(api: Api) -> None:
    for _ in range(2):
        await create_job(api)
    page = (await _page(api, limit=2)).json()
    assert len(page["items"]) == 2
    assert page["next_cursor"] is None


async def test_pagination_with_a_filter(api: Api) -> None:
    refs = [(await create_job(api, tier=tier))["ref"] for tier in ("express", "standard", "express", "express")]
    express = [
        ref for ref, tier in zip(refs, ("express", "standard", "express", "express"), strict=True) if tier == "express"
    ]
    walked: list[str] = []
    params: dict[str, Any] = {"limit": 1, "tier": "express"}
    while True:
        page = (await _page(api, **params)).json()
        walked += [job["ref"] for job in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert walked == express


async def test_limit_is_capped_at_100(api: Api) -> None:
    for _ in range(101):
        await create_job(api)
    response = await _page(api, limit=1000)
    assert response.status_code == 200, response.text
    page = response.json()
    assert len(page["items"]) == 100
    assert page["next_cursor"] is not None
    rest = (await _page(api, limit=1000, cursor=page["next_cursor"])).json()
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None


async def test_bad_limit_is_422(api: Api) -> None:
    for limit in ("0", "-1", "ten", "1.5", ""):
        assert_problem(await _page(api, limit=limit), 422, "limit")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSORS = {
    "words": "not-a-cursor",
    "symbols": "%%%",
    "short-list": _b64(b"[1, 2]"),
    "bad-priority": _b64(json.dumps(["x", "2026-11-23T09:00:00+00:00", 1]).encode()),
    "bad-date": _b64(json.dumps([0, "yesterday", 1]).encode()),
    "object": _b64(b"{}"),
    "too-long": "A" * 201,
}


async def test_bad_cursor_is_422(api: Api) -> None:
    await create_job(api)
    for case, cursor in BAD_CURSORS.items():
        response = await _page(api, cursor=cursor)
        assert response.status_code == 422, case
        assert_problem(response, 422, "cursor")


# --- order -------------------------------------------------------------------------------------


async def test_default_order_is_express_first_then_due_date(api: Api, clock: FakeClock) -> None:
    standard_early = await create_job(api, tier="standard")  # due Thu 26 Nov 10:00 Paris
    clock.advance(hours=2)
    express_late = await create_job(api, tier="express")  # due Mon 16:00 Paris
    standard_late = await create_job(api, tier="standard")  # due Thu 12:00 Paris
    clock.advance(days=3, hours=1)  # Thursday 13:00 Paris
    express_later = await create_job(api, tier="express")  # due Thu 17:00, after standard_early's due date
    clock.advance(days=-3, hours=-2)
    express_early = await create_job(api, tier="express")  # received Monday 11:00: due Mon 15:00 Paris
    assert express_later["due_at"] > standard_early["due_at"]
    assert await list_refs(api, "desk.valence") == [
        express_early["ref"],
        express_late["ref"],
        express_later["ref"],
        standard_early["ref"],
        standard_late["ref"],
    ]


# --- filters -----------------------------------------------------------------------------------


async def test_filter_by_stage(api: Api) -> None:
    received = await create_job(api)
    diagnosing = await move(api, "tech.valence", await create_job(api), "diagnosing")
    held = await move(api, "desk.valence", await create_job(api), "on_hold")
    assert await list_refs(api, "desk.valence", stage="received") == [received["ref"]]
    assert await list_refs(api, "desk.valence", stage="diagnosing") == [diagnosing["ref"]]
    both = await list_refs(api, "desk.valence", stage="diagnosing,on_hold")
    assert sorted(both) == sorted([diagnosing["ref"], held["ref"]])
    assert await list_refs(api, "desk.valence", stage="collected") == []


async def test_unknown_stage_filter_is_422(api: Api) -> None:
    assert_problem(await _page(api, stage="received,lost"), 422, "stage")


async def test_filter_by_tier(api: Api) -> None:
    express = await create_job(api, tier="express")
    standard = await create_job(api, tier="standard")
    assert await list_refs(api, "desk.valence", tier="express") == [express["ref"]]
    assert await list_refs(api, "desk.valence", tier="standard") == [standard["ref"]]
    assert_problem(await _page(api, tier="platinum"), 422, "tier")


async def test_filter_by_technician(api: Api) -> None:
    mine = await move(api, "tech.valence", await create_job(api), "diagnosing")
    theirs = await move(api, "tech2.valence", await create_job(api), "diagnosing")
    await create_job(api)  # unassigned
    assert await list_refs(api, "desk.valence", technician="tech.valence") == [mine["ref"]]
    assert await list_refs(api, "desk.valence", technician="tech2.valence") == [theirs["ref"]]
    assert await list_refs(api, "desk.valence", technician="nobody") == []


async def test_filters_combine(api: Api) -> None:
    target = await move(api, "tech.valence", await create_job(api, tier="express", **_person(1)), "diagnosing")
    await move(api, "tech.valence", await create_job(api, tier="standard", **_person(1)), "diagnosing")
    await create_job(api, tier="express", **_person(1))
    await move(api, "tech.valence", await create_job(api, tier="express", **_person(2)), "diagnosing")
    refs = await list_refs(api, "desk.valence", stage="diagnosing", tier="express", q="dubois")
    assert refs == [target["ref"]]


# --- search ------------------------------------------------------------------------------------


@pytest.fixture
async def people(api: Api) -> list[dict[str, Any]]:
    jobs = [await create_job(api, **_person(i)) for i in range(len(PEOPLE))]
    jobs.append(
        await create_job(
            api,
            customer={"name": "Nina Laptop", "phone": "06 99 88 77 66"},
            device={"brand": "Lenovo", "model": "T14", "serial_number": "PF3ABC12"},
        )
    )
    return jobs


async def test_search_by_reference(api: Api, people: list[dict[str, Any]]) -> None:
    target = people[2]["ref"]
    assert await list_refs(api, "desk.valence", q=target) == [target]
    assert await list_refs(api, "desk.valence", q=target.lower()) == [target]


async def test_search_by_customer_name_ignores_case(api: Api, people: list[dict[str, Any]]) -> None:
    for q in ("Dubois", "dubois", "LÉA", "léa dub", "ubo"):
        assert await list_refs(api, "desk.valence", q=q) == [people[1]["ref"]], q


async def test_search_by_phone_in_any_form(api: Api, people: list[dict[str, Any]]) -> None:
    for q in ("06 55 44 33 22", "0655443322", "+33655443322", "+33 6 55 44 33 22", "44 33 22"):
        assert await list_refs(api, "desk.valence", q=q) == [people[2]["ref"]], q


async def test_search_by_imei_or_a_fragment(api: Api, people: list[dict[str, Any]]) -> None:
    for q in (imei(940004), imei(940004)[6:12], imei(940004)[-5:]):
        assert await list_refs(api, "desk.valence", q=q) == [people[3]["ref"]], q


async def test_search_by_serial_number(api: Api, people: list[dict[str, Any]]) -> None:
    assert await list_refs(api, "desk.valence", q="pf3abc12") == [people[4]["ref"]]


async def test_search_without_match_is_empty(api: Api, people: list[dict[str, Any]]) -> None:
    for q in ("Zoé", "%", "_", "AT-999999"):
        assert await list_refs(api, "desk.valence", q=q) == [], q


async def test_search_text_out_of_bounds_is_422(api: Api) -> None:
    for q in ("", "x" * 101, "Cam\x00ille"):
        assert_problem(await _page(api, q=q), 422, "q")
    assert_problem(await _page(api, technician="tech\x00"), 422, "technician")


async def test_search_for_a_reference_beyond_any_job_finds_nothing(api: Api) -> None:
    await create_job(api)
    assert await list_refs(api, "desk.valence", q="AT-99999999999999999999") == []


async def test_search_by_reference_does_not_match_its_digits_elsewhere(api: Api) -> None:
    first = await create_job(api)
    # A device whose IMEI contains the first job's digits must not show up for that reference.
    digits = first["ref"].removeprefix("AT-")
    await create_job(api, device={"brand": "Apple", "model": "iPhone 12", "serial_number": f"SN{digits}X"})
    await create_job(api, customer={"name": f"Client {digits}", "phone": "06 12 34 56 78"})
    assert await list_refs(api, "desk.valence", q=first["ref"]) == [first["ref"]]
