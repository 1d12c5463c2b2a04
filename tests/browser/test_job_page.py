"""The job page and the bench in a real browser: one-tap bench steps, the estimate editor, stage buttons
limited to the allowed moves, notes, the recorded passcode reveal, the stale-edit banner (the ETag rule)
and the parts' ETA timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.async_api import Page, expect

from domain.parts import format_po
from tests.api.helpers import create_job, events, get_job, if_match, move
from tests.api.parts_helpers import (
    SKU,
    add_part,
    add_supplier,
    change_line,
    iso,
    job_parts,
    job_with_lines,
    line_of,
    new_tenant,
    pin_stock,
    place_order,
    sandbox_orders,
)
from tests.browser.conftest import screenshot
from tests.browser.test_pages import sign_in
from tests.conftest import Api, FakeClock
from tests.sandbox_fixture import SandboxServer

TECH = "tech.valence"
STOP_POLLING = """document.body.addEventListener("htmx:beforeRequest", (e) => {
  if (e.detail.elt.id === "queue") e.preventDefault();
});"""


async def csrf_token(page: Page) -> str:
    cookies = await page.context.cookies()
    return next(cookie["value"] for cookie in cookies if cookie["name"] == "atelier_csrf")


async def open_job(page: Page, ref: str) -> None:
    await page.goto(f"/app/jobs/{ref}")
    await expect(page.get_by_role("heading", name=ref)).to_be_visible()


async def stage_buttons(page: Page) -> list[str]:
    buttons = page.locator("#moves button[name=to]")
    return sorted([await button.get_attribute("value") or "" for button in await buttons.all()])


async def test_the_bench_starts_a_diagnosis_in_one_tap(page: Page, api: Api) -> None:
    job = await create_job(api, tier="express")
    await sign_in(page, TECH, language="en")

    await page.goto("/app/bench")
    row = page.locator(f"li[data-ref='{job['ref']}']")
    await expect(row).to_contain_text("Received")
    await screenshot(page, "bench")
    await row.get_by_role("button", name=f"Start diagnosis {job['ref']}").click()

    await expect(page.get_by_role("status")).to_contain_text(f"{job['ref']}: Diagnosing")
    await expect(row).to_have_attribute("data-stage", "diagnosing")
    after = await get_job(api, TECH, job["ref"])
    assert (after["stage"], after["version"]) == ("diagnosing", job["version"] + 1)
    assert after["technician"] == TECH  # starting the diagnosis takes the job
    # No estimate yet: no one-tap step, the row sends the technician to the job page.
    await expect(row.get_by_role("link", name="Open the job")).to_be_visible()


async def test_a_stale_bench_tap_is_refused_and_the_queue_redrawn(page: Page, api: Api) -> None:
    job = await create_job(api)
    await sign_in(page, TECH, language="en")
    await page.goto("/app/bench")
    row = page.locator(f"li[data-ref='{job['ref']}']")
    await expect(row).to_be_visible()
    # The rows on screen stop refreshing, and someone else takes the job in the meantime.
    await page.evaluate(STOP_POLLING)
    moved = await move(api, "tech2.valence", job, "diagnosing")

    await row.get_by_role("button", name=f"Start diagnosis {job['ref']}").click()

    await expect(page.get_by_role("alert")).to_contain_text("Someone changed this job")
    assert (await get_job(api, TECH, job["ref"]))["version"] == moved["version"]


async def test_the_job_page_estimate_moves_notes_and_passcode(page: Page, api: Api) -> None:
    job = await create_job(api, passcode="4321")
    job = await move(api, TECH, job, "diagnosing")  # the technician takes it: the code is theirs to read
    await sign_in(page, TECH, language="en")
    await open_job(page, job["ref"])
    await expect(page.locator(".summary")).to_contain_text("Camille")
    await expect(page.locator(".summary")).not_to_contain_text("Martin")  # the first name only

    # Without an estimate, approval cannot be asked: only the moves the job allows are offered.
    assert await stage_buttons(page) == ["on_hold", "ready_for_pickup"]

    # The estimate editor: two lines, the second added in place.
    await page.get_by_label("Description 1").fill("OLED screen")
    await page.get_by_label("Unit price (€) 1").fill("89,00")
    await page.get_by_role("button", name="Add a line").click()
    await page.get_by_label("Kind 2").select_option("labour")
    await page.get_by_label("Description 2").fill("Fitting")
    await page.get_by_label("Unit price (€) 2").fill("30")
    await page.get_by_role("button", name="Save the estimate").click()

    await expect(page.get_by_role("status")).to_contain_text("Saved")
    await expect(page.locator("[data-total]")).to_have_text("€119.00")
    saved = await get_job(api, TECH, job["ref"])
    assert [(line["kind"], line["unit_price_cents"]) for line in saved["estimate"]["lines"]] == [
        ("part", 8900),
        ("labour", 3000),
    ]
    assert await stage_buttons(page) == ["awaiting_approval", "on_hold", "ready_for_pickup"]

    # Move it: the page shows the new stage and the moves from there.
    await page.get_by_role("button", name="Awaiting approval").click()
    await expect(page.locator(".stage-now")).to_have_text("Awaiting approval")
    assert (await get_job(api, TECH, job["ref"]))["stage"] == "awaiting_approval"
    assert await stage_buttons(page) == ["on_hold"]  # repairing waits for the customer's answer

    # A note, in the history at once.
    await page.get_by_label("New note").fill("Customer asked for a call first")
    await page.get_by_role("button", name="Add the note").click()
    await expect(page.locator("#history li[data-kind=note_added]")).to_contain_text("Customer asked for a call first")

    # The passcode: shown once, and the reveal is on the record.
    await page.get_by_role("button", name="Reveal the code (recorded)").click()
    await expect(page.locator("[data-code]")).to_have_text("4321")
    await expect(page.locator("#history li[data-kind=passcode_revealed]")).to_contain_text("Passcode revealed")
    assert [e["actor"] for e in await events(api, TECH, job["ref"]) if e["kind"] == "passcode_revealed"] == [TECH]
    await screenshot(page, "job")


async def test_the_passcode_button_is_only_for_the_assigned_technician(page: Page, api: Api) -> None:
    job = await create_job(api, passcode="4321")
    await move(api, "tech2.valence", job, "diagnosing")
    await sign_in(page, TECH, language="en")
    await open_job(page, job["ref"])

    await expect(page.locator("#passcode")).to_contain_text("Only the assigned technician or a manager")
    await expect(page.get_by_role("button", name="Reveal the code (recorded)")).to_have_count(0)


async def test_a_stale_edit_shows_the_banner_and_never_overwrites(page: Page, api: Api) -> None:
    job = await create_job(api)
    job = await move(api, TECH, job, "diagnosing")
    await sign_in(page, TECH)  # in French: the banner's own words
    await open_job(page, job["ref"])
    # Meanwhile, someone else changes the job through the API.
    response = await api.client.post(
        f"/api/v1/jobs/{job['ref']}/notes",
        json={"note": "called the customer"},
        headers={**(await api.login("tech2.valence")), **if_match(job)},
    )
    assert response.status_code == 200, response.text
    changed = response.json()

    await page.get_by_label("Nouvelle note").fill("my own note")
    await page.get_by_role("button", name="Ajouter la note").click()

    banner = page.get_by_role("alert")
    await expect(banner).to_contain_text("Quelqu'un a modifié ce dossier — recharger")
    await expect(page.get_by_label("Nouvelle note")).to_have_value("my own note")  # what was typed is kept
    after = await get_job(api, TECH, job["ref"])
    assert after["version"] == changed["version"]  # the page changed nothing
    assert "my own note" not in [e["note"] for e in await events(api, TECH, job["ref"])]
    # Saving again from the same (stale) page is refused too, until a reload.
    await page.get_by_label("Désignation 1").fill("Battery")
    await page.get_by_label("Prix unitaire (€) 1").fill("49")
    await page.get_by_role("button", name="Enregistrer le devis").click()
    await expect(banner).to_be_visible()
    assert (await get_job(api, TECH, job["ref"]))["estimate"]["lines"] == []

    await banner.get_by_role("link", name="Recharger le dossier").click()
    await expect(page.get_by_role("alert")).to_have_count(0)
    await page.get_by_label("Nouvelle note").fill("my own note")
    await page.get_by_role("button", name="Ajouter la note").click()
    await expect(page.locator("#history li[data-kind=note_added]").first).to_contain_text("my own note")


async def test_a_refused_change_is_explained_on_the_page(page: Page, api: Api) -> None:
    job = await create_job(api)
    job = await move(api, TECH, job, "diagnosing")
    await sign_in(page, TECH, language="en")
    await open_job(page, job["ref"])

    await page.get_by_label("Description 1").fill("Screen")
    await page.get_by_label("Quantity 1").fill("0")
    await page.get_by_label("Unit price (€) 1").fill("89")
    await page.get_by_role("button", name="Save the estimate").click()

    await expect(page.locator("#estimate [role=alert]")).to_contain_text("line 1 quantity")
    await expect(page.get_by_label("Description 1")).to_have_value("Screen")
    assert (await get_job(api, TECH, job["ref"]))["version"] == job["version"]

    # A move the job does not allow (a button from an older page, say) is explained, not a server error.
    response = await page.request.post(
        f"/app/jobs/{job['ref']}/move",
        form={"version": str(job["version"]), "to": "collected"},
        headers={"x-csrftoken": await csrf_token(page)},
    )
    assert response.status == 409
    assert "Not possible in the job" in await response.text()

    await page.goto("/app/jobs/AT-999999")
    await expect(page.get_by_role("alert")).to_contain_text("does not exist")


async def test_the_estimate_editor_works_without_javascript(no_script: Page, api: Api) -> None:
    job = await move(api, TECH, await create_job(api), "diagnosing")
    page = no_script
    await sign_in(page, TECH, language="en")
    await open_job(page, job["ref"])
    await page.get_by_label("Description 1").fill("Screen")
    await page.get_by_label("Unit price (€) 1").fill("89")
    await page.get_by_role("button", name="Add a line").click()  # the whole page again, one row more
    await expect(page.get_by_label("Description 1")).to_have_value("Screen")
    await page.get_by_label("Description 2").fill("Fitting")
    await page.get_by_label("Unit price (€) 2").fill("30")
    await page.get_by_role("button", name="Save the estimate").click()

    await expect(page).to_have_url(f"/app/jobs/{job['ref']}")  # redirected: a reload posts nothing again
    await expect(page.locator("[data-total]")).to_have_text("€119.00")


async def test_a_chain_wide_manager_names_the_branch_of_the_bench(page: Page, api: Api) -> None:
    job = await create_job(api)
    await sign_in(page, "manager", language="en")
    await page.goto("/app/bench")
    await expect(page.locator("#queue")).to_have_count(0)

    await page.get_by_label("Branch code").fill("nowhere")
    await page.get_by_role("button", name="Show").click()
    await expect(page.get_by_role("alert")).to_contain_text("no branch nowhere")

    await page.get_by_label("Branch code").fill("valence")
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator(f"li[data-ref='{job['ref']}']")).to_be_visible()


async def test_the_parts_timeline_shows_an_eta_revision(
    page: Page, api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    clock.now = datetime.now(UTC)  # the sandbox quotes ETAs from the real clock
    placed = await place_order(api, sandbox)
    ref, promised = placed.job["ref"], placed.order["lines"][0]["promised_at"]
    revised = datetime.fromisoformat(promised) + timedelta(days=2)
    response = await change_line(api, ref, placed.line_id, {"eta": iso(revised), "note": "phoned the supplier"})
    assert response.status_code == 200, response.text
    shown: dict[str, Any] = line_of(await job_parts(api, ref), placed.line_id)
    assert [r["source"] for r in shown["eta_history"]] == ["order", "staff"]

    await sign_in(page, TECH, language="en")
    await open_job(page, ref)

    part = page.locator(f"article.part[data-line='{placed.line_id}']")
    await expect(part.locator("svg circle")).to_have_count(2)  # the promise, then its revision
    await expect(part.locator("svg line.promise")).to_have_count(1)
    await expect(part.locator("svg line.move.slipped")).to_have_count(1)
    revisions = part.locator("ol.revisions li")
    await expect(revisions).to_have_count(2)
    await expect(revisions.nth(0)).to_have_attribute("data-source", "order")
    await expect(revisions.nth(1)).to_have_attribute("data-source", "staff")
    await expect(revisions.nth(1)).to_have_class("slipped")
    await expect(part).to_contain_text("late by 2 d")
    await expect(page.locator("#history li[data-kind=eta_revised]")).to_contain_text("(staff)")
    await screenshot(page, "job-parts")


# --- parts: add, compare, order, receive ---------------------------------------------------------


async def test_a_supplier_that_fails_the_order_is_named_and_the_line_stays_to_order(
    page: Page, api: Api, sandbox: SandboxServer
) -> None:
    offer = pin_stock(sandbox, new_tenant(), SKU, 5)
    await add_part(api)
    supplier = await add_supplier(api, sandbox, offer.tenant, name="Flaky parts")
    view = await job_with_lines(api, [(SKU, 1)])
    ref, line_id = view["ref"], view["lines"][0]["id"]
    await sign_in(page, TECH, language="en")
    await open_job(page, ref)
    part = page.locator(f"article.part[data-line='{line_id}']")
    await part.get_by_role("button", name="Compare suppliers").click()
    await expect(part.get_by_role("button", name="Order from Flaky parts")).to_be_visible()

    sandbox.set_faults(tenant=offer.tenant, error_rate=1)  # it goes down before the order
    await part.get_by_role("button", name="Order from Flaky parts").click()

    await expect(page.locator("#parts [role=alert]")).to_contain_text(
        "The supplier could not do it — Flaky parts", timeout=30_000
    )
    await expect(part.locator(".status")).to_have_text("needed")
    assert line_of(await job_parts(api, ref), line_id)["status"] == "needed"

    sandbox.set_faults(tenant=offer.tenant, error_rate=0)  # back up: ordering again places one order
    await part.get_by_role("button", name="Order (best offer)").click()
    await expect(part.locator(".status")).to_have_text("ordered")
    ordered_line = line_of(await job_parts(api, ref), line_id)
    assert ordered_line["supplier_id"] == supplier["id"]
    assert len(sandbox_orders(sandbox, offer.tenant, format_po(ordered_line["order_id"]))) == 1


async def test_the_front_desk_counts_a_delivery_in_but_neither_adds_nor_orders(
    page: Page, api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    clock.now = datetime.now(UTC)  # the sandbox quotes ETAs from the real clock
    placed = await place_order(api, sandbox)
    ref = placed.job["ref"]
    await sign_in(page, "desk.valence", language="en")
    await open_job(page, ref)
    part = page.locator(f"article.part[data-line='{placed.line_id}']")
    await expect(part.locator("[data-order]")).to_contain_text(placed.order["po"])
    await expect(page.get_by_role("button", name="Add a part")).to_have_count(0)
    await expect(part.get_by_role("button", name="Compare suppliers")).to_have_count(0)

    await part.get_by_role("button", name="Part received").click()

    await expect(part.locator(".status")).to_have_text("received")
    await expect(part.get_by_role("button", name="Part received")).to_have_count(0)
    assert line_of(await job_parts(api, ref), placed.line_id)["received_quantity"] == 1
    assert [e["kind"] for e in await events(api, TECH, ref) if e["kind"] == "parts_ready"] == ["parts_ready"]


async def test_a_part_is_added_without_javascript_and_a_malformed_number_is_explained(
    no_script: Page, api: Api
) -> None:
    await add_part(api)
    job = await move(api, TECH, await create_job(api), "diagnosing")
    page = no_script
    await sign_in(page, TECH, language="en")
    await open_job(page, job["ref"])
    await page.get_by_label("Part number (catalogue)").fill("screen oled!")
    await page.get_by_label("Quantity", exact=True).fill("2")
    await page.get_by_role("button", name="Add a part").click()
    await expect(page.locator("#parts [role=alert]")).to_contain_text("sku: ")
    await expect(page.get_by_label("Part number (catalogue)")).to_have_value("screen oled!")
    assert (await job_parts(api, job["ref"]))["lines"] == []

    await page.get_by_label("Part number (catalogue)").fill(SKU)
    await page.get_by_role("button", name="Add a part").click()

    await expect(page).to_have_url(f"/app/jobs/{job['ref']}")  # redirected: a reload posts nothing again
    await expect(page.locator("article.part h3")).to_contain_text(f"{SKU} \u00d7 2")
    await expect(page.locator(".stage-now")).to_have_text("Awaiting parts")
    (line,) = (await job_parts(api, job["ref"]))["lines"]
    assert (line["sku"], line["quantity"], line["status"]) == (SKU, 2, "needed")
