"""The customer's link, no login: GET /track/{token} (HTML or JSON), POST /track/{token}/approval, and the
staff endpoints that show, renew and revoke it (/api/v1/jobs/{ref}/tracking)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from domain.model import RepairJob
from service.app import create_app
from service.persistence.db import create_engine
from service.persistence.jobs import JobRepository
from service.persistence.tables import job_t
from service.persistence.tracking import TrackingRepository
from service.secrets import PasscodeCipher
from service.settings import Settings
from service.uow import Database
from service.usecases.passcodes import rotate_data_keys
from tests.api.helpers import (
    JOBS,
    act,
    advance_to,
    assert_problem,
    create_job,
    estimate,
    events,
    get_job,
    imei,
    intake_body,
    move,
)
from tests.api.parts_helpers import SKU, add_lines, add_part
from tests.conftest import PASSCODE_KEY, Api, FakeClock

JSON = {"Accept": "application/json"}
PASSCODE = "zq-8317-secret"
# What the customer's link must never show.
PRIVATE = ("Camille", "Martin", "+33612345678", "06 12 34 56 78", "camille@example.org", imei(), PASSCODE, "cracked")


def _path(job: dict[str, Any]) -> str:
    url = job["tracking_url"]
    assert isinstance(url, str)
    return urlsplit(url).path


async def _job_awaiting_approval(api: Api, **overrides: Any) -> dict[str, Any]:
    job = await create_job(api, passcode=PASSCODE, **overrides)
    link = _path(job)
    job = await advance_to(api, job, "awaiting_approval")
    job["tracking_url"] = link
    return job


async def _answer(api: Api, job: dict[str, Any], approved: bool, **extra: Any) -> httpx.Response:
    return await api.client.post(f"{_path(job)}/approval", json={"approved": approved, **extra}, headers=JSON)


async def _form(api: Api, job: dict[str, Any], **fields: str) -> httpx.Response:
    return await api.client.post(
        f"{_path(job)}/approval",
        content="&".join(f"{key}={value}" for key, value in fields.items()),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )


def _public_headers(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "noindex" in response.headers["x-robots-tag"]


# --- the link at intake ---------------------------------------------------------------------------


async def test_intake_gives_an_unguessable_link(api: Api) -> None:
    first, second = await create_job(api), await create_job(api)
    for job in (first, second):
        url = urlsplit(job["tracking_url"])
        assert url.path.startswith("/track/")
        token = url.path.removeprefix("/track/")
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # 32 random bytes: 256 bits
    assert first["tracking_url"] != second["tracking_url"]
    # Only the intake answer carries it: reading the job does not.
    assert (await get_job(api, "desk.valence", first["ref"]))["tracking_url"] is None


async def test_idempotent_intake_replays_the_same_link(api: Api) -> None:
    headers = {**(await api.login("desk.valence")), "Idempotency-Key": "track-1"}
    first = await api.client.post(JOBS, json=intake_body(), headers=headers)
    retry = await api.client.post(JOBS, json=intake_body(), headers=headers)
    assert first.status_code == retry.status_code == 201
    assert first.json()["tracking_url"] and retry.json()["tracking_url"] == first.json()["tracking_url"]


# --- the page -------------------------------------------------------------------------------------


async def test_page_shows_the_stage_in_plain_words_and_nothing_private(api: Api) -> None:
    job = await create_job(api, passcode=PASSCODE)
    page = await api.client.get(_path(job))  # no Authorization: the token is the credential
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    _public_headers(page)
    assert "default-src 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert '<html lang="fr">' in html and '<meta name="robots" content="noindex, nofollow">' in html
    assert "Appareil reçu" in html and "Apple iPhone 13" in html and job["ref"] in html
    assert "Date promise" in html and "jeudi 26 novembre à 10:00" in html  # standard: 3 business days
    assert "Horaires : lun-sam 09:00-19:00" in html and "Atelier Valence" in html
    assert "<form" not in html  # nothing to answer yet
    for private in PRIVATE:
        assert private not in html, private

    data = (await api.client.get(_path(job), headers=JSON)).json()
    assert data["stage"] == "received" and data["stage_title"] == "Appareil reçu"
    assert data["promised_at"] == job["due_at"].replace("+00:00", "Z") or data["promised_at"] == job["due_at"]
    assert data["branch"]["hours"] == "lun-sam 09:00-19:00"
    assert data["awaits_answer"] is False and data["estimate"] is None and data["parts_delay"] is None
    for private in PRIVATE:
        assert private not in str(data), private


async def test_page_speaks_the_customers_language_or_the_one_asked_for(api: Api) -> None:
    job = await create_job(api, customer={"name": "Ada Lovelace", "phone": "0611223344", "language": "en"})
    english = await api.client.get(_path(job))
    assert '<html lang="en">' in english.text and "Device received" in english.text
    assert "Opening hours: Mon-Sat 09:00-19:00" in english.text
    french = await api.client.get(_path(job), params={"lang": "fr"})
    assert '<html lang="fr">' in french.text and "Appareil reçu" in french.text
    assert "Ada" not in english.text + french.text


async def test_everything_on_the_page_is_escaped(api: Api) -> None:
    device = {"brand": "<b>Evil</b>", "model": "<script>alert(1)</script>", "imei": imei(2)}
    job = await create_job(api, device=device)
    html = (await api.client.get(_path(job))).text
    assert "<script>" not in html and "<b>Evil" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize("token", ["nope", "A" * 43, "%3Cscript%3E", "x" * 300])
async def test_unknown_tokens_are_404(api: Api, token: str) -> None:
    page = await api.client.get(f"/track/{token}")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Lien introuvable" in page.text
    assert_problem(await api.client.get(f"/track/{token}", headers=JSON), 404)
    assert_problem(await api.client.post(f"/track/{token}/approval", json={"approved": True}), 404)


async def test_a_staff_token_does_not_matter_to_the_public_routes(api: Api) -> None:
    job = await create_job(api)
    garbage = await api.client.get(_path(job), headers={"Authorization": "Bearer x"})
    assert garbage.status_code == 200


async def test_parts_delay_in_plain_words(api: Api, clock: FakeClock) -> None:
    """A part whose ETA pushes the forecast past the promise: the page says so, with the new date."""
    await add_part(api)
    job = await create_job(api)
    link = _path(job)
    added = await add_lines(api, job["ref"], {"sku": SKU, "quantity": 1})
    assert added.status_code == 201, added.text
    line = added.json()["lines"][0]["id"]
    late_eta = "2026-12-04T10:00:00+00:00"  # past the promise (Thursday 26 November)
    changed = await api.client.patch(
        f"{JOBS}/{job['ref']}/parts/{line}", json={"eta": late_eta}, headers=await api.login("tech.valence")
    )
    assert changed.status_code == 200, changed.text

    data = (await api.client.get(link, headers=JSON)).json()
    assert data["stage"] == "awaiting_parts" and data["stage_title"] == "En attente de pièces"
    assert data["parts_delay"].startswith("Une pièce arrive plus tard que prévu")
    assert "vendredi 4 décembre" in data["parts_delay"] and "jeudi 26 novembre" in data["parts_delay"]
    assert data["expected_ready_at"] is not None
    html = (await api.client.get(link)).text
    assert "Une pièce arrive plus tard que prévu" in html


# --- the customer's answer ------------------------------------------------------------------------


async def test_customer_approves_through_the_link(api: Api) -> None:
    job = await _job_awaiting_approval(api)
    page = await api.client.get(_path(job))
    assert "Devis en attente de votre accord" in page.text and "89,00 €" in page.text
    assert f'action="{_path(job)}/approval"' in page.text
    assert 'name="approved" value="true"' in page.text and 'name="approved" value="false"' in page.text

    response = await _answer(api, job, True, note="Allez-y, merci")
    assert response.status_code == 200, response.text
    _public_headers(response)
    body = response.json()
    assert body["answer"]["approved"] is True and body["answer"]["source"] == "customer"
    assert body["awaits_answer"] is False

    after = await get_job(api, "tech.valence", job["ref"])
    assert after["version"] == job["version"] + 1
    assert after["approval"]["source"] == "customer" and after["approval"]["by"] == "customer"
    recorded = (await events(api, "desk.valence", job["ref"]))[-1]
    assert recorded["kind"] == "approval_recorded" and recorded["actor"] == "customer"
    assert recorded["data"]["source"] == "customer" and recorded["note"] == "Allez-y, merci"
    # The branch's staff are told; the other branch is not.
    alerts = (await api.client.get("/api/v1/alerts", headers=await api.login("desk.valence"))).json()
    assert [(a["kind"], a["ref"], a["audience"], a["data"]["approved"]) for a in alerts] == [
        ("customer_answer", job["ref"], "staff", True)
    ]
    assert (await api.client.get("/api/v1/alerts", headers=await api.login("desk.guilherand"))).json() == []
    # The repair can start now.
    assert "repairing" in after["allowed_transitions"]


async def test_the_answer_may_be_given_in_words(api: Api) -> None:
    declined = await _job_awaiting_approval(api)
    response = await api.client.post(f"{_path(declined)}/approval", json={"decision": "decline"}, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["answer"]["approved"] is False
    approved = await _job_awaiting_approval(api)
    response = await api.client.post(f"{_path(approved)}/approval", json={"decision": "approved"}, headers=JSON)
    assert response.json()["answer"]["approved"] is True
    # One answer, given once: both ways at once, or neither, is refused and records nothing.
    third = await _job_awaiting_approval(api)
    for body in ({"approved": True, "decision": "decline"}, {"note": "ok"}, {"decision": "maybe"}):
        response = await api.client.post(f"{_path(third)}/approval", json=body, headers=JSON)
        assert response.status_code == 422, (body, response.text)
    assert (await get_job(api, "tech.valence", third["ref"]))["approval"] is None


async def test_an_express_estimate_over_the_budget_asks_the_customer(api: Api) -> None:
    """Within its budget an express repair goes ahead (the page says so); over it, the customer is asked
    through the link, and the bench waits for their answer."""
    within = await create_job(api, tier="express", preapproved_budget_cents=10000)
    link = _path(within)
    within = await estimate(api, "tech.valence", await move(api, "tech.valence", within, "diagnosing"), 8900)
    await move(api, "tech.valence", within, "repairing")
    data = (await api.client.get(link, headers=JSON)).json()
    assert data["answer"]["source"] == "preapproved_budget" and data["awaits_answer"] is False
    assert "budget que vous aviez accepté" in (await api.client.get(link)).text

    over = await create_job(api, tier="express", preapproved_budget_cents=5000)
    link = _path(over)
    over = await estimate(api, "tech.valence", await move(api, "tech.valence", over, "diagnosing"), 8900)
    assert "repairing" not in over["allowed_transitions"]
    over = await move(api, "tech.valence", over, "awaiting_approval")
    assert (await api.client.get(link, headers=JSON)).json()["awaits_answer"] is True
    over["tracking_url"] = link
    assert (await _answer(api, over, True)).status_code == 200
    assert "repairing" in (await get_job(api, "tech.valence", over["ref"]))["allowed_transitions"]


async def test_the_same_answer_twice_changes_nothing_and_another_is_409(api: Api) -> None:
    job = await _job_awaiting_approval(api)
    assert (await _answer(api, job, False)).status_code == 200
    again = await _answer(api, job, False)  # a double click
    assert again.status_code == 200
    after = await get_job(api, "desk.valence", job["ref"])
    assert after["version"] == job["version"] + 1
    assert_problem(await _answer(api, job, True), 409)
    alerts = (await api.client.get("/api/v1/alerts", headers=await api.login("desk.valence"))).json()
    assert len(alerts) == 1
    assert (await get_job(api, "desk.valence", job["ref"]))["approval"]["approved"] is False


async def test_no_answer_is_expected_before_the_estimate_or_once_work_started(api: Api) -> None:
    job = await create_job(api)
    assert_problem(await api.client.post(f"{_path(job)}/approval", json={"approved": True}), 409)
    job = await _job_awaiting_approval(api)
    current = await get_job(api, "desk.valence", job["ref"])
    status, job_now = await act(api, "desk.valence", current, "POST", "/approval", {"approved": True})
    assert status == 200
    await move(api, "tech.valence", job_now, "repairing")
    assert_problem(await _answer(api, job, False), 409)
    events_after = [e["kind"] for e in await events(api, "desk.valence", job["ref"])]
    assert events_after.count("approval_recorded") == 1


async def test_answer_body_is_validated(api: Api) -> None:
    job = await _job_awaiting_approval(api)
    path = f"{_path(job)}/approval"
    assert_problem(await api.client.post(path, json={"approved": "yes"}), 422, "approved")
    assert_problem(await api.client.post(path, json={}), 422, "approved")
    assert_problem(await api.client.post(path, json={"approved": True, "stage": "repairing"}), 422, "stage")
    assert_problem(await api.client.post(path, json={"approved": True, "note": "x" * 4001}), 422, "note")
    assert_problem(await api.client.post(path, content=b"not json", headers={"Content-Type": "application/json"}), 400)
    assert (await get_job(api, "desk.valence", job["ref"]))["approval"] is None


async def test_the_pages_form_answers_and_comes_back_to_the_page(api: Api) -> None:
    job = await _job_awaiting_approval(api)
    response = await _form(api, job, approved="false", note="Trop+cher", lang="en")
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"{_path(job)}?lang=en"
    after = await get_job(api, "desk.valence", job["ref"])
    assert after["approval"]["approved"] is False and after["approval"]["source"] == "customer"
    assert after["approval"]["note"] == "Trop cher"
    page = await api.client.get(response.headers["location"])
    assert "Estimate declined on" in page.text and "<form" not in page.text
    # Another answer from the form: the page again, with why.
    conflict = await _form(api, job, approved="true")
    assert conflict.status_code == 409 and conflict.headers["content-type"].startswith("text/html")
    assert 'role="alert">Votre réponse n' in conflict.text  # the customer's language: the form said none
    assert_problem(await _form(api, job, approved="maybe"), 422, "approved")


# --- staff: show, renew, revoke -------------------------------------------------------------------


async def test_staff_read_renew_and_revoke_the_link(api: Api) -> None:
    job = await create_job(api)
    desk = await api.login("desk.valence")
    url = f"{JOBS}/{job['ref']}/tracking"
    shown = await api.client.get(url, headers=await api.login("tech.valence"))
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    assert shown.json()["tracking_url"] == job["tracking_url"] and shown.json()["active"] is True
    assert shown.json()["issued_at"] is not None and shown.json()["expires_at"] is None

    assert_problem(await api.client.post(url, headers=await api.login("tech.valence")), 403)
    renewed = await api.client.post(url, headers=desk)
    assert renewed.status_code == 201, renewed.text
    new_url = renewed.json()["tracking_url"]
    assert new_url and new_url != job["tracking_url"]
    assert (await api.client.get(_path(job))).status_code == 404  # the old link stops at once
    assert (await api.client.get(urlsplit(new_url).path)).status_code == 200

    assert_problem(await api.client.delete(url, headers=await api.login("tech.valence")), 403)
    assert (await api.client.delete(url, headers=desk)).status_code == 204
    assert (await api.client.get(urlsplit(new_url).path)).status_code == 404
    revoked = (await api.client.get(url, headers=desk)).json()
    assert revoked["tracking_url"] is None and revoked["active"] is False
    assert (await api.client.delete(url, headers=desk)).status_code == 204  # revoking twice is harmless

    kinds = [e["kind"] for e in await events(api, "desk.valence", job["ref"])]
    assert kinds == ["created", "tracking_revoked", "tracking_issued", "tracking_revoked"]
    # None of it is a change of the repair: nobody's If-Match goes stale.
    assert (await get_job(api, "desk.valence", job["ref"]))["version"] == job["version"]
    # A link can be issued again after a revocation.
    assert (await api.client.post(url, headers=await api.login("manager.valence"))).status_code == 201


async def test_another_branch_sees_no_link(api: Api) -> None:
    job = await create_job(api)
    other = await api.login("desk.guilherand")
    for method in ("GET", "POST", "DELETE"):
        assert_problem(await api.client.request(method, f"{JOBS}/{job['ref']}/tracking", headers=other), 404)


async def test_the_link_stops_30_days_after_collection(api: Api, clock: FakeClock) -> None:
    job = await create_job(api)
    link = _path(job)
    job = await advance_to(api, job, "ready_for_pickup")
    handed = await api.client.post(
        f"{JOBS}/{job['ref']}/pickup",
        json={"reason": "customer lost the SMS, ID checked", "id_checked": True},
        headers=await api.login("manager.valence"),
    )
    assert handed.status_code == 200, handed.text
    page = await api.client.get(link)
    assert page.status_code == 200 and "Récupéré" in page.text and "Ce lien fonctionne jusqu" in page.text
    clock.advance(days=29, hours=23)
    assert (await api.client.get(link)).status_code == 200
    clock.advance(hours=1)
    assert (await api.client.get(link)).status_code == 404
    staff = (await api.client.get(f"{JOBS}/{job['ref']}/tracking", headers=await api.login("desk.valence"))).json()
    assert staff["active"] is False and staff["tracking_url"] is not None
    assert_problem(await api.client.post(f"{JOBS}/{job['ref']}/tracking", headers=await api.login("desk.valence")), 409)


async def test_a_cancelled_jobs_link_works_30_more_days(api: Api, clock: FakeClock) -> None:
    job = await create_job(api)
    await move(api, "desk.valence", job, "cancelled")
    assert "Annulé" in (await api.client.get(_path(job))).text
    clock.advance(days=30)
    assert (await api.client.get(_path(job))).status_code == 404


# --- rate limits ----------------------------------------------------------------------------------


@pytest.fixture
def limited(settings: Settings, clock: FakeClock, clean_db: None) -> Callable[..., Any]:
    """An app with its own (low) limits: `async with limited(ip=.., link=..) as api`."""

    def build(ip: int, link: int) -> Any:
        tight = settings.model_copy(update={"track_rate_per_minute_ip": ip, "track_rate_per_minute_token": link})

        class _Client:
            async def __aenter__(self) -> Api:
                self._client = AsyncTestClient(app=create_app(tight, clock=clock))
                return Api(await self._client.__aenter__(), {})

            async def __aexit__(self, *exc: object) -> None:
                await self._client.__aexit__(None, None, None)

        return _Client()

    return build


async def test_made_up_tokens_count_against_the_ip(limited: Callable[..., Any]) -> None:
    async with limited(ip=2, link=1000) as api:  # bursts of 2
        job = await create_job(api)
        assert (await api.client.get("/track/" + "B" * 43)).status_code == 404
        assert (await api.client.get("/track/" + "C" * 43)).status_code == 404
        refused = await api.client.get(_path(job), headers=JSON)
        assert_problem(refused, 429)
        assert int(refused.headers["retry-after"]) >= 1
        html = await api.client.get(_path(job))
        assert html.status_code == 429 and "Trop de demandes" in html.text and html.headers["retry-after"]


async def test_each_link_has_its_own_limit(limited: Callable[..., Any]) -> None:
    async with limited(ip=1000, link=2) as api:  # bursts of 2 per link
        job = await _job_awaiting_approval(api)
        other = await create_job(api)
        assert (await api.client.get(_path(job))).status_code == 200
        assert (await api.client.get(_path(job), headers=JSON)).status_code == 200
        assert_problem(await api.client.get(_path(job), headers=JSON), 429)
        assert_problem(await _answer(api, job, True), 429)  # before any change
        assert (await get_job(api, "desk.valence", job["ref"]))["approval"] is None
        assert (await api.client.get(_path(other))).status_code == 200  # another link is not affected
        assert (await api.client.get("/track/" + "D" * 43)).status_code == 404


# --- concurrency ----------------------------------------------------------------------------------


async def test_a_staff_change_at_the_same_time_is_not_lost(live_api: Api, rendezvous: Callable[[int], None]) -> None:
    """The customer answers while the desk adds a note: both land, or the desk's stale write is refused
    (412, it reloads). The customer's answer is never refused for it, nor does it overwrite the note."""
    api = live_api
    for _ in range(5):
        job = await _job_awaiting_approval(api)
        rendezvous(2)
        note, answer = await asyncio.gather(
            act(api, "desk.valence", job, "POST", "/notes", {"note": "customer called"}),
            _answer(api, job, True),
        )
        assert answer.status_code == 200, answer.text
        assert note[0] in (200, 412), note
        after = await get_job(api, "manager", job["ref"])
        kinds = [e["kind"] for e in await events(api, "manager", job["ref"])]
        assert after["approval"]["source"] == "customer"
        assert kinds.count("approval_recorded") == 1
        assert kinds.count("note_added") == (1 if note[0] == 200 else 0)
        assert after["version"] == job["version"] + 1 + kinds.count("note_added")


