"""The staff pages in a real browser: sign-in (cookie session, CSRF) and the live board."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.api.helpers import create_job
from tests.browser.conftest import screenshot
from tests.conftest import PASSWORD, Api, FakeClock


async def sign_in(page: Page, username: str, *, language: str = "fr") -> None:
    await page.goto("/app/board")
    await expect(page).to_have_url("/app/signin?next=/app/board")
    await page.get_by_label("Identifiant").fill(username)
    await page.get_by_label("Mot de passe").fill(PASSWORD)
    await page.get_by_label("Langue").select_option(language)
    await page.get_by_role("button", name="Se connecter").click()


async def test_a_wrong_password_is_refused_and_the_right_one_opens_the_board(page: Page) -> None:
    await page.goto("/app/signin")
    await screenshot(page, "signin")
    await page.get_by_label("Identifiant").fill("desk.valence")
    await page.get_by_label("Mot de passe").fill("not-the-password")
    await page.get_by_role("button", name="Se connecter").click()
    await expect(page.get_by_role("alert")).to_contain_text("incorrect")

    await sign_in(page, "desk.valence")

    await expect(page).to_have_url("/app/board")
    await expect(page.get_by_role("heading", name="Tableau")).to_be_visible()
    await page.get_by_role("button", name="Se déconnecter").click()
    await expect(page).to_have_url("/app/signin")
    await page.goto("/app/board")
    await expect(page).to_have_url("/app/signin?next=/app/board")  # signed out for real


async def test_a_form_without_its_csrf_token_is_refused(page: Page) -> None:
    await sign_in(page, "desk.valence")
    response = await page.request.post("/app/signout", form={"x": "1"})
    assert response.status == 403


async def test_the_board_shows_a_new_job_without_a_reload_express_marked(
    page: Page, api: Api, clock: FakeClock
) -> None:
    await sign_in(page, "tech.valence", language="en")
    await expect(page.get_by_role("heading", name="Board")).to_be_visible()
    received = page.locator("section[data-stage=received]")
    await expect(received.locator("article")).to_have_count(0)

    job = await create_job(api, tier="express")

    card = received.locator(f"article[data-ref='{job['ref']}']")
    await expect(card).to_be_visible(timeout=10_000)  # the board polls for fresh columns
    await expect(card.locator(".badge.express")).to_have_text("Express")
    await expect(card).to_contain_text("due in")
    await screenshot(page, "board")
    # Once the promise has passed, the same card says so.
    clock.advance(hours=6)
    await expect(card).to_contain_text("breached", timeout=10_000)
