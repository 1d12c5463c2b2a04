"""Branch scoping: staff see and change only their branch's jobs; another branch's job is a 404."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import (
    JOBS,
    advance_to,
    assert_problem,
    create_job,
    events,
    get_job,
    intake_body,
    list_refs,
    move,
    part,
)
from tests.conftest import Api

# Every endpoint that addresses one job, with a body acceptable for a job awaiting approval.
JOB_ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "", None),
    ("GET", "/events", None),
    ("GET", "/passcode", None),
    ("POST", "/transitions", {"to": "on_hold"}),
    ("PUT", "/estimate", {"lines": [part(100)]}),
    ("POST", "/approval", {"approved": True}),
    ("POST", "/assignment", {"technician": "tech.guilherand"}),
    ("POST", "/notes", {"note": "hello from the other shop"}),
]
IDS = [f"{method} {path or '/'}" for method, path, _ in JOB_ENDPOINTS]


async def _awaiting_approval_valence_job(api: Api) -> dict[str, Any]:
    job = await create_job(api, passcode="2580")
    job = await advance_to(api, job, "awaiting_approval")
    status = await api.client.post(
        f"{JOBS}/{job['ref']}/assignment",
        json={"technician": "tech.valence"},
        headers={**(await api.login("manager.valence")), "If-Match": f'"v{job["version"]}"'},
    )
    assert status.status_code == 200
    return status.json()


@pytest.mark.parametrize(("method", "path", "body"), JOB_ENDPOINTS, ids=IDS)
async def test_another_branchs_job_is_404(api: Api, method: str, path: str, body: dict[str, Any] | None) -> None:
    job = await _awaiting_approval_valence_job(api)
    for user in ("desk.guilherand", "tech.guilherand"):
        await _looks_absent(api, user, job, method, path, body)


async def _looks_absent(
    api: Api, user: str, job: dict[str, Any], method: str, path: str, body: dict[str, Any] | None
) -> None:
    headers = {**(await api.login(user)), "If-Match": f'"v{job["version"]}"'}
    response = await api.client.request(method, f"{JOBS}/{job['ref']}{path}", json=body, headers=headers)
    problem = assert_problem(response, 404)
    assert "2580" not in response.text

    # Exactly what a job that does not exist looks like: nothing confirms it is there.
    missing_ref = "AT-999999"
    missing = await api.client.request(method, f"{JOBS}/{missing_ref}{path}", json=body, headers=headers)
    unknown = assert_problem(missing, 404)
    assert (problem["type"], problem["title"]) == (unknown["type"], unknown["title"])
    assert problem["detail"].replace(job["ref"], missing_ref) == unknown["detail"]

    # And nothing changed, nor was a reveal recorded.
    after = await get_job(api, "manager.valence", job["ref"])
    assert after["version"] == job["version"]
    assert [e["kind"] for e in await events(api, "manager.valence", job["ref"])][-1] == "assigned"


async def test_branch_manager_does_not_see_another_branch(api: Api) -> None:
    job = await create_job(api, user="desk.guilherand")
    headers = await api.login("manager.valence")
    assert_problem(await api.client.get(f"{JOBS}/{job['ref']}", headers=headers), 404)
    response = await api.client.post(
        f"{JOBS}/{job['ref']}/transitions", json={"to": "on_hold"}, headers={**headers, "If-Match": '"v1"'}
    )
    assert_problem(response, 404)
    assert (await get_job(api, "desk.guilherand", job["ref"]))["stage"] == "received"


async def test_lists_show_only_the_branchs_own_jobs(api: Api) -> None:
    valence = [(await create_job(api, tier=tier))["ref"] for tier in ("standard", "express")]
    guilherand = [(await create_job(api, user="desk.guilherand", tier=tier))["ref"] for tier in ("standard", "express")]
    for user in ("desk.valence", "tech.valence", "manager.valence"):
        assert sorted(await list_refs(api, user)) == sorted(valence)
    for user in ("desk.guilherand", "tech.guilherand"):
        assert sorted(await list_refs(api, user)) == sorted(guilherand)
    # Searching for another branch's reference, phone or stage finds nothing.
    assert await list_refs(api, "desk.valence", q=guilherand[0]) == []
    assert sorted(await list_refs(api, "desk.valence", q="06 12 34 56 78")) == sorted(valence)
    assert sorted(await list_refs(api, "desk.valence", tier="express")) == [valence[1]]
    assert await list_refs(api, "desk.guilherand", technician="tech.valence") == []


async def test_chain_wide_manager_sees_and_changes_both_branches(api: Api) -> None:
    valence = await create_job(api)
    guilherand = await create_job(api, user="desk.guilherand")
    assert sorted(await list_refs(api, "manager")) == sorted([valence["ref"], guilherand["ref"]])
    branches = {ref: (await get_job(api, "manager", ref))["branch"] for ref in (valence["ref"], guilherand["ref"])}
    assert branches == {valence["ref"]: "valence", guilherand["ref"]: "guilherand"}
    assert (await move(api, "manager", valence, "diagnosing"))["stage"] == "diagnosing"
    assert (await move(api, "manager", guilherand, "diagnosing"))["stage"] == "diagnosing"


async def test_chain_wide_manager_names_the_branch_at_intake(api: Api) -> None:
    headers = await api.login("manager")
    without = await api.client.post(JOBS, json=intake_body(), headers=headers)
    assert_problem(without, 422, "branch")
    unknown = await api.client.post(JOBS, json=intake_body(branch="lyon"), headers=headers)
    assert_problem(unknown, 422, "branch")
    assert await list_refs(api, "manager") == []

    created = await api.client.post(JOBS, json=intake_body(branch="valence"), headers=headers)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["branch"] == "valence"
    assert await list_refs(api, "desk.valence") == [job["ref"]]
    assert await list_refs(api, "desk.guilherand") == []
    other = await create_job(api, user="manager", branch="guilherand", tier="express")
    assert other["branch"] == "guilherand"
    assert await list_refs(api, "desk.guilherand") == [other["ref"]]


async def test_other_branch_technician_cannot_be_assigned_even_by_the_chain_manager(api: Api) -> None:
    job = await create_job(api)
    response = await api.client.post(
        f"{JOBS}/{job['ref']}/assignment",
        json={"technician": "tech.guilherand"},
        headers={**(await api.login("manager")), "If-Match": '"v1"'},
    )
    assert_problem(response, 422, "technician")
