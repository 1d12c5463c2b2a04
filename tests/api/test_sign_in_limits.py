"""Sign-in attempts are limited per address and per username, on the API's token endpoint and on the
staff pages' sign-in form alike (429 with Retry-After), before any password is checked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar.testing import AsyncTestClient

from service.app import create_app
from service.settings import Settings
from tests.api.helpers import assert_problem
from tests.conftest import PASSWORD, FakeClock

TOKEN = "/api/v1/auth/token"


def limited(settings: Settings, clock: FakeClock, **limits: int) -> Callable[[], Any]:
    @asynccontextmanager
    async def client() -> AsyncIterator[AsyncTestClient[Any]]:
        async with AsyncTestClient(app=create_app(settings.model_copy(update=limits), clock=clock)) as opened:
            yield opened

    return client


async def test_a_username_guessed_too_often_waits_even_with_the_right_password(
    settings: Settings, clock: FakeClock, clean_db: None
) -> None:
    async with limited(settings, clock, sign_in_rate_per_minute_user=2)() as client:
        for _ in range(2):
            wrong = await client.post(TOKEN, json={"username": "Desk.Valence", "password": "guess"})
            assert wrong.status_code == 401

        refused = await client.post(TOKEN, json={"username": "desk.valence", "password": PASSWORD})

        assert_problem(refused, 429)
        assert int(refused.headers["retry-after"]) >= 1
        assert "access_token" not in refused.text
        other = await client.post(TOKEN, json={"username": "tech.valence", "password": PASSWORD})
        assert other.status_code == 200


async def test_one_address_trying_many_usernames_is_slowed(
    settings: Settings, clock: FakeClock, clean_db: None
) -> None:
    async with limited(settings, clock, sign_in_rate_per_minute_ip=3)() as client:
        answers = [
            (await client.post(TOKEN, json={"username": name, "password": "guess"})).status_code
            for name in ("desk.valence", "tech.valence", "manager", "tech2.valence")
        ]
    assert answers == [401, 401, 401, 429]


async def test_the_sign_in_page_says_how_long_to_wait(settings: Settings, clock: FakeClock, clean_db: None) -> None:
    async with limited(settings, clock, sign_in_rate_per_minute_user=1)() as client:
        await client.get("/app/signin")  # sets the CSRF cookie the form sends back
        csrf = {"x-csrftoken": client.cookies["atelier_csrf"]}
        form = {"username": "desk.valence", "password": "guess", "lang": "fr"}
        assert (await client.post("/app/signin", data=form, headers=csrf)).status_code == 401

        refused = await client.post("/app/signin", data={**form, "password": PASSWORD}, headers=csrf)

    assert refused.status_code == 429
    assert "Trop de tentatives de connexion" in refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert "atelier_session" not in refused.headers.get("set-cookie", "")  # not signed in
