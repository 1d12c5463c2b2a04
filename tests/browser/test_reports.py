"""The late-parts page, the manager's page and the customer's tracking page, in a real browser.

Data is prepared through the API (and the supplier sandbox, over real HTTP) on the live server's
database and clock; the pages must show what the API says."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from playwright.async_api import Browser, Page, expect
from sqlalchemy import update

from domain.calendar import BusinessCalendar, OpeningHours
from service.persistence.tables import supplier_t
from service.services import Services
from service.usecases import escalation
from service.usecases.sourcing import refresh_order
from service.web.i18n import duration_words, translator
from service.web.reports import hours, percent
from tests.api.helpers import advance_to, create_job
from tests.api.parts_helpers import (
    ORDERS,
    SKU,
    SUPPLIERS,
    TECH,
    PlacedOrder,
    add_part,
    add_supplier,
    at,
    job_parts,
    job_with_lines,
    line_of,
    new_tenant,
    ordered,
    pin_stock,
)
from tests.browser.conftest import screenshot
from tests.browser.test_pages import sign_in
from tests.conftest import HOURS_MON_SAT, Api, FakeClock
from tests.sandbox_fixture import SandboxServer

VALENCE = BusinessCalendar(OpeningHours.from_mapping(HOURS_MON_SAT), ZoneInfo("Europe/Paris"))
EN = translator("en")


async def order_job(api: Api, sandbox: SandboxServer, clock: FakeClock) -> PlacedOrder:
    """A valence job whose one line is ordered from a fresh sandbox supplier, the clock set just before
    the sandbox's quoted ETA (the sandbox dates on its own clock): its promise is about now."""
    tenant = new_tenant()
    offer = pin_stock(sandbox, tenant, SKU, 50)
    clock.now = VALENCE.next_open(offer.eta - timedelta(minutes=30))
    await add_part(api)
    supplier = await add_supplier(api, sandbox, tenant)
    view = await job_with_lines(api, [(SKU, 1)])
    line_id = view["lines"][0]["id"]
    placed = await ordered(api, view["ref"], line_id, supplier["id"])
    return PlacedOrder(tenant, supplier, view, line_id, placed)


async def late_list(api: Api) -> list[dict[str, Any]]:
    response = await api.client.get("/api/v1/parts/late", headers=await api.login(TECH))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


async def mark_stale(services: Services, supplier_id: int, since: datetime) -> None:
    async with services.db.transaction() as uow:
        await uow.connection.execute(update(supplier_t).where(supplier_t.c.id == supplier_id).values(stale_since=since))


# --- the late parts ---------------------------------------------------------------------------------


async def test_a_late_part_shows_its_supplier_how_late_and_its_rung_live(
    page: Page, api: Api, clock: FakeClock, sandbox: SandboxServer, services: Services
) -> None:
    placed = await order_job(api, sandbox, clock)
    # The supplier pushes its date back 100 hours; Atelier's poll sees it. Its feed has been stale for 5 h
    # (longer than the ladder's grace for stale data, so the ladder trusts the date).
    sandbox.advance(placed.supplier_ref, "slip", tenant=placed.tenant, hours=100)
    changed = await refresh_order(
        services.db, placed.order["id"], clients=services.suppliers, cipher=services.cipher, now=clock.now
    )
    assert changed, "the poll saw the slip"
    await mark_stale(services, placed.supplier["id"], clock.now - timedelta(hours=5))
    (item,) = await late_list(api)
    assert item["line_id"] == placed.line_id and item["escalation"] is None

    await sign_in(page, "tech.valence", language="en")
    await page.goto("/app/late")
    await expect(page.get_by_role("heading", name="Late parts")).to_be_visible()
    row = page.locator(f"tr[data-line='{placed.line_id}']")
    await expect(row.get_by_role("link", name=placed.job["ref"])).to_have_attribute(
        "href", f"/app/jobs/{placed.job['ref']}"
    )
    await expect(row.locator(".supplier")).to_have_text(placed.supplier["name"])
    await expect(row.locator(".late-by")).to_have_text(duration_words(item["late_by_seconds"], "en"))
    await expect(row).to_contain_text(SKU)
    await expect(row.locator(".staleness")).to_contain_text("stale since")
    await expect(row.locator(".sla")).to_contain_text("due")
    await expect(row.locator(".level")).to_have_text(EN("late_no_level"))

    # The ladder's sweep runs: the page shows the rung without a reload, as the API does.
    assert (await escalation.sweep(services, now=clock.now)).total >= 1
    (item,) = await late_list(api)
    assert item["escalation"] in ("late", "at_risk", "breached")
    await expect(row.locator(".level")).to_have_text(EN(f"late_level_{item['escalation']}"), timeout=10_000)
    sla = "breached" if item["due_at"] and at(item["due_at"]) < clock.now else None
    if sla is None and item["sla_at_risk"]:
        sla = "at_risk"
    await expect(row).to_have_class(sla.replace("_", "-") if sla else "on-track")
    await screenshot(page, "late")


