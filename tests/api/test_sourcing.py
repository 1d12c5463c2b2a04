"""Sourcing parts through the API, against suppliers that are supplier-sandbox tenants over real HTTP:
part lines on a job, quotes, the sourcing policy, purchase orders (and their retries), receipts,
cancellation, the supplier-order list, late parts and the job's parts forecast."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from service.persistence.db import create_engine
from service.persistence.tables import supplier_t
from service.secrets import PasscodeCipher
from service.settings import Settings
from service.uow import Database
from tests.api.helpers import JOBS, advance_to, assert_problem, create_job, get_job, move
from tests.api.parts_helpers import (
    MANAGER,
    ORDERS,
    SKU,
    SKU2,
    SUPPLIERS,
    TECH,
    SandboxOffer,
    add_lines,
    add_part,
    add_supplier,
    at,
    change_line,
    events_of,
    find_offers,
    get_order,
    good_then_broken,
    iso,
    job_parts,
    job_with_lines,
    kinds,
    line_of,
    near,
    new_job,
    new_tenant,
    order,
    ordered,
    pin_stock,
    place_order,
    quotes,
    sandbox_orders,
)
from tests.conftest import PASSCODE_KEY, Api, FakeClock
from tests.sandbox_fixture import SandboxServer

PARIS = ZoneInfo("Europe/Paris")
PO = re.compile(r"^PO-\d{6}$")
HOUR = timedelta(hours=1)


@pytest.fixture(autouse=True)
def real_time(clock: FakeClock) -> FakeClock:
    """The sandbox quotes ETAs from the real clock: the app's clock starts at the same moment."""
    clock.now = datetime.now(UTC)
    return clock


def lead(offer: SandboxOffer, clock: FakeClock) -> timedelta:
    return offer.eta - clock.now


def paris(day: datetime, hour: int) -> datetime:
    """`hour`:00 in Paris on `day`'s Paris date."""
    local = day.astimezone(PARIS)
    return datetime(local.year, local.month, local.day, hour, tzinfo=PARIS).astimezone(UTC)


def open_day_at_10(after: datetime, *, days_ahead: int = 0) -> datetime:
    """10:00 Paris on the first day the valence branch opens (Mon-Sat 09-19) at least `days_ahead` days
    after `after` and later than it: 8 business hours of standard repair end at 18:00 the same day."""
    day = after + timedelta(days=days_ahead)
    while True:
        candidate = paris(day, 10)
        if candidate > after and candidate.astimezone(PARIS).weekday() != 6:
            return candidate
        day += timedelta(days=1)


# --- part lines ------------------------------------------------------------------------------------------


async def test_adding_lines_moves_the_job_to_awaiting_parts_without_telling_the_customer(api: Api) -> None:
    await add_part(api, SKU)
    await add_part(api, SKU2, "iPhone 13 battery")
    job = await new_job(api)
    assert job["stage"] == "received"

    response = await add_lines(api, job["ref"], {"lines": [{"sku": SKU, "quantity": 2}, {"sku": SKU2}]})

    assert response.status_code == 201, response.text
    view = response.json()
    assert view["ref"] == job["ref"] and view["stage"] == "awaiting_parts"
    assert response.headers["ETag"] == f'"v{view["version"]}"'
    assert [(line["sku"], line["quantity"], line["status"]) for line in view["lines"]] == [
        (SKU, 2, "needed"),
        (SKU2, 1, "needed"),
    ]
    assert all(line["order_id"] is None and line["eta"] is None for line in view["lines"])
    assert view["parts_eta"] is None and view["waiting_without_date"] is True
    assert (await get_job(api, TECH, job["ref"]))["stage"] == "awaiting_parts"
    # The history says what happened, and nothing else: no notification of any kind to the customer.
    assert await kinds(api, job["ref"]) == ["created", "stage_changed", "part_added", "part_added"]
    added = await events_of(api, job["ref"], "part_added")
    assert [(e["data"]["sku"], e["data"]["quantity"], e["actor"]) for e in added] == [
        (SKU, 2, TECH),
        (SKU2, 1, TECH),
    ]
    moved = (await events_of(api, job["ref"], "stage_changed"))[0]
    assert (moved["from_stage"], moved["to_stage"]) == ("received", "awaiting_parts")


async def test_one_line_form_adds_a_line_and_a_waiting_job_does_not_move_again(api: Api) -> None:
    await add_part(api, SKU)
    job = await new_job(api)

    first = await add_lines(api, job["ref"], {"sku": SKU.lower(), "quantity": 3})
    second = await add_lines(api, job["ref"], {"sku": SKU})

    assert first.status_code == 201, first.text
    assert [(line["sku"], line["quantity"]) for line in first.json()["lines"]] == [(SKU, 3)]
    assert second.status_code == 201, second.text
    assert [(line["sku"], line["quantity"]) for line in second.json()["lines"]] == [(SKU, 3), (SKU, 1)]
    assert second.json()["stage"] == "awaiting_parts"
    assert await kinds(api, job["ref"]) == ["created", "stage_changed", "part_added", "part_added"]


async def test_both_body_forms_at_once_are_refused(api: Api) -> None:
    await add_part(api, SKU)
    job = await new_job(api)

    response = await add_lines(api, job["ref"], {"lines": [{"sku": SKU}], "sku": SKU})

    problem = assert_problem(response, 422)
    assert "either lines" in problem["detail"]
    assert (await get_job(api, TECH, job["ref"]))["stage"] == "received"


