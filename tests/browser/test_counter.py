"""The counter and the pickup desk in a real browser: intake with inline checks, the printable ticket, the
search, and the hand-over with the customer's code. Data is prepared and checked through the API."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.api.helpers import advance_to, create_job, get_job, imei, list_refs, pickup_code
from tests.browser.conftest import screenshot
from tests.browser.test_pages import sign_in
from tests.conftest import Api

TAKE_IN = "Enregistrer et imprimer le ticket"
HAND_OVER = "Remettre l'appareil"
TYPED = "Code de retrait ou référence du dossier"
WRONG_CODE = "2345-6789"  # well formed; the drawn codes are unique per branch, so not the job's (odds 1 in 8.5e11)


def wrong_check_digit(number: str) -> str:
    return number[:-1] + str((int(number[-1]) + 1) % 10)


async def fill_intake(page: Page, device_imei: str) -> None:
    await page.get_by_label("Nom", exact=True).fill("Camille Martin")
    await page.get_by_label("Téléphone", exact=True).fill("06 12 34 56 78")
    await page.get_by_label("Marque", exact=True).fill("Apple")
    await page.get_by_label("Modèle", exact=True).fill("iPhone 13")
    await page.get_by_label("IMEI", exact=True).fill(device_imei)
    await page.get_by_label("Code de déverrouillage").fill("1234")
    await page.get_by_label("État constaté").fill("rayure sur le cadre")
    await page.get_by_label("Chargeur").check()
    await page.get_by_label("Panne", exact=True).select_option("screen")
    await page.get_by_label("Description de la panne").fill("écran fissuré")
    await page.get_by_role("radio", name=re.compile("^Express")).check()


async def test_intake_checks_the_imei_inline_then_prints_the_ticket_and_the_search_finds_it(
    page: Page, api: Api
) -> None:
    await sign_in(page, "desk.valence")
    await page.goto("/app/counter")
    await expect(page.locator("#express-left strong")).to_have_text("6")  # the day's express slots, all free
    await expect(page.get_by_label("Code de déverrouillage")).to_have_attribute("type", "password")

    await fill_intake(page, wrong_check_digit(imei(7)))
    await page.get_by_label("IMEI", exact=True).press("Tab")  # leaving the field checks it (HTMX)
    await expect(page.locator("#imei-msg")).to_contain_text("chiffre de contrôle")
    await screenshot(page, "counter")

    await page.get_by_role("button", name=TAKE_IN).click()
    await expect(page.get_by_role("alert")).to_contain_text("Corrigez les champs signalés")
    await expect(page.locator("#imei-msg")).to_contain_text("chiffre de contrôle")
    await expect(page.get_by_label("IMEI", exact=True)).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Nom", exact=True)).to_have_value("Camille Martin")  # what was typed stays
    await expect(page.get_by_label("Chargeur")).to_be_checked()
    await expect(page.get_by_label("Code de déverrouillage")).to_have_value("")  # never sent back
    assert await list_refs(api, "desk.valence") == []  # nothing was created

    await page.get_by_label("IMEI", exact=True).fill(imei(7))
    await page.get_by_label("Code de déverrouillage").fill("1234")
    await page.get_by_role("button", name=TAKE_IN).click()

    await expect(page).to_have_url(re.compile(r"/app/jobs/AT-\d{6}/ticket"))
    ticket = page.locator("article.ticket")
    ref = (await ticket.locator(".ticket-ref").inner_text()).strip()
    await expect(page.get_by_role("status")).to_contain_text(f"Dossier {ref} enregistré")
    await expect(ticket.locator("svg.qr")).to_be_visible()
    await expect(ticket).to_contain_text("rayure sur le cadre")
    await expect(ticket).to_contain_text("Chargeur")
    await expect(ticket).to_contain_text("Express")
    await expect(ticket.locator(".consent")).to_contain_text("Je confirme l'état et les accessoires")
    await expect(ticket.locator(".link")).to_contain_text("/track/")
    await screenshot(page, "ticket")
    await page.emulate_media(media="print")
    await expect(page.get_by_role("button", name="Imprimer le ticket")).to_be_hidden()
    await expect(page.locator("header.top")).to_be_hidden()
    await screenshot(page, "ticket-print")
    await page.emulate_media(media="screen")

    job = await get_job(api, "desk.valence", ref)
    assert (job["tier"], job["has_passcode"], job["device"]["imei"]) == ("express", True, imei(7))
    assert job["device"]["accessories"] == ["Chargeur"]

    await page.goto("/app/counter")
    await expect(page.locator("#express-left strong")).to_have_text("5")  # one taken by this intake
    await page.get_by_role("searchbox").fill("06 12 34 56 78")
    await page.get_by_role("searchbox").press("Enter")
    row = page.locator(f"#results tr[data-ref='{ref}']")
    await expect(row).to_be_visible()
    await expect(row.get_by_role("link", name=ref)).to_have_attribute("href", f"/app/jobs/{ref}")
    await screenshot(page, "counter-search")


async def test_the_same_intake_form_sent_twice_makes_one_job(page: Page, api: Api) -> None:
    await sign_in(page, "desk.valence")
    await page.goto("/app/counter")
    await fill_intake(page, imei(8))
    # What the browser would send: the same form (same intake key) posted twice, as a double click does.
    body = await page.locator("form.intake").evaluate("f => Object.fromEntries(new FormData(f).entries())")
    first = await page.request.post("/app/counter/intake", form=body, max_redirects=0)
    again = await page.request.post("/app/counter/intake", form=body, max_redirects=0)
    assert first.status == again.status == 303
    assert first.headers["location"] == again.headers["location"]
    assert len(await list_refs(api, "desk.valence")) == 1


async def test_the_ticket_of_a_job_whose_link_was_revoked_has_no_qr_code(page: Page, api: Api) -> None:
    job = await create_job(api)
    revoked = await api.client.delete(f"/api/v1/jobs/{job['ref']}/tracking", headers=await api.login("desk.valence"))
    assert revoked.status_code == 204
    await sign_in(page, "desk.valence")
    response = await page.goto(f"/app/jobs/{job['ref']}/ticket")
    assert response is not None and response.headers["cache-control"] == "no-store"
    await expect(page.locator("article.ticket .ticket-ref")).to_have_text(job["ref"])
    await expect(page.locator("article.ticket svg")).to_have_count(0)
    await expect(page.locator("article.ticket")).to_contain_text("Lien de suivi révoqué")


async def test_a_refusal_of_the_intake_use_case_shows_next_to_its_field(page: Page, api: Api) -> None:
    await sign_in(page, "manager")  # chain-wide: names the branch that takes the device in
    await page.goto("/app/counter")
    await fill_intake(page, imei(9))
    await page.get_by_label("Code de l'atelier").fill("nowhere")
    await page.get_by_role("button", name=TAKE_IN).click()
    await expect(page.locator("#branch-msg")).to_contain_text("no such branch")
    assert await list_refs(api) == []

    await page.get_by_label("Code de l'atelier").fill("valence")
    await page.get_by_label("Code de déverrouillage").fill("1234")
    await page.get_by_role("button", name=TAKE_IN).click()
    await expect(page).to_have_url(re.compile(r"/app/jobs/AT-\d{6}/ticket"))


async def test_a_technician_is_told_intake_is_not_theirs(page: Page, api: Api) -> None:
    await sign_in(page, "tech.valence", language="en")
    await page.goto("/app/counter")
    await page.get_by_label("Name", exact=True).fill("Camille Martin")
    await page.get_by_label("Phone", exact=True).fill("06 12 34 56 78")
    await page.get_by_label("Brand", exact=True).fill("Apple")
    await page.get_by_label("Model", exact=True).fill("iPhone 13")
    await page.get_by_label("Serial number").fill("C02XL0GSJGH5")
    await page.get_by_label("Fault", exact=True).select_option("battery")
    await page.get_by_label("Fault description").fill("drains in an hour")
    await page.get_by_role("button", name="Save and print the ticket").click()
    await expect(page.get_by_role("alert")).to_contain_text("Not allowed for your role")
    await expect(page.get_by_label("Serial number")).to_have_value("C02XL0GSJGH5")
    assert await list_refs(api) == []


async def test_the_pickup_desk_finds_the_device_by_its_code_and_hands_it_over(page: Page, api: Api) -> None:
    job = await advance_to(api, await create_job(api), "ready_for_pickup")
    ref, code = job["ref"], await pickup_code(api, job["ref"])
    await sign_in(page, "desk.valence")
    await page.goto("/app/pickup")
    typed = page.get_by_label(TYPED)
    await expect(typed).to_be_focused()  # a scanner types into it at once
    await screenshot(page, "pickup")

    await typed.fill(WRONG_CODE)
    await typed.press("Enter")
    await expect(page.get_by_role("alert")).to_contain_text("Aucun appareil prêt n'a ce code")

    await typed.fill(code.lower().replace("-", " "))  # as a customer reads it out
    await typed.press("Enter")
    panel = page.locator(f".job-panel[data-ref='{ref}']")
    await expect(panel.locator("[data-slot]")).to_have_text(job["pickup_slot"])
    await expect(panel).to_contain_text("Réparé")
    await expect(panel.locator(".due-amount")).to_contain_text("89,00")
    await expect(page.get_by_label("Montant payé (€)")).to_have_value("89,00")
    await screenshot(page, "pickup-found")

    await page.get_by_label("Pièce d'identité vérifiée").check()
    await page.get_by_role("button", name=HAND_OVER).click()
    await expect(page.locator("[data-done]")).to_contain_text(f"{ref} remis au client")
    await expect(typed).to_be_focused()  # ready for the next customer
    await screenshot(page, "pickup-done")

    collected = await get_job(api, "desk.valence", ref)
    assert (collected["stage"], collected["paid_cents"]) == ("collected", 8900)


async def test_a_wrong_code_at_the_hand_over_is_counted_and_the_fifth_locks_pickup(page: Page, api: Api) -> None:
    job = await advance_to(api, await create_job(api), "ready_for_pickup")
    ref, code = job["ref"], await pickup_code(api, job["ref"])
    await sign_in(page, "desk.valence")
    await page.goto("/app/pickup")
    await page.get_by_label(TYPED).fill(ref)  # the reference, from the customer's ticket
    await page.get_by_label(TYPED).press("Enter")

    code_field = page.get_by_label("Code de retrait du client")
    await code_field.fill(WRONG_CODE)
    await page.get_by_role("button", name=HAND_OVER).click()
    await expect(page.locator("#code-msg")).to_contain_text("Code erroné (1 sur 5) : encore 4 essai(s)")
    await expect(code_field).to_have_value("")
    await screenshot(page, "pickup-wrong-code")

    for attempt in range(2, 6):  # each answer before the next try, as at a real counter
        await code_field.fill(WRONG_CODE)
        await page.get_by_role("button", name=HAND_OVER).click()
        if attempt < 5:
            await expect(page.locator("#code-msg")).to_contain_text(f"Code erroné ({attempt} sur 5)")
    await expect(page.locator("#code-msg")).to_contain_text("retrait bloqué jusqu'à 10:15")  # Paris time

    await code_field.fill(code)  # even the right code waits for the lock
    await page.get_by_role("button", name=HAND_OVER).click()
    await expect(page.get_by_role("alert")).to_contain_text("retrait bloqué jusqu'à 10:15 (dans 15 min)")
    await screenshot(page, "pickup-locked")
    assert (await get_job(api, "desk.valence", ref))["stage"] == "ready_for_pickup"


async def test_a_technician_is_told_the_pickup_desk_is_not_theirs(page: Page) -> None:
    await sign_in(page, "tech.valence", language="en")
    await page.goto("/app/pickup")
    await page.get_by_label("Pickup code or job reference").fill("AT-000001")
    await page.get_by_label("Pickup code or job reference").press("Enter")
    await expect(page.get_by_role("alert")).to_contain_text("Not allowed for your role")


async def test_the_pickup_desk_works_without_javascript_as_plain_forms(no_script: Page, api: Api) -> None:
    """Every step is a page of its own."""
    job = await advance_to(api, await create_job(api), "ready_for_pickup")
    page = no_script
    await sign_in(page, "desk.valence")
    await page.goto("/app/pickup")
    await page.get_by_label(TYPED).fill(await pickup_code(api, job["ref"]))
    await page.get_by_label(TYPED).press("Enter")
    await expect(page).to_have_url(re.compile(r"/app/pickup/find\?code="))
    await expect(page.locator("[data-slot]")).to_have_text(job["pickup_slot"])
    await page.get_by_role("button", name=HAND_OVER).click()
    await expect(page.locator("[data-done]")).to_contain_text(f"{job['ref']} remis au client")
    assert (await get_job(api, "desk.valence", job["ref"]))["stage"] == "collected"