async def test_nothing_late_says_so(page: Page) -> None:
    await sign_in(page, "desk.valence", language="en")
    await page.goto("/app/late")
    await expect(page.get_by_role("cell", name="No late parts.")).to_be_visible()


# --- the manager's page -----------------------------------------------------------------------------


async def test_the_manager_sees_counts_rates_intake_and_supplier_scorecards(
    page: Page, api: Api, clock: FakeClock, sandbox: SandboxServer
) -> None:
    # A part received 5 hours after its promise.
    placed = await order_job(api, sandbox, clock)
    promised = at(line_of(await job_parts(api, placed.job["ref"]), placed.line_id)["promised_at"])
    clock.now = promised + timedelta(hours=5)
    received = await api.client.post(f"{ORDERS}/{placed.order['id']}/receipts", headers=await api.login(TECH))
    assert received.status_code == 201, received.text
    # Standard collected at once (on time); express collected two days later (late).
    await advance_to(api, await create_job(api), "collected")
    express = await create_job(api, tier="express")
    clock.advance(days=2)
    await advance_to(api, express, "collected")
    # Two new jobs today.
    await create_job(api)
    await create_job(api)
    card = await api.client.get(f"{SUPPLIERS}/{placed.supplier['id']}/scorecard", headers=await api.login("manager"))
    assert card.status_code == 200, card.text
    scorecard = card.json()
    assert scorecard["due"] == 1 and scorecard["mean_delay_hours"] == 5.0

    await sign_in(page, "manager", language="en")
    await page.goto("/app/manager")
    await expect(page.get_by_role("heading", name="Manager · All branches")).to_be_visible()
    stages = page.locator("#stage-counts")
    await expect(stages.locator("tr[data-stage=received] td")).to_have_text("2")
    await expect(stages.locator("tfoot td")).to_have_text("3")  # the two new jobs and the one with its part
    on_time = page.locator("#on-time")
    await expect(on_time.locator("tr[data-tier=express] td").first).to_have_text("0 / 1")
    await expect(on_time.locator("tr[data-tier=express] .rate")).to_have_text("0 %")
    await expect(on_time.locator("tr[data-tier=standard] td").first).to_have_text("1 / 1")
    await expect(on_time.locator("tr[data-tier=standard] .rate")).to_have_text("100 %")

    intake = page.locator("svg#intake-chart")
    await expect(intake.locator("title")).to_have_text("Intake per day")
    await expect(intake.locator("rect.bar")).to_have_count(7)
    counts = await page.locator("#intake-table tbody td").all_text_contents()
    assert counts[-1] == "2" and sum(int(c) for c in counts) == 5

    supplier = page.locator(f"article[data-supplier='{placed.supplier['id']}']")
    for figure in ("on_time_rate", "slip_rate", "fill_rate"):
        await expect(supplier.locator(f"dd[data-figure={figure}]")).to_have_text(percent(scorecard[figure]))
    for figure in ("mean_delay_hours", "p90_delay_hours"):
        await expect(supplier.locator(f"dd[data-figure={figure}]")).to_have_text(hours(scorecard[figure]))
    await expect(supplier.locator("dd[data-figure=lines]")).to_have_text(str(scorecard["lines"]))
    chart = supplier.locator("svg.chart")
    await expect(chart.locator("title")).to_contain_text(placed.supplier["name"])
    await expect(chart.locator("circle.dot")).to_have_count(1)  # one week with a delivery
    await expect(chart.locator("desc")).to_contain_text("5.0 h")
    await screenshot(page, "manager")

    # A chain-wide manager may look at one branch: the other branch has none of these jobs.
    await page.get_by_label("Branch").select_option("guilherand")
    await page.get_by_role("button", name="Show").click()
    await expect(page).to_have_url("/app/manager?branch=guilherand")
    await expect(stages.locator("tfoot td")).to_have_text("0")
    await page.get_by_label("Branch").select_option("")
    await page.get_by_role("button", name="Show").click()
    await expect(page.get_by_role("heading", name="Manager · All branches")).to_be_visible()
    await expect(stages.locator("tfoot td")).to_have_text("3")