async def test_adding_lines_with_a_stale_if_match_is_412(api: Api) -> None:
    await add_part(api, SKU)
    job = await new_job(api)

    stale = await add_lines(api, job["ref"], {"sku": SKU}, headers={"If-Match": f'"v{job["version"] - 1}"'})
    current = await add_lines(api, job["ref"], {"sku": SKU}, headers={"If-Match": f'"v{job["version"]}"'})

    assert_problem(stale, 412)
    assert current.status_code == 201, current.text
    assert len(current.json()["lines"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lines": [{"sku": "NOPE-404"}]}, "lines[0].sku"),
        ({"sku": "NOPE-404", "quantity": 1}, "lines[0].sku"),
        ({"lines": [{"sku": SKU}, {"sku": "NOPE-404"}]}, "lines[1].sku"),
    ],
)
async def test_an_sku_not_in_the_catalogue_is_422_naming_the_line(api: Api, body: dict[str, Any], field: str) -> None:
    await add_part(api, SKU)
    job = await new_job(api)

    response = await add_lines(api, job["ref"], body)

    problem = assert_problem(response, 422, field)
    assert "NOPE-404" in str(problem["errors"])
    assert (await get_job(api, TECH, job["ref"]))["stage"] == "received"
    assert (await job_parts(api, job["ref"]))["lines"] == []
    assert await kinds(api, job["ref"]) == ["created"]


async def test_the_front_desk_may_not_add_parts(api: Api) -> None:
    await add_part(api, SKU)
    job = await new_job(api)

    response = await add_lines(api, job["ref"], {"sku": SKU}, user="desk.valence")

    assert_problem(response, 403)
    assert (await job_parts(api, job["ref"]))["lines"] == []
    assert (await get_job(api, TECH, job["ref"]))["stage"] == "received"


@pytest.mark.parametrize("end", ["collected", "cancelled"])
async def test_a_collected_or_cancelled_job_takes_no_parts(api: Api, end: str) -> None:
    await add_part(api, SKU)
    job = await new_job(api)
    if end == "collected":
        job = await advance_to(api, job, "collected")
    else:
        job = await move(api, "desk.valence", job, "cancelled")

    response = await add_lines(api, job["ref"], {"sku": SKU})

    problem = assert_problem(response, 409)
    assert end in problem["detail"]
    assert (await get_job(api, TECH, job["ref"]))["stage"] == end
    assert (await job_parts(api, job["ref"]))["lines"] == []


# --- quotes and the sourcing policy ----------------------------------------------------------------


async def test_quotes_come_from_every_supplier_and_a_failing_one_is_listed_apart(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    await add_part(api, SKU)
    cheap, dear = find_offers(sandbox, SKU, 2, lambda o: o[0].price_cents < o[1].price_cents)
    feed = pin_stock(sandbox, new_tenant(), SKU, 4)
    broken_tenant = new_tenant()
    s_cheap = await add_supplier(api, sandbox, cheap.tenant, name="Cheap parts")
    s_dear = await add_supplier(api, sandbox, dear.tenant, name="Dear parts")
    s_feed = await add_supplier(api, sandbox, feed.tenant, name="Feed parts", adapter="csv_feed")
    s_broken = await add_supplier(api, sandbox, broken_tenant, name="Broken parts")
    sandbox.set_faults(tenant=broken_tenant, error_rate=1)
    view = await job_with_lines(api, [(SKU, 1)])
    line_id = view["lines"][0]["id"]

    response = await quotes(api, view["ref"], line_id)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["ref"], body["line_id"], body["sku"], body["quantity"]) == (view["ref"], line_id, SKU, 1)
    by_supplier = {q["supplier_id"]: q for q in body["quotes"]}
    assert set(by_supplier) == {s_cheap["id"], s_dear["id"], s_feed["id"]}
    for supplier, offer, orderable in ((s_cheap, cheap, True), (s_dear, dear, True), (s_feed, feed, False)):
        quote = by_supplier[supplier["id"]]
        assert quote["supplier"] == supplier["name"]
        assert quote["supplier_sku"] == SKU
        assert quote["price_cents"] == offer.price_cents
        assert quote["stock"] == offer.available
        assert quote["currency"] == "EUR"
        assert near(at(quote["eta"]), offer.eta), (quote, offer)
        assert quote["orderable"] is orderable
    assert [(f["supplier_id"], f["supplier"]) for f in body["failures"]] == [(s_broken["id"], "Broken parts")]
    assert body["failures"][0]["reason"]
    assert body["recommended"]["supplier_id"] in {s_cheap["id"], s_dear["id"]}  # never the feed
    # Asking changes nothing.
    assert line_of(await job_parts(api, view["ref"]), line_id)["status"] == "needed"