@pytest.mark.parametrize("conflicts", [1, 2])
async def test_a_lost_race_is_retried_once_then_409(api: Api, monkeypatch: pytest.MonkeyPatch, conflicts: int) -> None:
    """Someone else commits between the answer's read and its write (the version moves under it): the
    guarded write refuses it; the answer is read and applied again once, and a second loss is a 409."""
    job = await _job_awaiting_approval(api)
    original = JobRepository.save
    lost: list[int] = []

    async def save(self: JobRepository, changed: RepairJob, expected_version: int) -> None:
        if len(lost) < conflicts and changed.approval is not None:
            lost.append(expected_version)
            await self._conn.execute(update(job_t).where(job_t.c.id == changed.id).values(version=job_t.c.version + 1))
        await original(self, changed, expected_version)

    monkeypatch.setattr(JobRepository, "save", save)
    response = await _answer(api, job, True)
    after = await get_job(api, "desk.valence", job["ref"])
    alerts = (await api.client.get("/api/v1/alerts", headers=await api.login("desk.valence"))).json()
    assert len(lost) == conflicts
    if conflicts == 1:
        assert response.status_code == 200, response.text
        assert after["approval"]["source"] == "customer" and after["version"] == job["version"] + 1
        assert len(alerts) == 1
    else:
        assert_problem(response, 409)
        assert after["approval"] is None and after["version"] == job["version"] and alerts == []


# --- keys -----------------------------------------------------------------------------------------


async def test_key_rotation_re_encrypts_links_and_keeps_them_working(api: Api, settings: Settings) -> None:
    job = await create_job(api)
    new_key = Fernet.generate_key().decode()
    engine = create_engine(settings)
    try:
        db = Database(engine)
        async with db.transaction() as uow:
            rotated = await rotate_data_keys(uow, PasscodeCipher(f"{new_key},{PASSCODE_KEY}"))
        async with db.transaction(write=False) as uow:
            stored = await TrackingRepository(uow.connection).stored_ciphertexts()
    finally:
        await engine.dispose()
    assert rotated.tracking_links == 1
    token = _path(job).removeprefix("/track/")
    assert [PasscodeCipher(new_key).decrypt(ciphertext) for _, ciphertext in stored] == [token]
    assert (await api.client.get(_path(job))).status_code == 200


async def test_openapi_documents_the_public_routes(api: Api) -> None:
    schema = (await api.client.get("/schema/openapi.json")).json()
    assert "/track/{token}" in schema["paths"] and "/track/{token}/approval" in schema["paths"]
    assert "/api/v1/jobs/{ref}/tracking" in schema["paths"]
