"""The customer's unlock code: encrypted at rest, read only by the assigned technician or a manager,
every read on the record, erased when the device leaves our care."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from service.persistence.db import create_engine
from service.persistence.tables import job_t
from service.settings import Settings
from tests.api.helpers import (
    JOBS,
    advance_to,
    assert_problem,
    collect,
    create_job,
    events,
    get_job,
    intake_body,
    move,
)
from tests.conftest import Api

PASSCODE = "482916"


async def _reveal(api: Api, user: str, ref: str) -> Any:
    return await api.client.get(f"{JOBS}/{ref}/passcode", headers=await api.login(user))


async def _stored_ciphertext(settings: Settings, ref: str) -> str | None:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            query = select(job_t.c.passcode_ciphertext).where(job_t.c.id == int(ref.removeprefix("AT-")))
            value: str | None = (await conn.execute(query)).scalar_one()
            return value
    finally:
        await engine.dispose()


async def _diagnosed_by_tech(api: Api) -> dict[str, Any]:
    job = await create_job(api, passcode=PASSCODE)
    return await move(api, "tech.valence", job, "diagnosing")


@pytest.mark.parametrize("user", ["tech.valence", "manager.valence", "manager"])
async def test_assigned_technician_and_managers_read_the_passcode(api: Api, user: str) -> None:
    job = await _diagnosed_by_tech(api)
    assert job["technician"] == "tech.valence"
    response = await _reveal(api, user, job["ref"])
    assert response.status_code == 200, response.text
    assert response.json() == {"passcode": PASSCODE}
    assert "no-store" in response.headers["cache-control"]


@pytest.mark.parametrize("user", ["desk.valence", "tech2.valence"], ids=["front-desk", "unassigned-technician"])
async def test_others_may_not_read_the_passcode(api: Api, user: str) -> None:
    job = await _diagnosed_by_tech(api)
    response = await _reveal(api, user, job["ref"])
    assert_problem(response, 403)
    assert PASSCODE not in response.text
    assert "passcode_revealed" not in [e["kind"] for e in await events(api, "manager", job["ref"])]


async def test_a_technician_may_not_read_an_unassigned_jobs_passcode(api: Api) -> None:
    job = await create_job(api, passcode=PASSCODE)
    assert_problem(await _reveal(api, "tech.valence", job["ref"]), 403)


async def test_reassignment_moves_the_right_to_read(api: Api) -> None:
    job = await _diagnosed_by_tech(api)
    response = await api.client.post(
        f"{JOBS}/{job['ref']}/assignment",
        json={"technician": "tech2.valence"},
        headers={**(await api.login("manager.valence")), "If-Match": f'"v{job["version"]}"'},
    )
    assert response.status_code == 200, response.text
    assert_problem(await _reveal(api, "tech.valence", job["ref"]), 403)
    assert (await _reveal(api, "tech2.valence", job["ref"])).json() == {"passcode": PASSCODE}


async def test_each_reveal_is_recorded(api: Api) -> None:
    job = await _diagnosed_by_tech(api)
    for user in ("tech.valence", "manager.valence", "tech.valence"):
        assert (await _reveal(api, user, job["ref"])).status_code == 200
    history = await events(api, "desk.valence", job["ref"])
    reveals = [(e["kind"], e["actor"]) for e in history if e["kind"] == "passcode_revealed"]
    assert reveals == [
        ("passcode_revealed", "tech.valence"),
        ("passcode_revealed", "manager.valence"),
        ("passcode_revealed", "tech.valence"),
    ]
    assert PASSCODE not in str(history)
    # A reveal is on the record but is not a change of the job: its ETag still holds.
    assert (await get_job(api, "desk.valence", job["ref"]))["version"] == job["version"]


async def test_job_without_a_passcode_has_none_to_reveal(api: Api) -> None:
    job = await move(api, "tech.valence", await create_job(api), "diagnosing")
    assert job["has_passcode"] is False
    assert_problem(await _reveal(api, "tech.valence", job["ref"]), 409)


async def test_passcode_is_encrypted_at_rest(api: Api, settings: Settings) -> None:
    job = await create_job(api, passcode=PASSCODE)
    stored = await _stored_ciphertext(settings, job["ref"])
    assert stored is not None
    assert PASSCODE not in stored
    assert len(stored) > len(PASSCODE)


async def test_passcode_is_erased_when_the_job_is_collected(api: Api, settings: Settings) -> None:
    job = await create_job(api, passcode=PASSCODE)
    job = await advance_to(api, job, "ready_for_pickup")
    assert job["has_passcode"] is True
    assert (await _reveal(api, "manager.valence", job["ref"])).status_code == 200
    job = await collect(api, "desk.valence", job)
    assert job["has_passcode"] is False
    assert (await get_job(api, "manager.valence", job["ref"]))["has_passcode"] is False
    assert_problem(await _reveal(api, "manager.valence", job["ref"]), 409)
    assert_problem(await _reveal(api, "tech.valence", job["ref"]), 409)
    assert await _stored_ciphertext(settings, job["ref"]) is None


@pytest.mark.parametrize("stage", ["received", "diagnosing", "awaiting_approval"])
async def test_passcode_is_erased_when_the_job_is_cancelled(api: Api, settings: Settings, stage: str) -> None:
    job = await advance_to(api, await create_job(api, passcode=PASSCODE), stage)
    job = await move(api, "desk.valence", job, "cancelled")
    assert job["has_passcode"] is False
    assert_problem(await _reveal(api, "manager", job["ref"]), 409)
    assert await _stored_ciphertext(settings, job["ref"]) is None
    erased = [e for e in await events(api, "manager", job["ref"]) if e["to_stage"] == "cancelled"]
    assert len(erased) == 1


async def test_passcode_survives_on_hold_and_other_changes(api: Api) -> None:
    job = await _diagnosed_by_tech(api)
    job = await move(api, "desk.valence", job, "on_hold")
    job = await move(api, "tech.valence", job, "diagnosing")
    assert job["has_passcode"] is True
    assert (await _reveal(api, "tech.valence", job["ref"])).json() == {"passcode": PASSCODE}


@pytest.mark.parametrize("passcode", ["", "   "], ids=["empty", "blank"])
async def test_empty_passcode_is_422(api: Api, passcode: str) -> None:
    response = await api.client.post(JOBS, json=intake_body(passcode=passcode), headers=await api.login("desk.valence"))
    assert_problem(response, 422, "passcode")