async def test_standard_picks_the_cheapest_offer_that_meets_the_due_date(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    # Both arrive within a day (well before the 3-business-day due date); the cheaper one is the later.
    def fits(o: list[SandboxOffer]) -> bool:
        cheaper_later, dearer_sooner = o
        return (
            cheaper_later.price_cents < dearer_sooner.price_cents
            and dearer_sooner.eta + HOUR < cheaper_later.eta
            and lead(cheaper_later, clock) <= timedelta(hours=25)
        )

    cheaper_later, dearer_sooner = find_offers(sandbox, SKU, 2, fits)
    await add_part(api, SKU)
    s_cheap = await add_supplier(api, sandbox, cheaper_later.tenant)
    s_fast = await add_supplier(api, sandbox, dearer_sooner.tenant)
    view = await job_with_lines(api, [(SKU, 1)])
    line_id = view["lines"][0]["id"]

    quoted = (await quotes(api, view["ref"], line_id)).json()
    placed = await ordered(api, view["ref"], line_id)

    reason = "standard: cheapest offer that still meets the due date"
    assert quoted["recommended"] == {"supplier_id": s_cheap["id"], "supplier": s_cheap["name"], "reason": reason}
    assert quoted["no_recommendation_reason"] is None
    assert (placed["supplier_id"], placed["choice_reason"]) == (s_cheap["id"], reason)
    assert placed["lines"][0]["unit_price_cents"] == cheaper_later.price_cents
    (chosen,) = await events_of(api, view["ref"], "supplier_chosen")
    assert chosen["data"]["supplier_id"] == s_cheap["id"] and chosen["data"]["reason"] == reason
    assert len(sandbox_orders(sandbox, cheaper_later.tenant, placed["po"])) == 1
    assert sandbox_orders(sandbox, dearer_sooner.tenant, placed["po"]) == []
    assert s_fast["id"] != placed["supplier_id"]


async def test_standard_with_no_offer_in_time_picks_the_earliest(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    # Out of stock everywhere: restocks take 5 to 14 days, past any 3-business-day due date.
    def fits(o: list[SandboxOffer]) -> bool:
        sooner_dearer, later_cheaper = o
        return sooner_dearer.eta + HOUR < later_cheaper.eta and sooner_dearer.price_cents > later_cheaper.price_cents

    sooner, later = find_offers(sandbox, SKU, 2, fits, available=0)
    await add_part(api, SKU)
    s_sooner = await add_supplier(api, sandbox, sooner.tenant)
    await add_supplier(api, sandbox, later.tenant)
    view = await job_with_lines(api, [(SKU, 1)])
    line_id = view["lines"][0]["id"]
    assert at(view["due_at"]) < sooner.eta

    quoted = (await quotes(api, view["ref"], line_id)).json()
    placed = await ordered(api, view["ref"], line_id)

    reason = "standard: no offer meets the due date, so the earliest expected delivery"
    assert quoted["recommended"] == {"supplier_id": s_sooner["id"], "supplier": s_sooner["name"], "reason": reason}
    assert all(q["stock"] == 0 for q in quoted["quotes"])
    assert (placed["supplier_id"], placed["choice_reason"]) == (s_sooner["id"], reason)
    assert placed["lines"][0]["status"] == "backordered"  # nothing on the shelf: it comes with the restock
    assert near(at(placed["lines"][0]["promised_at"]), sooner.eta)
    (chosen,) = await events_of(api, view["ref"], "supplier_chosen")
    assert chosen["data"]["reason"] == reason


async def test_express_picks_the_earliest_offer_within_the_preapproved_budget(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    # Fastest is over budget; the one chosen is within it; a cheaper but slower one is not "earliest".
    def fits(o: list[SandboxOffer]) -> bool:
        fastest, within, slowest = o
        return (
            fastest.eta + HOUR < within.eta
            and within.eta + HOUR < slowest.eta
            and fastest.price_cents > within.price_cents > slowest.price_cents
        )

    fastest, within, slowest = find_offers(sandbox, SKU, 3, fits)
    await add_part(api, SKU)
    await add_supplier(api, sandbox, fastest.tenant)
    s_within = await add_supplier(api, sandbox, within.tenant)
    await add_supplier(api, sandbox, slowest.tenant)
    budget = within.price_cents
    view = await job_with_lines(api, [(SKU, 1)], tier="express", budget=budget)
    line_id = view["lines"][0]["id"]

    quoted = (await quotes(api, view["ref"], line_id)).json()
    placed = await ordered(api, view["ref"], line_id)

    reason = f"express: earliest expected delivery within the budget of {budget} cents"
    assert quoted["recommended"] == {"supplier_id": s_within["id"], "supplier": s_within["name"], "reason": reason}
    assert (placed["supplier_id"], placed["choice_reason"]) == (s_within["id"], reason)
    assert placed["lines"][0]["unit_price_cents"] == within.price_cents
    (chosen,) = await events_of(api, view["ref"], "supplier_chosen")
    assert chosen["data"]["reason"] == reason


async def test_express_with_nothing_within_the_budget_recommends_nothing_and_orders_nothing(
    api: Api, sandbox: SandboxServer
) -> None:
    offer = pin_stock(sandbox, new_tenant(), SKU, 5)
    await add_part(api, SKU)
    await add_supplier(api, sandbox, offer.tenant)
    view = await job_with_lines(api, [(SKU, 1)], tier="express", budget=offer.price_cents - 10)
    line_id = view["lines"][0]["id"]

    quoted = (await quotes(api, view["ref"], line_id)).json()
    refused = await order(api, view["ref"], line_id)

    assert quoted["recommended"] is None
    assert "budget" in quoted["no_recommendation_reason"]
    problem = assert_problem(refused, 409)
    assert "budget" in problem["detail"]
    assert line_of(await job_parts(api, view["ref"]), line_id)["status"] == "needed"
    assert "supplier_chosen" not in await kinds(api, view["ref"])


async def test_no_supplier_carrying_the_part_means_no_quote_and_no_order(api: Api, sandbox: SandboxServer) -> None:
    await add_part(api, "OWN-BRAND-GLUE", "adhesive strips")  # in our catalogue, in no supplier's
    await add_supplier(api, sandbox, new_tenant())
    view = await job_with_lines(api, [("OWN-BRAND-GLUE", 1)])
    line_id = view["lines"][0]["id"]

    quoted = await quotes(api, view["ref"], line_id)
    refused = await order(api, view["ref"], line_id)

    assert quoted.status_code == 200, quoted.text
    assert (quoted.json()["quotes"], quoted.json()["failures"], quoted.json()["recommended"]) == ([], [], None)
    assert quoted.json()["no_recommendation_reason"]
    assert_problem(refused, 409)
    assert line_of(await job_parts(api, view["ref"]), line_id)["status"] == "needed"


async def test_the_front_desk_neither_sources_nor_cancels(api: Api, sandbox: SandboxServer) -> None:
    placed = await place_order(api, sandbox)
    other = await job_with_lines(api, [(SKU, 1)])
    desk = await api.login("desk.valence")

    asked = await api.client.post(f"{JOBS}/{other['ref']}/parts/{other['lines'][0]['id']}/quotes", headers=desk)
    ordering = await api.client.post(f"{JOBS}/{other['ref']}/parts/{other['lines'][0]['id']}/order", headers=desk)
    cancelling = await api.client.post(f"{ORDERS}/{placed.order['id']}/cancel", headers=desk)

    for response in (asked, ordering, cancelling):
        assert_problem(response, 403)
    assert (await get_order(api, placed.order["id"]))["status"] == "confirmed"
    assert line_of(await job_parts(api, other["ref"]), other["lines"][0]["id"])["status"] == "needed"


# --- ordering -------------------------------------------------------------------------------------------


async def test_ordering_from_a_named_supplier_places_a_purchase_order(api: Api, sandbox: SandboxServer) -> None:
    offer = pin_stock(sandbox, new_tenant(), SKU, 5)
    await add_part(api, SKU)
    supplier = await add_supplier(api, sandbox, offer.tenant)
    view = await job_with_lines(api, [(SKU, 2)])
    line_id = view["lines"][0]["id"]

    response = await order(api, view["ref"], line_id, supplier["id"])

    assert response.status_code == 201, response.text
    placed = response.json()
    assert response.headers["Location"] == f"{ORDERS}/{placed['id']}"
    assert PO.match(placed["po"]), placed["po"]
    assert (placed["supplier_id"], placed["job_ref"], placed["status"]) == (supplier["id"], view["ref"], "confirmed")
    assert (placed["choice_reason"], placed["placed_by"]) == ("chosen by staff", TECH)
    (remote,) = sandbox_orders(sandbox, offer.tenant, placed["po"])
    assert placed["supplier_ref"] == remote["id"]
    assert remote["lines"] == [
        {"sku": SKU, "quantity": 2, "shipped_quantity": 0, "state": "open", "eta": remote["lines"][0]["eta"]}
    ]
    (line,) = placed["lines"]
    assert (line["id"], line["status"], line["order_id"], line["supplier_id"]) == (
        line_id,
        "ordered",
        placed["id"],
        supplier["id"],
    )
    assert line["unit_price_cents"] == offer.price_cents
    assert line["promised_at"] == line["eta"]
    assert at(line["eta"]) == at(remote["lines"][0]["eta"])
    assert line["late"] is False and line["late_by_seconds"] == 0

    (chosen,) = await events_of(api, view["ref"], "supplier_chosen")
    assert chosen["data"]["po"] == placed["po"] and chosen["data"]["reason"] == "chosen by staff"
    assert chosen["data"]["supplier_id"] == supplier["id"]
    (part_ordered,) = await events_of(api, view["ref"], "part_ordered")
    assert part_ordered["data"]["line_id"] == line_id
    assert at(part_ordered["data"]["promised_at"]) == at(line["promised_at"])
    shown = line_of(await job_parts(api, view["ref"]), line_id)
    assert [(r["source"], r["old_eta"], at(r["new_eta"])) for r in shown["eta_history"]] == [
        ("order", None, at(line["eta"]))
    ]


async def test_a_supplier_sku_mapped_to_ours_is_quoted_and_ordered_under_the_suppliers_code(
    api: Api, sandbox: SandboxServer
) -> None:
    ours = "SCR-IP13"
    offer = pin_stock(sandbox, new_tenant(), SKU, 5)
    await add_part(api, ours, "our iPhone 13 screen")
    supplier = await add_supplier(api, sandbox, offer.tenant)
    mapped = await api.client.put(
        f"{SUPPLIERS}/{supplier['id']}/skus/{SKU}", json={"sku": ours.lower()}, headers=await api.login(MANAGER)
    )
    assert mapped.status_code == 200, mapped.text
    assert (mapped.json()["supplier_sku"], mapped.json()["sku"]) == (SKU, ours)
    view = await job_with_lines(api, [(ours, 1)])
    line_id = view["lines"][0]["id"]

    quoted = await quotes(api, view["ref"], line_id)
    placed = await ordered(api, view["ref"], line_id)

    assert quoted.status_code == 200, quoted.text
    (quote,) = quoted.json()["quotes"]
    assert (quote["supplier_sku"], quote["price_cents"]) == (SKU, offer.price_cents)
    assert quoted.json()["sku"] == ours
    (remote,) = sandbox_orders(sandbox, offer.tenant, placed["po"])
    assert [(x["sku"], x["quantity"]) for x in remote["lines"]] == [(SKU, 1)]
    assert placed["lines"][0]["sku"] == ours and placed["lines"][0]["status"] == "ordered"


async def test_a_stock_feed_supplier_takes_no_orders(api: Api, sandbox: SandboxServer) -> None:
    offer = pin_stock(sandbox, new_tenant(), SKU, 5)
    await add_part(api, SKU)
    feed = await add_supplier(api, sandbox, offer.tenant, name="Feed only", adapter="csv_feed")
    view = await job_with_lines(api, [(SKU, 1)])
    line_id = view["lines"][0]["id"]

    response = await order(api, view["ref"], line_id, feed["id"])

    problem = assert_problem(response, 409)
    assert "stock feed" in problem["detail"] and "Feed only" in problem["detail"]
    assert line_of(await job_parts(api, view["ref"]), line_id)["status"] == "needed"
    listed = await api.client.get(ORDERS, headers=await api.login(TECH))
    assert listed.json()["items"] == []
    assert "supplier_chosen" not in await kinds(api, view["ref"])


async def test_a_failing_supplier_is_503_with_retry_after_and_the_retry_orders_once(
    api: Api, sandbox: SandboxServer
) -> None:
    offer = pin_stock(sandbox, new_tenant(), SKU, 5)
    await add_part(api, SKU)
    supplier = await add_supplier(api, sandbox, offer.tenant, name="Flaky parts")
    view = await job_with_lines(api, [(SKU, 1)])
    line_id = view["lines"][0]["id"]
    sandbox.set_faults(tenant=offer.tenant, error_rate=1)

    failed = await order(api, view["ref"], line_id, supplier["id"])

    problem = assert_problem(failed, 503)
    assert "Flaky parts" in problem["detail"]
    assert failed.headers["Retry-After"].isdigit() and int(failed.headers["Retry-After"]) >= 1
    assert line_of(await job_parts(api, view["ref"]), line_id)["status"] == "needed"

    sandbox.set_faults(tenant=offer.tenant, error_rate=0)
    placed = await ordered(api, view["ref"], line_id, supplier["id"])

    (remote,) = sandbox_orders(sandbox, offer.tenant, placed["po"])
    assert remote["id"] == placed["supplier_ref"] == f"ORD-{offer.tenant}-0001"  # the tenant's only order
    assert placed["lines"][0]["status"] == "ordered"


async def test_a_lost_order_answer_is_503_and_ordering_again_resends_the_same_po(
    api: Api, sandbox: SandboxServer
) -> None:
    tenant = good_then_broken(sandbox, 0.5)
    pin_stock(sandbox, tenant, SKU, 5)
    await add_part(api, SKU)
    supplier = await add_supplier(api, sandbox, tenant, name="Garbled parts")
    view = await job_with_lines(api, [(SKU, 1)])
    line_id = view["lines"][0]["id"]
    sandbox.set_faults(tenant=tenant, malformed_rate=0.5)  # the stock answer is fine, the order's is garbage

    failed = await order(api, view["ref"], line_id, supplier["id"])

    problem = assert_problem(failed, 503)
    assert "Retry-After" in failed.headers
    (chosen,) = await events_of(api, view["ref"], "supplier_chosen")
    po = chosen["data"]["po"]
    assert po in problem["detail"]  # "order again to re-send the same PO"
    pending = (await api.client.get(ORDERS, params={"status": "placed"}, headers=await api.login(TECH))).json()
    assert [(o["po"], o["supplier_ref"]) for o in pending["items"]] == [(po, None)]
    sandbox.set_faults(tenant=tenant, malformed_rate=0)
    (reached,) = sandbox_orders(sandbox, tenant, po)  # it did reach the supplier; only the answer was lost

    placed = await ordered(api, view["ref"], line_id)

    assert placed["po"] == po and placed["status"] == "confirmed"
    assert placed["supplier_ref"] == reached["id"] == f"ORD-{tenant}-0001"
    assert [o["id"] for o in sandbox_orders(sandbox, tenant, po)] == [reached["id"]]
    assert len(await events_of(api, view["ref"], "supplier_chosen")) == 1
    assert line_of(await job_parts(api, view["ref"]), line_id)["status"] == "ordered"


async def test_two_simultaneous_orders_for_one_line_place_one_purchase_order(
    live_api: Api, sandbox: SandboxServer
) -> None:
    offer = pin_stock(sandbox, new_tenant(), SKU, 5)
    await add_part(live_api, SKU)
    supplier = await add_supplier(live_api, sandbox, offer.tenant)
    view = await job_with_lines(live_api, [(SKU, 1)])
    line_id = view["lines"][0]["id"]

    first, second = await asyncio.gather(
        order(live_api, view["ref"], line_id, supplier["id"]), order(live_api, view["ref"], line_id, supplier["id"])
    )

    assert sorted([first.status_code, second.status_code]) == [201, 409], (first.text, second.text)
    winner, loser = (first, second) if first.status_code == 201 else (second, first)
    assert_problem(loser, 409)
    listed = await live_api.client.get(ORDERS, headers=await live_api.login(TECH))
    assert [o["po"] for o in listed.json()["items"]] == [winner.json()["po"]]
    assert [o["id"] for o in sandbox_orders(sandbox, offer.tenant, winner.json()["po"])] == [f"ORD-{offer.tenant}-0001"]
    second_order = sandbox.client.get(
        f"{sandbox.tenant_url(offer.tenant)}/api/v1/orders/ORD-{offer.tenant}-0002",
        headers={"Authorization": "Bearer k"},
    )
    assert second_order.status_code == 404  # the supplier never saw a second order
    assert len(await events_of(live_api, view["ref"], "supplier_chosen")) == 1


async def test_ordering_an_ordered_line_again_is_409(api: Api, sandbox: SandboxServer) -> None:
    placed = await place_order(api, sandbox)

    again = await order(api, placed.job["ref"], placed.line_id, placed.supplier["id"])

    problem = assert_problem(again, 409)
    assert "already" in problem["detail"]
    assert [o["id"] for o in (await api.client.get(ORDERS, headers=await api.login(TECH))).json()["items"]] == [
        placed.order["id"]
    ]
    assert sandbox_orders(sandbox, placed.tenant, placed.order["po"])[0]["id"] == f"ORD-{placed.tenant}-0001"


# --- receipts and cancellation ------------------------------------------------------------------------


async def receive(api: Api, order_id: int, body: dict[str, Any] | None = None) -> Any:
    headers = await api.login(TECH)
    if body is None:
        return await api.client.post(f"{ORDERS}/{order_id}/receipts", headers=headers)
    return await api.client.post(f"{ORDERS}/{order_id}/receipts", json=body, headers=headers)


RECEIVED = 201  # a receipt is recorded


async def test_receipts_mark_lines_received_and_the_job_ready_for_the_bench(api: Api, sandbox: SandboxServer) -> None:
    offer = pin_stock(sandbox, new_tenant(), SKU, 20)
    pin_stock(sandbox, offer.tenant, SKU2, 20)
    await add_part(api, SKU)
    await add_part(api, SKU2, "iPhone 13 battery")
    supplier = await add_supplier(api, sandbox, offer.tenant)
    view = await job_with_lines(api, [(SKU, 2), (SKU2, 1)])
    screen, battery = (line["id"] for line in view["lines"])
    first = await ordered(api, view["ref"], screen, supplier["id"])
    second = await ordered(api, view["ref"], battery, supplier["id"])

    partial = await receive(api, first["id"], {"lines": [{"line_id": screen, "quantity": 1}]})

    assert partial.status_code == RECEIVED, partial.text
    line = partial.json()["lines"][0]
    assert (line["received_quantity"], line["status"], line["received_at"]) == (1, "ordered", None)
    assert partial.json()["status"] == "partially_shipped"

    rest = await receive(api, first["id"], {"lines": [{"line_id": screen}]})

    assert rest.status_code == RECEIVED, rest.text
    assert rest.json()["status"] == "delivered"
    line = rest.json()["lines"][0]
    assert (line["received_quantity"], line["status"]) == (2, "received")
    assert line["received_at"] is not None
    assert await events_of(api, view["ref"], "parts_ready") == []  # the battery is still awaited

    everything = await receive(api, second["id"])  # no body: all that is outstanding

    assert everything.status_code == RECEIVED, everything.text
    assert everything.json()["status"] == "delivered"
    assert [(x["id"], x["status"], x["received_quantity"]) for x in everything.json()["lines"]] == [
        (battery, "received", 1)
    ]
    (ready,) = await events_of(api, view["ref"], "parts_ready")
    assert sorted(ready["data"]["lines"]) == sorted([screen, battery])
    received = await events_of(api, view["ref"], "part_received")
    assert [(e["data"]["line_id"], e["data"]["quantity"]) for e in received] == [
        (screen, 1),
        (screen, 1),
        (battery, 1),
    ]
    shown = await job_parts(api, view["ref"])
    assert shown["parts_eta"] is None and shown["at_risk"] is False
    assert (await get_order(api, first["id"]))["status"] == "delivered"
    # Still no message to the customer: receiving goods is history only.
    assert not {k for k in await kinds(api, view["ref"])} - {
        "created",
        "stage_changed",
        "part_added",
        "supplier_chosen",
        "part_ordered",
        "part_received",
        "parts_ready",
    }

    nothing_left = await receive(api, second["id"])
    assert_problem(nothing_left, 409)


async def test_a_receipt_for_a_line_of_another_order_is_refused(api: Api, sandbox: SandboxServer) -> None:
    placed = await place_order(api, sandbox)

    response = await receive(api, placed.order["id"], {"lines": [{"line_id": placed.line_id + 1000}]})

    assert_problem(response, 422, "lines[0].line_id")
    assert (await get_order(api, placed.order["id"]))["lines"][0]["received_quantity"] == 0


async def test_cancelling_an_order_cancels_it_at_the_supplier_too(api: Api, sandbox: SandboxServer) -> None:
    placed = await place_order(api, sandbox)
    order_id = placed.order["id"]

    response = await api.client.post(
        f"{ORDERS}/{order_id}/cancel", json={"reason": "customer changed their mind"}, headers=await api.login(TECH)
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["lines"][0]["status"] == "cancelled"
    (remote,) = sandbox_orders(sandbox, placed.tenant, placed.order["po"])
    assert remote["state"] == "cancelled"
    assert (await get_order(api, order_id))["status"] == "cancelled"
    (cancelled,) = await events_of(api, placed.job["ref"], "order_cancelled")
    assert cancelled["data"] == {"po": placed.order["po"], "reason": "customer changed their mind"}
    # The line can be ordered again, under a new PO.
    again = await ordered(api, placed.job["ref"], placed.line_id, placed.supplier["id"])
    assert again["po"] != placed.order["po"] and again["lines"][0]["status"] == "ordered"


async def test_an_order_shipped_at_the_supplier_cannot_be_cancelled(api: Api, sandbox: SandboxServer) -> None:
    placed = await place_order(api, sandbox)
    sandbox.advance(placed.supplier_ref, "ship", tenant=placed.tenant)

    response = await api.client.post(f"{ORDERS}/{placed.order['id']}/cancel", headers=await api.login(TECH))

    problem = assert_problem(response, 409)
    assert "cancel" in problem["detail"]
    (remote,) = sandbox_orders(sandbox, placed.tenant, placed.order["po"])
    assert remote["state"] == "shipped"
    kept = await get_order(api, placed.order["id"])
    assert kept["status"] == "confirmed" and kept["lines"][0]["status"] == "ordered"
    assert "order_cancelled" not in await kinds(api, placed.job["ref"])


async def test_a_cancelled_order_cannot_be_cancelled_again(api: Api, sandbox: SandboxServer) -> None:
    placed = await place_order(api, sandbox)
    path = f"{ORDERS}/{placed.order['id']}/cancel"
    first = await api.client.post(path, headers=await api.login(TECH))
    assert first.status_code == 200, first.text

    again = await api.client.post(path, headers=await api.login(TECH))

    problem = assert_problem(again, 409)
    assert "cancelled" in problem["detail"]
    assert len(await events_of(api, placed.job["ref"], "order_cancelled")) == 1


# --- the supplier-order list ----------------------------------------------------------------------------


async def test_supplier_orders_are_listed_newest_first_with_filters_and_pages(api: Api, sandbox: SandboxServer) -> None:
    first = await place_order(api, sandbox)
    other = await place_order(api, sandbox)
    third_view = await job_with_lines(api, [(SKU, 1)])
    third = await ordered(api, third_view["ref"], third_view["lines"][0]["id"], first.supplier["id"])
    cancel = await api.client.post(f"{ORDERS}/{other.order['id']}/cancel", headers=await api.login(TECH))
    assert cancel.status_code == 200, cancel.text
    ids = (first.order["id"], other.order["id"], third["id"])

    async def listed(**params: Any) -> dict[str, Any]:
        response = await api.client.get(ORDERS, params=params, headers=await api.login(TECH))
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    everything = await listed()
    assert [o["id"] for o in everything["items"]] == [ids[2], ids[1], ids[0]]
    assert everything["next_cursor"] is None
    assert [o["id"] for o in (await listed(status="cancelled"))["items"]] == [ids[1]]
    assert [o["id"] for o in (await listed(status="confirmed"))["items"]] == [ids[2], ids[0]]
    assert [o["id"] for o in (await listed(status="confirmed,cancelled"))["items"]] == [ids[2], ids[1], ids[0]]
    assert [o["id"] for o in (await listed(supplier_id=first.supplier["id"]))["items"]] == [ids[2], ids[0]]
    assert (await listed(supplier_id=first.supplier["id"], status="cancelled"))["items"] == []

    page1 = await listed(limit=2)
    assert [o["id"] for o in page1["items"]] == [ids[2], ids[1]]
    assert page1["next_cursor"]
    page2 = await listed(limit=2, cursor=page1["next_cursor"])
    assert [o["id"] for o in page2["items"]] == [ids[0]]
    assert page2["next_cursor"] is None

    bad = await api.client.get(ORDERS, params={"status": "lost"}, headers=await api.login(TECH))
    assert_problem(bad, 422, "status")
    # Another branch sees none of them.
    theirs = await api.client.get(ORDERS, headers=await api.login("tech.guilherand"))
    assert theirs.status_code == 200 and theirs.json()["items"] == []


async def test_one_supplier_order_with_its_eta_history(api: Api, sandbox: SandboxServer) -> None:
    placed = await place_order(api, sandbox, quantity=2)

    found = await get_order(api, placed.order["id"])

    assert found["po"] == placed.order["po"] and found["supplier_ref"] == placed.supplier_ref
    (line,) = found["lines"]
    assert (line["id"], line["quantity"], line["status"]) == (placed.line_id, 2, "ordered")
    assert [(r["source"], r["new_eta"]) for r in line["eta_history"]] == [("order", line["promised_at"])]
    missing = await api.client.get(f"{ORDERS}/999999", headers=await api.login(TECH))
    assert_problem(missing, 404)
    elsewhere = await api.client.get(f"{ORDERS}/{placed.order['id']}", headers=await api.login("tech.guilherand"))
    assert_problem(elsewhere, 404)


# --- late parts and ETA revisions -------------------------------------------------------------------------


async def late(api: Api, user: str = TECH) -> list[dict[str, Any]]:
    response = await api.client.get("/api/v1/parts/late", headers=await api.login(user))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


async def test_late_parts_are_listed_worst_first_with_the_sla_at_stake(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    (offer,) = find_offers(sandbox, SKU, 1, lambda o: lead(o[0], clock) <= timedelta(hours=25))
    slow = await place_order(api, sandbox, tenant=offer.tenant)
    slipping_view = await job_with_lines(api, [(SKU, 1)])
    slipping_line = slipping_view["lines"][0]["id"]
    slipping = await ordered(api, slipping_view["ref"], slipping_line, slow.supplier["id"])
    assert await late(api) == []  # everything on time

    promised = at(slipping["lines"][0]["promised_at"])
    revised = await change_line(api, slipping_view["ref"], slipping_line, {"eta": iso(promised + timedelta(days=5))})
    assert revised.status_code == 200, revised.text
    # A slipped ETA is late already, before its promise passes.
    assert [item["line_id"] for item in await late(api)] == [slipping_line]

    clock.now = at(slow.order["lines"][0]["promised_at"]) + 2 * HOUR
    items = await late(api)

    assert [(item["line_id"], item["ref"]) for item in items] == [
        (slipping_line, slipping_view["ref"]),
        (slow.line_id, slow.job["ref"]),
    ]
    worst, overdue = items
    assert worst["late_by_seconds"] == int(timedelta(days=5).total_seconds())
    assert 2 * 3600 - 5 <= overdue["late_by_seconds"] <= 2 * 3600 + 5
    assert worst["late_by_seconds"] > overdue["late_by_seconds"] > 0
    assert worst["sla_at_risk"] is True and at(worst["forecast_ready_at"]) > at(worst["due_at"])
    assert overdue["sla_at_risk"] is False and at(overdue["forecast_ready_at"]) <= at(overdue["due_at"])
    assert (overdue["tier"], overdue["stage"], overdue["status"]) == ("standard", "awaiting_parts", "ordered")
    assert overdue["due_at"] == slow.job["due_at"]
    assert (overdue["supplier_id"], overdue["supplier"]) == (slow.supplier["id"], slow.supplier["name"])
    assert overdue["order_id"] == slow.order["id"] and overdue["sku"] == SKU
    assert await late(api, "tech.guilherand") == []  # another branch's lines are not theirs


async def test_a_received_part_is_no_longer_late(api: Api, sandbox: SandboxServer, clock: FakeClock) -> None:
    placed = await place_order(api, sandbox)
    clock.now = at(placed.order["lines"][0]["promised_at"]) + HOUR
    assert [item["line_id"] for item in await late(api)] == [placed.line_id]

    response = await receive(api, placed.order["id"])

    assert response.status_code == RECEIVED, response.text
    assert response.json()["lines"][0]["late_by_seconds"] == 3600  # it did arrive an hour late
    assert await late(api) == []


async def test_a_staff_eta_revision_is_recorded_with_its_source(api: Api, sandbox: SandboxServer) -> None:
    placed = await place_order(api, sandbox)
    ref = placed.job["ref"]
    promised = at(placed.order["lines"][0]["promised_at"])
    new_eta = promised + timedelta(days=2)

    response = await change_line(api, ref, placed.line_id, {"eta": iso(new_eta), "note": "phoned the supplier"})

    assert response.status_code == 200, response.text
    line = response.json()
    assert at(line["eta"]) == new_eta and at(line["promised_at"]) == promised
    assert line["late"] is True and line["late_by_seconds"] == 2 * 24 * 3600
    assert [(r["source"], r["old_eta"] and at(r["old_eta"]), at(r["new_eta"])) for r in line["eta_history"]] == [
        ("order", None, promised),
        ("staff", promised, new_eta),
    ]
    shown = line_of(await job_parts(api, ref), placed.line_id)
    assert shown["eta_history"] == line["eta_history"]
    (revision,) = await events_of(api, ref, "eta_revised")
    assert revision["data"]["source"] == "staff" and revision["note"] == "phoned the supplier"
    assert revision["actor"] == TECH

    forbidden = await change_line(api, ref, placed.line_id, {"eta": iso(new_eta + HOUR)}, user="desk.valence")
    assert_problem(forbidden, 403)
    assert at(line_of(await job_parts(api, ref), placed.line_id)["eta"]) == new_eta


async def test_the_job_parts_view_forecasts_from_the_latest_open_eta(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    offer = pin_stock(sandbox, new_tenant(), SKU, 20)
    pin_stock(sandbox, offer.tenant, SKU2, 20)
    await add_part(api, SKU)
    await add_part(api, SKU2, "iPhone 13 battery")
    supplier = await add_supplier(api, sandbox, offer.tenant)
    view = await job_with_lines(api, [(SKU, 1), (SKU2, 1)])
    ref = view["ref"]
    screen, battery = (line["id"] for line in view["lines"])
    screen_order = await ordered(api, ref, screen, supplier["id"])
    await ordered(api, ref, battery, supplier["id"])
    soon = open_day_at_10(clock.now)  # the next opening day at 10:00: repaired by 18:00, well in time
    far = open_day_at_10(clock.now, days_ahead=8)  # more than a week away: past the due date
    for line_id, eta in ((screen, far), (battery, soon)):
        changed = await change_line(api, ref, line_id, {"eta": iso(eta)})
        assert changed.status_code == 200, changed.text

    shown = await job_parts(api, ref)

    assert at(shown["parts_eta"]) == far  # the latest of the awaited lines
    assert at(shown["forecast_ready_at"]) == paris(far, 18)  # + 8 business hours of standard repair
    assert shown["at_risk"] is True and shown["waiting_without_date"] is False

    received = await receive(api, screen_order["id"])
    assert received.status_code == RECEIVED, received.text
    shown = await job_parts(api, ref)

    assert at(shown["parts_eta"]) == soon  # the received line no longer counts
    assert at(shown["forecast_ready_at"]) == paris(soon, 18)
    assert at(shown["forecast_ready_at"]) <= at(shown["due_at"])
    assert shown["at_risk"] is False


async def test_job_parts_of_another_branch_are_not_found(api: Api, sandbox: SandboxServer) -> None:
    await add_part(api, SKU)
    view = await job_with_lines(api, [(SKU, 1)])

    response = await api.client.get(f"{JOBS}/{view['ref']}/parts", headers=await api.login("tech.guilherand"))

    assert_problem(response, 404)
    other = await create_job(api, "desk.guilherand")
    refused = await add_lines(api, other["ref"], {"sku": SKU})  # tech.valence on a guilherand job
    assert_problem(refused, 404)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/supplier-orders/2147483648",
        "/api/v1/supplier-orders/99999999999999999999",
        "/api/v1/suppliers/2147483648",
        "/api/v1/suppliers/99999999999999999999/scorecard",
    ],
)
async def test_an_id_beyond_any_row_is_404_not_a_server_error(api: Api, path: str) -> None:
    response = await api.client.get(path, headers=await api.login("manager.valence"))
    assert_problem(response, 404)


async def test_a_supplier_whose_stored_api_key_cannot_be_sent_is_a_named_refusal_not_a_crash(
    api: Api, sandbox: SandboxServer, settings: Settings
) -> None:
    """Saved before non-ASCII keys were refused: no quote or order may crash on it."""
    offer = pin_stock(sandbox, new_tenant(), SKU, 5)
    await add_part(api, SKU)
    supplier = await add_supplier(api, sandbox, offer.tenant, name="Accented key")
    stored = PasscodeCipher(PASSCODE_KEY).encrypt(json.dumps({"api_key": "clé-secrète"}))
    engine = create_engine(settings)
    try:
        async with Database(engine).transaction() as uow:
            await uow.connection.execute(
                update(supplier_t).where(supplier_t.c.id == supplier["id"]).values(credentials_ciphertext=stored)
            )
    finally:
        await engine.dispose()
    view = await job_with_lines(api, [(SKU, 1)])
    line_id = view["lines"][0]["id"]

    asked = await quotes(api, view["ref"], line_id)
    assert asked.status_code == 200, asked.text
    (failure,) = asked.json()["failures"]
    assert failure["supplier"] == "Accented key" and "API key is not printable ASCII" in failure["reason"]

    refused = await order(api, view["ref"], line_id, supplier["id"])
    assert refused.status_code in (409, 503) and "API key is not printable ASCII" in refused.text