async def test_the_managers_page_is_for_managers_and_says_what_went_wrong(page: Page) -> None:
    await sign_in(page, "tech.valence", language="en")
    await expect(page.get_by_role("link", name="Manager")).to_have_count(0)
    response = await page.goto("/app/manager")
    assert response is not None and response.status == 403
    await expect(page.get_by_role("alert")).to_contain_text("This page is for managers only.")

    await page.get_by_role("button", name="Sign out").click()
    await sign_in(page, "manager.valence", language="en")
    response = await page.goto("/app/manager?branch=guilherand")  # another branch's manager
    assert response is not None and response.status == 404
    await expect(page.get_by_role("alert")).to_contain_text("Not found, or not visible to you.")
    response = await page.goto("/app/manager?branch=%3Cscript%3E")
    assert response is not None and response.status == 400
    await expect(page.get_by_role("alert")).to_contain_text("This address is not valid.")
    response = await page.goto("/app/manager")
    assert response is not None and response.status == 200
    await expect(page.get_by_role("heading", name="Manager · Atelier Valence")).to_be_visible()
    await expect(page.get_by_label("Branch")).to_have_count(0)  # a branch's manager sees their branch


# --- the customer's tracking page -------------------------------------------------------------------


async def test_the_tracking_page_on_a_phone(browser: Browser, live_server: str, api: Api) -> None:
    job = await create_job(api)
    link = urlsplit(job["tracking_url"]).path
    await advance_to(api, job, "awaiting_approval")
    context = await browser.new_context(
        base_url=live_server, viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True
    )
    phone = await context.new_page()
    try:
        await phone.goto(link)
        await expect(phone.get_by_role("heading", name="Apple iPhone 13")).to_be_visible()
        await expect(phone.locator("[aria-current=step]")).to_have_text("Devis")
        await expect(phone.locator(".big")).to_contain_text("jeudi 26 novembre")
        await expect(phone.locator(".hours")).to_have_text("Horaires : lun-sam 09:00-19:00")
        width = await phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the page scrolls sideways ({width} px)"
        approve = phone.get_by_role("button", name="J'accepte le devis")
        decline = phone.get_by_role("button", name="Je refuse le devis")
        for button in (approve, decline):  # easy to tap: full width, at least 48 px high (the CSP let the style in)
            box = await button.bounding_box()
            assert box is not None and box["height"] >= 48 and box["width"] >= 300, box
        await screenshot(phone, "tracking")

        await approve.tap()
        await expect(phone.get_by_text("Devis accepté le")).to_be_visible()
        await expect(approve).to_have_count(0)
    finally:
        await context.close()
