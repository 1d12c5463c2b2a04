"""The late-parts escalation ladder end to end: the real database (SQLite, or PostgreSQL with
ATELIER_TEST_DATABASE_URL), suppliers on the sandbox over real HTTP, and a clock the test moves.

The sweep and the outbox handler run here in the test's event loop on their own `Services` (as a
worker would), sharing the database and the clock with the app the API requests go to."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from domain.calendar import BusinessCalendar, OpeningHours
from domain.model import parse_ref
from service.errors import SupplierFailure
from service.persistence.tables import alert_t, escalation_t, order_t, outbox_t
from service.secrets import required_secrets
from service.services import Services, build_services
from service.settings import Settings
from service.usecases import escalation, outbox
from service.usecases.polling import poll_supplier
from tests.api.parts_helpers import (
    MANAGER,
    ORDERS,
    SKU,
    TECH,
    PlacedOrder,
    add_part,
    add_supplier,
    at,
    change_line,
    dice_tenant,
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
from tests.conftest import HOURS_MON_SAT, Api, FakeClock
from tests.sandbox_fixture import SandboxServer

ALERTS = "/api/v1/alerts"
VALENCE = BusinessCalendar(OpeningHours.from_mapping(HOURS_MON_SAT), ZoneInfo("Europe/Paris"))
BUDGET = 1_000_000  # pre-approved: any sandbox price fits


async def rows(services: Services, table: Any, job_id: int) -> list[dict[str, Any]]:
    async with services.db.transaction(write=False) as uow:
        result = await uow.connection.execute(select(table).where(table.c.job_id == job_id).order_by(table.c.id))
        return [dict(row) for row in result.mappings().all()]


async def levels(services: Services, job_id: int) -> list[tuple[int, str]]:
    return [(r["level"], r["promise_key"]) for r in await rows(services, escalation_t, job_id)]


async def delay_notices(services: Services, job_id: int) -> list[dict[str, Any]]:
    """The customer messages the ladder asked for (intake asks for its own "job_received" one)."""
    entries = await rows(services, outbox_t, job_id)
    return [e for e in entries if e["kind"] == "notify" and e["payload"]["template"] == "parts_delayed"]


async def order_job(
    api: Api, sandbox: SandboxServer, clock: FakeClock, *, tier: str = "standard", budget: int | None = None
) -> PlacedOrder:
    """A job created when the sandbox's quoted ETA is due (so its promise is "now" for our clock), its
    one line ordered from a fresh sandbox supplier."""
    tenant = new_tenant()
    offer = pin_stock(sandbox, tenant, SKU, 50)
    clock.now = open_before(offer.eta - timedelta(minutes=30))
    await add_part(api)
    supplier = await add_supplier(api, sandbox, tenant)
    view = await job_with_lines(api, [(SKU, 1)], tier=tier, budget=budget)
    line_id = view["lines"][0]["id"]
    placed = await ordered(api, view["ref"], line_id, supplier["id"])
    return PlacedOrder(tenant, supplier, view, line_id, placed)


def open_before(moment: datetime) -> datetime:
    """`moment`, or the last minute the branch is open before it: the sandbox quotes ETAs from the real
    time of day, which may fall when the shop is closed (an evening, a Sunday)."""
    while VALENCE.next_open(moment) != moment:
        moment -= timedelta(minutes=15)
    return moment


async def sweep(services: Services, clock: FakeClock) -> escalation.SweepReport:
    return await escalation.sweep(services, now=clock.now)


async def late_list(api: Api, user: str = TECH) -> list[dict[str, Any]]:
    response = await api.client.get("/api/v1/parts/late", headers=await api.login(user))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


async def alerts(api: Api, user: str) -> list[dict[str, Any]]:
    response = await api.client.get(ALERTS, headers=await api.login(user))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


def day_of(moment: datetime) -> str:
    """A promise as the ladder keys it: the day in the branch's calendar."""
    return moment.astimezone(VALENCE.tz).date().isoformat()


# --- the ladder ------------------------------------------------------------------------------------------


