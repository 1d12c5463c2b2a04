"""Optimistic concurrency: every change names the version it changes (If-Match), and of two writers
of the same version exactly one wins."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.api.helpers import (
    JOBS,
    assert_problem,
    create_job,
    estimate,
    events,
    get_job,
    intake_body,
    list_refs,
    move,
    part,
)
from tests.conftest import Api

# Every mutation of a job, with a body that is acceptable for a freshly diagnosed job.
MUTATIONS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("POST", "/transitions", "tech.valence", {"to": "on_hold"}),
    ("PUT", "/estimate", "tech.valence", {"lines": [part(8900)]}),
    ("POST", "/assignment", "manager.valence", {"technician": "tech2.valence"}),
    ("POST", "/notes", "desk.valence", {"note": "called the customer"}),
]


async def _diagnosing_job(api: Api) -> dict[str, Any]:
    return await move(api, "tech.valence", await create_job(api), "diagnosing")


async def _change(api: Api, user: str, ref: str, method: str, path: str, body: Any, **headers: str) -> Any:
    return await api.client.request(
        method, f"{JOBS}/{ref}{path}", json=body, headers={**(await api.login(user)), **headers}
    )


async def test_missing_if_match_is_428(api: Api) -> None:
    job = await _diagnosing_job(api)
    for method, path, user, body in MUTATIONS:
        response = await _change(api, user, job["ref"], method, path, body)
        assert_problem(response, 428)
    assert (await get_job(api, "tech.valence", job["ref"])) == job  # as the technician saw it


async def test_missing_if_match_on_approval_is_428(api: Api) -> None:
    job = await _diagnosing_job(api)
    response = await _change(api, "desk.valence", job["ref"], "POST", "/approval", {"approved": True})
    assert_problem(response, 428)


async def test_wildcard_if_match_does_not_name_a_version(api: Api) -> None:
    job = await _diagnosing_job(api)
    response = await _change(api, "desk.valence", job["ref"], "POST", "/notes", {"note": "x"}, **{"If-Match": "*"})
    assert_problem(response, 428)


async def test_stale_if_match_is_412(api: Api) -> None:
    for method, path, user, body in MUTATIONS:
        job = await _diagnosing_job(api)
        assert job["version"] == 2
        response = await _change(api, user, job["ref"], method, path, body, **{"If-Match": '"v1"'})
        assert_problem(response, 412)
        assert (await get_job(api, "tech.valence", job["ref"])) == job  # as the technician saw it
        # With the current ETag the same change goes through.
        fresh = await _change(api, user, job["ref"], method, path, body, **{"If-Match": '"v2"'})
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["version"] == 3


async def test_stale_if_match_on_approval_is_412(api: Api) -> None:
    job = await estimate(api, "tech.valence", await _diagnosing_job(api), 8900)
    job = await move(api, "tech.valence", job, "awaiting_approval")
    stale = {"If-Match": f'"v{job["version"] - 1}"'}
    response = await _change(api, "desk.valence", job["ref"], "POST", "/approval", {"approved": True}, **stale)
    assert_problem(response, 412)
    assert (await get_job(api, "manager", job["ref"]))["approval"] is None


async def test_if_match_that_is_not_the_current_etag_is_412(api: Api) -> None:
    job = await _diagnosing_job(api)
    for tag in ('"v99"', '"v1"', "v2", '"2"', "garbage", 'W/"v1"'):
        response = await _change(api, "desk.valence", job["ref"], "POST", "/notes", {"note": "x"}, **{"If-Match": tag})
        assert response.status_code == 412, tag
        assert_problem(response, 412)
    assert (await get_job(api, "manager", job["ref"]))["version"] == job["version"]


async def test_etag_from_get_is_the_one_to_send(api: Api) -> None:
    job = await create_job(api)
    fetched = await api.client.get(f"{JOBS}/{job['ref']}", headers=await api.login("tech.valence"))
    etag = fetched.headers["etag"]
    response = await _change(
        api, "tech.valence", job["ref"], "POST", "/transitions", {"to": "diagnosing"}, **{"If-Match": etag}
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] != etag


# --- two writers at once -----------------------------------------------------------------------

RACES: dict[str, tuple[tuple[str, str, str, dict[str, Any]], tuple[str, str, str, dict[str, Any]]]] = {
    "two-notes": (
        ("POST", "/notes", "desk.valence", {"note": "first writer"}),
        ("POST", "/notes", "tech.valence", {"note": "second writer"}),
    ),
    "two-transitions": (
        ("POST", "/transitions", "desk.valence", {"to": "cancelled"}),
        ("POST", "/transitions", "tech.valence", {"to": "on_hold"}),
    ),
    "estimate-and-assignment": (
        ("PUT", "/estimate", "tech.valence", {"lines": [part(8900)]}),
        ("POST", "/assignment", "manager.valence", {"technician": "tech2.valence"}),
    ),
}


async def _race(api: Api, job: dict[str, Any], writers: tuple[tuple[str, str, str, dict[str, Any]], ...]) -> list[int]:
    """Send all `writers` at once with the job's current ETag; returns their statuses, sorted."""
    tag = {"If-Match": f'"v{job["version"]}"'}
    responses = await asyncio.gather(
        *(_change(api, user, job["ref"], method, path, body, **tag) for method, path, user, body in writers)
    )
    for response in responses:
        if response.status_code != 200:
            assert_problem(response, 412)
    winners = [user for (_, _, user, _), r in zip(writers, responses, strict=True) if r.status_code == 200]
    if len(winners) == 1:  # the change on record is the winner's
        assert (await events(api, "manager", job["ref"]))[-1]["actor"] == winners[0]
    return sorted(r.status_code for r in responses)


@pytest.mark.parametrize("race", list(RACES))
async def test_two_concurrent_writers_exactly_one_wins(
    live_api: Api, rendezvous: Callable[[int], None], race: str
) -> None:
    """Both requests are in flight with the same version before either writes (the rendezvous)."""
    api = live_api
    for _ in range(5):
        job = await _diagnosing_job(api)
        before = len(await events(api, "manager", job["ref"]))
        rendezvous(2)
        assert await _race(api, job, RACES[race]) == [200, 412]
        after = await get_job(api, "manager", job["ref"])
        assert after["version"] == job["version"] + 1
        assert len(await events(api, "manager", job["ref"])) == before + 1


async def test_many_gathered_writers_one_wins(live_api: Api) -> None:
    """Without arranging the race: eight gathered writers of one version, eight times."""
    api = live_api
    writers = tuple(("POST", "/notes", "desk.valence", {"note": f"writer {i}"}) for i in range(8))
    for _ in range(8):
        job = await _diagnosing_job(api)
        assert await _race(api, job, writers) == [200] + [412] * 7
        after = await get_job(api, "manager", job["ref"])
        assert after["version"] == job["version"] + 1


async def test_concurrent_retries_with_one_idempotency_key_create_one_job(
    live_api: Api, rendezvous: Callable[[int], None]
) -> None:
    api = live_api
    headers = {**(await api.login("desk.valence")), "Idempotency-Key": "double-click"}
    rendezvous(2)
    first, second = await asyncio.gather(
        api.client.post(JOBS, json=intake_body(), headers=headers),
        api.client.post(JOBS, json=intake_body(), headers=headers),
    )
    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert first.json() == second.json()
    assert await list_refs(api) == [first.json()["ref"]]
