"""One job's whole life through the pages, in a real browser, as the shop lives it: the counter PC (front
desk, in French) and the bench tablet (a technician, in English), both 768 px wide, on one live server.

Sign in → intake refused for a wrong IMEI check digit, then taken → the printable ticket → the board shows
the job → the bench starts the diagnosis → estimate within the pre-approved budget → a part added, the
suppliers compared and the part ordered from the sandbox (over real HTTP) → the clock passes the promise:
the part shows late → received → repair, check, ready → the code arrives by SMS (the sandbox's gateway) →
the pickup desk hands the device over with it. One screenshot per page, under `test-artifacts/`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page, expect

from domain.parts import format_po
from domain.stages import Stage
from service.settings import Settings
from service.web.i18n import stage_name
from tests.api.helpers import get_job, imei
from tests.api.parts_helpers import SKU, add_part, add_supplier, at, job_parts, new_tenant, pin_stock, sandbox_orders
from tests.browser.conftest import new_page, screenshot
from tests.browser.test_counter import HAND_OVER, TAKE_IN, TYPED, fill_intake, wrong_check_digit
from tests.browser.test_pages import sign_in
from tests.conftest import PASSWORD, Api, FakeClock
from tests.messages import CODE, deliver, sms_services, texts_to
from tests.sandbox_fixture import SandboxServer

DESK, TECH = "desk.valence", "tech.valence"
PHONE = "+33612345678"  # "06 12 34 56 78" as fill_intake types it
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
async def bench(browser: Browser, live_server: str) -> AsyncIterator[Page]:
    """The technician's tablet: a browser of its own beside the counter's (`page`)."""
    async with new_page(browser, live_server) as opened:
        yield opened


async def sign_in_again(page: Page, username: str, language: str, then: str) -> None:
    """Days have passed on the clock: the session ran out, as it would overnight. Sign in and go on."""
    await page.goto(f"/app/signin?next={then}")
    await page.locator("input[name=username]").fill(username)
    await page.locator("input[name=password]").fill(PASSWORD)
    await page.locator("select[name=lang]").select_option(language)
    await page.locator("form button[type=submit]").click()
    await expect(page).to_have_url(then)


def next_morning(moment: datetime) -> datetime:
    """10:30 in Valence after `moment`: the shop is open and text messages are not held for quiet hours."""
    local = moment.astimezone(PARIS)
    morning = local.replace(hour=10, minute=30, second=0, microsecond=0)
    if morning <= local:
        morning += timedelta(days=1)
    return morning.astimezone(UTC)


async def test_a_job_from_the_counter_to_the_pickup_desk(
    page: Page,
    bench: Page,
    api: Api,
    clock: FakeClock,
    sandbox: SandboxServer,
    sandbox_tenant: str,
    settings: Settings,
) -> None:
    desk = page
    clock.now = datetime.now(UTC).replace(microsecond=0)  # the sandbox dates its offers on the real clock
    supplier_tenant = new_tenant()
    offer = pin_stock(sandbox, supplier_tenant, SKU, 10)
    await add_part(api)
    supplier = await add_supplier(api, sandbox, supplier_tenant)

    # --- the counter: a wrong IMEI is refused inline, the right one takes the phone in ---------------
    await sign_in(desk, DESK)
    await desk.goto("/app/counter")
    await fill_intake(desk, wrong_check_digit(imei(3)))
    await desk.get_by_label("Accepte les SMS de suivi").check()
    await desk.get_by_label("Budget accepté d'avance (€)").fill("200")
    await desk.get_by_role("button", name=TAKE_IN).click()
    await expect(desk.locator("#imei-msg")).to_contain_text("chiffre de contrôle")
    await screenshot(desk, "journey-counter")

    await desk.get_by_label("IMEI", exact=True).fill(imei(3))
    await desk.get_by_label("Code de déverrouillage").fill("1234")
    await desk.get_by_role("button", name=TAKE_IN).click()
    await expect(desk).to_have_url(re.compile(r"/app/jobs/AT-\d{6}/ticket"))
    ticket = desk.locator("article.ticket")
    ref = (await ticket.locator(".ticket-ref").inner_text()).strip()
    await expect(ticket.locator("svg.qr")).to_be_visible()
    await desk.emulate_media(media="print")
    await expect(desk.locator("header.top")).to_be_hidden()
    await screenshot(desk, "journey-ticket-print")
    await desk.emulate_media(media="screen")
    job = await get_job(api, DESK, ref)
    assert (job["tier"], job["preapproved_budget_cents"], job["stage"]) == ("express", 20_000, "received")

    # --- the board shows it, express ----------------------------------------------------------------
    await desk.goto("/app/board")
    card = desk.locator(f"section[data-stage='received'] article.card[data-ref='{ref}']")
    await expect(card).to_have_class(re.compile(r"\bexpress\b"))
    await screenshot(desk, "journey-board")

    # --- the bench: diagnosis, an estimate within the budget ----------------------------------------
    await sign_in(bench, TECH, language="en")
    await bench.goto("/app/bench")
    await bench.get_by_role("button", name=f"Start diagnosis {ref}").click()
    await expect(bench.locator(f"li[data-ref='{ref}']")).to_have_attribute("data-stage", "diagnosing")
    await screenshot(bench, "journey-bench")
    await bench.goto(f"/app/jobs/{ref}")
    await bench.get_by_label("Description 1").fill("OLED screen and fitting")
    await bench.get_by_label("Unit price (€) 1").fill("150")
    await bench.get_by_role("button", name="Save the estimate").click()
    await expect(bench.locator("[data-total]")).to_have_text("€150.00")

    # --- a part: a wrong number refused, the right one added, the suppliers compared, ordered ---------
    await bench.get_by_label("Part number (catalogue)").fill("NO-SUCH-PART")
    await bench.get_by_role("button", name="Add a part").click()
    await expect(bench.locator("#parts [role=alert]")).to_contain_text("NO-SUCH-PART is not in the catalogue")
    await expect(bench.get_by_label("Part number (catalogue)")).to_have_value("NO-SUCH-PART")  # kept to correct
    await bench.get_by_label("Part number (catalogue)").fill(SKU.lower())
    await bench.get_by_role("button", name="Add a part").click()
    await expect(bench.locator(".stage-now")).to_have_text("Awaiting parts")
    part = bench.locator("article.part")
    await expect(part.locator(".status")).to_have_text("needed")

    await part.get_by_role("button", name="Compare suppliers").click()
    offers = part.get_by_role("region", name="Suppliers' offers")
    await expect(offers.locator(f"tr[data-supplier='{supplier['id']}'] td.n").first).to_have_text(str(10))
    await expect(offers.locator("[data-choice]")).to_contain_text(supplier["name"])
    await screenshot(bench, "journey-offers")
    await offers.get_by_role("button", name=f"Order from {supplier['name']}").click()
    await expect(part.locator(".status")).to_have_text("ordered")
    await expect(part.locator("[data-order] .supplier")).to_have_text(supplier["name"])
    (line,) = (await job_parts(api, ref))["lines"]
    assert line["status"] == "ordered" and line["supplier_id"] == supplier["id"]
    po = format_po(line["order_id"])
    await expect(part.locator("[data-order]")).to_contain_text(po)
    assert len(sandbox_orders(sandbox, supplier_tenant, po)) == 1  # placed at the supplier, once
    promised = at(line["promised_at"])
    assert abs(promised - offer.eta) < timedelta(minutes=1)  # the supplier's date (it runs on the real clock)

    # --- the promise passes without the part: late, on the job and on the late list -------------------
    clock.now = promised + timedelta(hours=3)
    await sign_in_again(bench, TECH, "en", f"/app/jobs/{ref}")
    await expect(part.locator(".late")).to_contain_text("late by 3 h")
    await bench.goto("/app/late")
    late = bench.locator(f"tr[data-line='{line['id']}']")
    await expect(late.get_by_role("link", name=ref)).to_be_visible()
    await expect(late.locator(".supplier")).to_have_text(supplier["name"])
    await screenshot(bench, "journey-late")

    # --- it arrives; repair, check, ready from the bench ------------------------------------------------
    await late.get_by_role("link", name=ref).click()
    await part.get_by_role("button", name="Part received").click()
    await expect(part.locator(".status")).to_have_text("received")
    await expect(bench.locator("#history li[data-kind=parts_ready]")).to_have_count(1)
    await screenshot(bench, "journey-job")

    clock.now = next_morning(clock.now)
    await sign_in_again(bench, TECH, "en", "/app/bench")
    row = bench.locator(f"li[data-ref='{ref}']")
    for step, stage in (
        ("Start the repair", Stage.REPAIRING),
        ("Finish the repair", Stage.QUALITY_CHECK),
        ("Check passed: ready", Stage.READY_FOR_PICKUP),
    ):
        await row.get_by_role("button", name=f"{step} {ref}").click()
        await expect(bench.get_by_role("status")).to_contain_text(f"{ref}: {stage_name(stage, 'en')}")
        assert (await get_job(api, TECH, ref))["stage"] == stage.value
    job = await get_job(api, TECH, ref)
    assert (job["stage"], job["approval"]["source"]) == ("ready_for_pickup", "preapproved_budget")

    # --- the code arrives by SMS; the pickup desk hands the phone over with it ------------------------
    async with sms_services(settings, clock, sandbox, sandbox_tenant) as services:
        await deliver(services, ref, clock)
    sent = CODE.search(texts_to(sandbox, sandbox_tenant, PHONE)[-1])
    assert sent is not None
    await sign_in_again(desk, DESK, "fr", "/app/pickup")
    await desk.get_by_label(TYPED).fill(sent.group(0))
    await desk.get_by_label(TYPED).press("Enter")
    await expect(desk.locator(f".job-panel[data-ref='{ref}'] [data-slot]")).to_have_text(job["pickup_slot"])
    await desk.get_by_label("Pièce d'identité vérifiée").check()
    await desk.get_by_role("button", name=HAND_OVER).click()
    await expect(desk.locator("[data-done]")).to_contain_text(f"{ref} remis au client")
    await screenshot(desk, "journey-pickup")
    collected = await get_job(api, DESK, ref)
    assert (collected["stage"], collected["pickup_slot"], collected["has_passcode"]) == ("collected", None, False)