async def test_the_three_levels_are_reached_as_the_clock_moves_each_recorded_once(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed = await order_job(api, sandbox, clock)
    job_id = parse_ref(placed.job["ref"]) or 0
    view = await job_parts(api, placed.job["ref"])
    promised = at(line_of(view, placed.line_id)["promised_at"])
    due = at(placed.job["due_at"])
    key = day_of(promised)  # rungs are recorded per day the parts are expected
    assert clock.now < promised < due

    # Before the promise: nothing, however often it runs.
    assert (await sweep(services, clock)).total == 0
    assert await levels(services, job_id) == []

    # The promised time passed without the part: late, and the branch's staff feed says so.
    clock.now = promised + timedelta(minutes=5)
    report = await sweep(services, clock)
    assert report.recorded == {"late": 1, "at_risk": 0, "breached": 0}
    assert await levels(services, job_id) == [(1, key)]
    feed = await alerts(api, "desk.valence")
    assert [(a["kind"], a["ref"], a["audience"]) for a in feed] == [("parts_late", placed.job["ref"], "staff")]
    (item,) = await late_list(api)
    assert item["escalation"] == "late"
    # Running it again changes nothing.
    assert (await sweep(services, clock)).total == 0
    assert len(await alerts(api, "desk.valence")) == 1

    # Later, still no part: the bench time left no longer fits before the due date → at risk.
    clock.now = _before(due, hours=7)
    report = await sweep(services, clock)
    assert report.recorded == {"late": 0, "at_risk": 1, "breached": 0}
    (entry,) = [e for e in await rows(services, outbox_t, job_id) if e["kind"] == "resource"]
    assert entry["payload"] == {"job_id": job_id, "line_ids": [placed.line_id], "promise": key}
    assert (await late_list(api))[0]["escalation"] == "at_risk"

    # The due date passed: breached. The customer is to be told the new date (an outbox entry for the
    # notification workers) and the managers hear of it.
    clock.now = due + timedelta(minutes=1)
    report = await sweep(services, clock)
    assert report.recorded == {"late": 0, "at_risk": 0, "breached": 1}
    (notice,) = await delay_notices(services, job_id)
    ready = VALENCE.add_business_time(clock.now, timedelta(hours=8))  # the part today at best, then the bench
    assert notice["payload"] == {
        "template": "parts_delayed",
        "data": {"new_date": ready.isoformat(), "parts_eta": promised.isoformat(), "promise": key},
    }
    assert (await late_list(api))[0]["escalation"] == "breached"
    assert [a["kind"] for a in await alerts(api, "manager.valence")] == ["sla_breached", "parts_late"]
    assert [a["kind"] for a in await alerts(api, "desk.valence")] == ["parts_late"]  # staff: not the manager feed

    # Every level once: re-runs at any later time change nothing.
    for _ in range(3):
        clock.advance(hours=2)
        assert (await sweep(services, clock)).total == 0
    assert await levels(services, job_id) == [(1, key), (2, key), (3, key)]
    assert len(await delay_notices(services, job_id)) == 1
    assert len([e for e in await rows(services, outbox_t, job_id) if e["kind"] == "resource"]) == 1
    assert len(await rows(services, alert_t, job_id)) == 2
    escalated = await events_of(api, placed.job["ref"], "escalated")
    assert [e["data"]["level"] for e in escalated] == ["late", "at_risk", "breached"]
    assert all(e["data"]["promise"] == promised.isoformat() for e in escalated)


def _before(due: datetime, *, hours: float) -> datetime:
    """The moment `hours` business hours before `due` (Valence's calendar)."""
    moment = due
    step = timedelta(minutes=15)
    while VALENCE.business_time_between(moment, due) < timedelta(hours=hours):
        moment -= step
    return moment


async def test_two_sweeps_at_once_record_each_level_once(
    api: Api,
    sandbox: SandboxServer,
    clock: FakeClock,
    services: Services,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    placed = await order_job(api, sandbox, clock)
    job_id = parse_ref(placed.job["ref"]) or 0
    # Long past the due date: all three rungs at once, from two workers at the same time.
    clock.now = at(placed.job["due_at"]) + timedelta(days=1)
    _, cipher = required_secrets(settings)
    other = build_services(settings, cipher, clock=clock)
    # Neither sweep writes before both have read: the worst interleaving, every time rather than when
    # the scheduler happens to allow it.
    both_read = asyncio.Barrier(2)
    write = escalation._escalate_batch

    async def write_after_both_read(*args: Any) -> None:
        await both_read.wait()
        await write(*args)

    monkeypatch.setattr(escalation, "_escalate_batch", write_after_both_read)
    try:
        first, second = await asyncio.wait_for(asyncio.gather(sweep(services, clock), sweep(other, clock)), 30)
    finally:
        await other.aclose()
    monkeypatch.undo()
    assert first.total + second.total == 3
    # One recorded the three rungs, the other lost every insert to the unique constraint and so did
    # nothing more.
    assert sorted([(first.total, first.lost), (second.total, second.lost)]) == [(0, 3), (3, 0)]
    assert sorted(level for level, _ in await levels(services, job_id)) == [1, 2, 3]
    assert len([e for e in await rows(services, outbox_t, job_id) if e["kind"] == "resource"]) == 1
    assert len(await delay_notices(services, job_id)) == 1
    assert sorted(a["kind"] for a in await rows(services, alert_t, job_id)) == ["parts_late", "sla_breached"]
    assert len(await events_of(api, placed.job["ref"], "escalated")) == 3
    # And again, concurrently: nothing.
    again = await asyncio.gather(sweep(services, clock), sweep(services, clock))
    assert sum(r.total for r in again) == 0


async def test_a_later_promise_escalates_again_and_delivery_clears(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed = await order_job(api, sandbox, clock)
    ref, job_id = placed.job["ref"], parse_ref(placed.job["ref"]) or 0
    promised = at(line_of(await job_parts(api, ref), placed.line_id)["promised_at"])
    clock.now = promised + timedelta(minutes=5)
    assert (await sweep(services, clock)).recorded["late"] == 1

    # The supplier nudges its date by a minute, the same day: the same promise, nothing new for anyone.
    response = await change_line(api, ref, placed.line_id, {"eta": iso(promised + timedelta(minutes=1))})
    assert response.status_code == 200, response.text
    assert (await sweep(services, clock)).total == 0
    assert len(await alerts(api, "desk.valence")) == 1

    # The supplier gives a new date on the phone, the next business day (still before the due date, not at
    # risk): it is a new promise, and when it passes too the job is late again for it.
    new_eta = VALENCE.add_business_days(clock.now, 1)
    response = await change_line(api, ref, placed.line_id, {"eta": iso(new_eta)})
    assert response.status_code == 200, response.text
    clock.now = new_eta + timedelta(minutes=1)
    assert (await sweep(services, clock)).recorded["late"] == 1
    assert (await sweep(services, clock)).total == 0
    assert await levels(services, job_id) == [(1, day_of(promised)), (1, day_of(new_eta))]
    assert len(await alerts(api, "desk.valence")) == 2

    # The part arrives: the flags are cleared and nothing escalates any more.
    response = await api.client.post(f"{ORDERS}/{placed.order['id']}/receipts", headers=await api.login(TECH))
    assert response.status_code == 201, response.text
    assert all(r["cleared_at"] == clock.now for r in await rows(services, escalation_t, job_id))
    assert await late_list(api) == []
    clock.advance(days=5)
    assert (await sweep(services, clock)).total == 0
    assert [e["kind"] for e in await events_of(api, ref, "parts_ready")] == ["parts_ready"]


# --- re-sourcing -------------------------------------------------------------------------------------------


async def _slipped_far(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services, tier: str, tenant_b: str | None = None
) -> tuple[PlacedOrder, dict[str, Any], int]:
    """An order at supplier A whose ETA slips by 200 hours (the sandbox says so, Atelier polls it),
    with supplier B (on `tenant_b`) carrying the part sooner; the sweep then asks for re-sourcing."""
    placed = await order_job(api, sandbox, clock, tier=tier, budget=BUDGET)
    tenant_b = tenant_b or new_tenant()
    pin_stock(sandbox, tenant_b, SKU, 20)
    supplier_b = await add_supplier(api, sandbox, tenant_b)
    return placed, supplier_b, await _slip_and_sweep(sandbox, clock, services, placed)


async def _slip_and_sweep(sandbox: SandboxServer, clock: FakeClock, services: Services, placed: PlacedOrder) -> int:
    """The placed order's ETA slips by 200 hours, a poll learns it and the sweep asks for re-sourcing:
    the "resource" outbox entry's id."""
    job_id = parse_ref(placed.job["ref"]) or 0
    sandbox.advance(placed.supplier_ref, "slip", tenant=placed.tenant, hours=200)
    from service.usecases.sourcing import refresh_order

    changed = await refresh_order(
        services.db, placed.order["id"], clients=services.suppliers, cipher=services.cipher, now=clock.now
    )
    assert changed, "the poll saw the slip"
    report = await sweep(services, clock)
    assert report.recorded["at_risk"] == 1
    (entry,) = [e for e in await rows(services, outbox_t, job_id) if e["kind"] == "resource"]
    entry_id: int = entry["id"]
    return entry_id


async def test_an_express_job_is_re_sourced_automatically(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed, supplier_b, entry_id = await _slipped_far(api, sandbox, clock, services, "express")
    ref, job_id = placed.job["ref"], parse_ref(placed.job["ref"]) or 0

    assert await outbox.handle(services, entry_id, now=clock.now) is True

    # At the sandbox: A's order is cancelled, B has a new order for our new PO.
    (old,) = sandbox_orders(sandbox, placed.tenant, placed.order["po"])
    assert old["state"] == "cancelled"
    line = line_of(await job_parts(api, ref), placed.line_id)
    assert line["supplier_id"] == supplier_b["id"] and line["status"] in ("ordered", "backordered")
    new_order = await api.client.get(f"{ORDERS}/{line['order_id']}", headers=await api.login(TECH))
    new_po = new_order.json()["po"]
    assert new_po != placed.order["po"]
    (remote,) = sandbox_orders(sandbox, supplier_tenant(supplier_b), new_po)
    assert remote["state"] != "cancelled"
    # Both recorded, with the reason.
    (cancelled,) = await events_of(api, ref, "order_cancelled")
    assert cancelled["data"]["po"] == placed.order["po"] and cancelled["data"]["reason"].startswith("re-sourced")
    # Atelier's decision, not the supplier's failing (its scorecard must not count it as its cancellation).
    (part_cancelled,) = await events_of(api, ref, "part_cancelled")
    assert part_cancelled["data"]["by_supplier"] is False
    assert new_order.json()["choice_reason"].startswith("re-sourced: ")
    (_first_choice, rechosen) = await events_of(api, ref, "supplier_chosen")
    assert rechosen["data"]["po"] == new_po and rechosen["data"]["reason"].startswith("re-sourced: ")
    (resourced,) = await events_of(api, ref, "resourced")
    assert resourced["data"]["cancelled_po"] == placed.order["po"]
    assert resourced["data"]["po"] == new_po and resourced["data"]["to_supplier_id"] == supplier_b["id"]
    assert resourced["actor"] == "atelier"
    # A second delivery of the same entry changes nothing.
    assert await outbox.handle(services, entry_id, now=clock.now) is False
    async with services.db.transaction(write=False) as uow:
        count = len((await uow.connection.execute(select(order_t).where(order_t.c.job_id == job_id))).all())
    assert count == 2


async def test_an_express_job_without_a_budget_is_not_re_sourced_to_a_dearer_part(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed = await order_job(api, sandbox, clock, tier="express")  # no pre-approved budget
    ref = placed.job["ref"]
    price = line_of(await job_parts(api, ref), placed.line_id)["unit_price_cents"]
    dearer = next(o for o in (pin_stock(sandbox, new_tenant(), SKU, 20) for _ in range(80)) if o.price_cents > price)
    supplier_b = await add_supplier(api, sandbox, dearer.tenant)
    entry_id = await _slip_and_sweep(sandbox, clock, services, placed)

    assert await outbox.handle(services, entry_id, now=clock.now) is True

    # The customer agreed to the estimate, not to a dearer part: nothing changes, staff are asked.
    (old,) = sandbox_orders(sandbox, placed.tenant, placed.order["po"])
    assert old["state"] != "cancelled"
    assert line_of(await job_parts(api, ref), placed.line_id)["order_id"] == placed.order["id"]
    (proposed,) = await events_of(api, ref, "resource_proposed")
    assert proposed["data"]["to_supplier_id"] == supplier_b["id"]
    assert "costs more than the customer agreed" in proposed["data"]["reason"]
    assert "resource_proposal" in [a["kind"] for a in await alerts(api, "desk.valence")]


async def test_a_re_sourcing_whose_new_order_lost_its_answer_sends_that_po_again_even_after_a_poll_saw_it(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    # B answers both stock quotes, then breaks its answer to the order: the order is placed there.
    tenant_b = dice_tenant(sandbox, 0.5, (False, False, True))
    placed, supplier_b, entry_id = await _slipped_far(api, sandbox, clock, services, "express", tenant_b)
    ref, job_id = placed.job["ref"], parse_ref(placed.job["ref"]) or 0
    sandbox.set_faults(tenant=tenant_b, malformed_rate=0.5)

    with pytest.raises(SupplierFailure):
        await outbox.handle(services, entry_id, now=clock.now)

    sandbox.set_faults(tenant=tenant_b, malformed_rate=0)
    line = line_of(await job_parts(api, ref), placed.line_id)
    new_po = f"PO-{line['order_id']:06d}"
    (reached,) = sandbox_orders(sandbox, tenant_b, new_po)  # B holds it; only its answer was lost
    # The poll reads B's order feed, which names our PO: that is no reason to close it.
    clock.advance(minutes=1)
    await poll_supplier(services, supplier_b["id"], now=clock.now)
    pending = await api.client.get(f"{ORDERS}/{line['order_id']}", headers=await api.login(TECH))
    assert pending.json()["status"] != "cancelled", pending.json()

    assert await outbox.handle(services, entry_id, now=clock.now) is True

    # One order at B, the one the first run sent; the line is on it; re-sourced once.
    assert [o["id"] for o in sandbox_orders(sandbox, tenant_b, new_po)] == [reached["id"]]
    async with services.db.transaction(write=False) as uow:
        result = await uow.connection.execute(select(order_t).where(order_t.c.job_id == job_id))
        orders = {row.id: row for row in result.all()}
    assert sorted((o.supplier_id, o.status) for o in orders.values()) == sorted(
        [(placed.supplier["id"], "cancelled"), (supplier_b["id"], "confirmed")]
    )
    line = line_of(await job_parts(api, ref), placed.line_id)
    assert (line["supplier_id"], f"PO-{line['order_id']:06d}", line["status"]) == (supplier_b["id"], new_po, "ordered")
    (resourced,) = await events_of(api, ref, "resourced")
    assert resourced["data"]["po"] == new_po and resourced["data"]["to_supplier_id"] == supplier_b["id"]
    assert len(await events_of(api, ref, "order_cancelled")) == 1
    assert await outbox.handle(services, entry_id, now=clock.now) is False


def supplier_tenant(supplier: dict[str, Any]) -> str:
    tenant: str = supplier["base_url"].rstrip("/").rsplit("/", 1)[-1]
    return tenant


async def test_a_standard_job_gets_a_proposal_and_nothing_changes(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed, supplier_b, entry_id = await _slipped_far(api, sandbox, clock, services, "standard")
    ref = placed.job["ref"]
    before = line_of(await job_parts(api, ref), placed.line_id)

    assert await outbox.handle(services, entry_id, now=clock.now) is True

    after = line_of(await job_parts(api, ref), placed.line_id)
    assert (after["supplier_id"], after["order_id"], after["status"]) == (
        before["supplier_id"],
        before["order_id"],
        before["status"],
    )
    (old,) = sandbox_orders(sandbox, placed.tenant, placed.order["po"])
    assert old["state"] != "cancelled"
    proposals = [a for a in await alerts(api, "tech.valence") if a["kind"] == "resource_proposal"]
    assert len(proposals) == 1 and proposals[0]["data"]["to_supplier_id"] == supplier_b["id"]
    assert [e["data"]["to_supplier_id"] for e in await events_of(api, ref, "resource_proposed")] == [supplier_b["id"]]
    assert await events_of(api, ref, "resourced") == []
    assert await outbox.handle(services, entry_id, now=clock.now) is False


# --- the alerts API ----------------------------------------------------------------------------------------


async def test_alerts_are_scoped_to_the_branch_and_acknowledged_once(
    api: Api, sandbox: SandboxServer, clock: FakeClock, services: Services
) -> None:
    placed = await order_job(api, sandbox, clock)
    clock.now = at(placed.job["due_at"]) + timedelta(hours=1)
    await sweep(services, clock)

    staff_feed = await alerts(api, "desk.valence")
    assert [a["kind"] for a in staff_feed] == ["parts_late"]
    assert {a["kind"] for a in await alerts(api, "manager.valence")} == {"parts_late", "sla_breached"}
    assert {a["kind"] for a in await alerts(api, MANAGER)} == {"parts_late", "sla_breached"}  # chain-wide
    assert await alerts(api, "desk.guilherand") == []

    alert_id = staff_feed[0]["id"]
    manager_alert = next(a for a in await alerts(api, "manager.valence") if a["kind"] == "sla_breached")
    path = f"{ALERTS}/{alert_id}/acknowledge"
    denied = await api.client.post(path, headers=await api.login("desk.guilherand"))
    assert denied.status_code == 404
    hidden = await api.client.post(f"{ALERTS}/{manager_alert['id']}/acknowledge", headers=await api.login(TECH))
    assert hidden.status_code == 404  # staff do not see the manager feed
    done = await api.client.post(path, headers=await api.login("desk.valence"))
    assert done.status_code == 200, done.text
    assert done.json()["acknowledged_by"] == "desk.valence"
    clock.advance(minutes=5)
    again = await api.client.post(path, headers=await api.login("tech.valence"))
    assert again.json()["acknowledged_by"] == "desk.valence"  # the first acknowledgement stays
    unread = await api.client.get(ALERTS, params={"unacknowledged": "true"}, headers=await api.login("desk.valence"))
    assert unread.json() == []
