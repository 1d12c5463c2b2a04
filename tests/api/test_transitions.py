"""Moving a job through its stages, estimates, approvals, assignment, notes and the job's history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.api.helpers import (
    JOBS,
    act,
    advance_to,
    approve,
    assert_problem,
    collect,
    create_job,
    estimate,
    events,
    get_job,
    move,
    part,
    pickup_code,
    send,
)
from tests.conftest import Api, FakeClock

LABOUR = {"kind": "labour", "description": "fitting", "quantity": 1, "unit_price_cents": 2500}


async def _refused(api: Api, user: str, job: dict[str, Any], to: str, status: int, **extra: Any) -> dict[str, Any]:
    """Attempt a transition that must fail with `status`, and check it changed nothing."""
    response = await send(api, user, job, "POST", "/transitions", {"to": to, **extra})
    problem = assert_problem(response, status)
    after = await get_job(api, "manager", job["ref"])
    assert after["stage"] == job["stage"]
    assert after["version"] == job["version"]
    return problem


# --- the whole road ----------------------------------------------------------------------------


async def test_full_path_from_intake_to_collection(api: Api, clock: FakeClock) -> None:
    job = await create_job(api, passcode="1234")
    assert (job["stage"], job["version"]) == ("received", 1)
    steps: list[tuple[str, str, str, dict[str, Any]]] = [
        ("POST", "/transitions", "tech.valence", {"to": "diagnosing"}),
        ("PUT", "/estimate", "tech.valence", {"lines": [part(8900), LABOUR]}),
        ("POST", "/transitions", "tech.valence", {"to": "awaiting_approval"}),
        ("POST", "/approval", "desk.valence", {"approved": True, "note": "customer agreed by phone"}),
        ("POST", "/transitions", "tech.valence", {"to": "repairing"}),
        ("POST", "/transitions", "tech.valence", {"to": "quality_check"}),
        ("POST", "/transitions", "tech.valence", {"to": "ready_for_pickup"}),
        ("POST", "/pickup", "desk.valence", {"paid_cents": 11400}),  # the code comes with the message
    ]
    for method, path, user, body in steps:
        if path == "/pickup":
            body = {"code": await pickup_code(api, job["ref"]), **body}
        clock.advance(minutes=10)
        response = await send(api, user, job, method, path, body)
        assert response.status_code == 200, (path, body, response.text)
        changed = response.json()
        assert changed["version"] == job["version"] + 1
        assert response.headers["etag"] == f'"v{changed["version"]}"'
        if path == "/transitions":
            assert changed["stage"] == body["to"]
        elif path == "/pickup":
            assert changed["stage"] == "collected"
        else:
            assert changed["stage"] == job["stage"]
        job = changed

    assert job["stage"] == "collected"
    assert job["version"] == 9
    assert job["outcome"] == "repaired"
    assert job["technician"] == "tech.valence"
    assert job["estimate"]["total_cents"] == 11400
    assert job["estimate"]["currency"] == "EUR"
    assert job["approval"]["approved"] is True
    assert job["approval"]["by"] == "desk.valence"
    assert job["allowed_transitions"] == []
    assert (job["paid_cents"], job["pickup_slot"]) == (11400, None)
    assert datetime.fromisoformat(job["collected_at"]) == clock.now

    fetched = await api.client.get(f"{JOBS}/{job['ref']}", headers=await api.login("desk.valence"))
    assert fetched.headers["etag"] == '"v9"'
    assert fetched.json()["stage"] == "collected"


async def test_events_list_every_change_in_order(api: Api, clock: FakeClock) -> None:
    job = await create_job(api)
    clock.advance(minutes=1)
    job = await move(api, "tech.valence", job, "diagnosing", note="opening it up")
    clock.advance(minutes=1)
    job = await estimate(api, "tech.valence", job, 8900)
    clock.advance(minutes=1)
    job = await move(api, "tech.valence", job, "awaiting_approval")
    clock.advance(minutes=1)
    job = await approve(api, "desk.valence", job)
    clock.advance(minutes=1)
    status, job = await act(api, "manager.valence", job, "POST", "/assignment", {"technician": "tech2.valence"})
    assert status == 200
    clock.advance(minutes=1)
    status, job = await act(api, "desk.valence", job, "POST", "/notes", {"note": "customer will call back"})
    assert status == 200

    history = await events(api, "desk.valence", job["ref"])
    summary = [(e["kind"], e["from_stage"], e["to_stage"], e["actor"]) for e in history]
    assert summary == [
        ("created", None, "received", "desk.valence"),
        ("stage_changed", "received", "diagnosing", "tech.valence"),
        ("estimate_set", None, None, "tech.valence"),
        ("stage_changed", "diagnosing", "awaiting_approval", "tech.valence"),
        ("approval_recorded", None, None, "desk.valence"),
        ("assigned", None, None, "manager.valence"),
        ("note_added", None, None, "desk.valence"),
    ]
    assert history[1]["note"] == "opening it up"
    assert history[2]["data"]["total_cents"] == 8900
    assert history[4]["data"]["approved"] is True
    assert history[5]["data"] == {"from": "tech.valence", "to": "tech2.valence"}
    assert history[6]["note"] == "customer will call back"
    times = [e["at"] for e in history]
    assert times == sorted(times) and len(set(times)) == len(times)
    # One event per change: the version counts them.
    assert job["version"] == len(history)


# --- what may not happen -----------------------------------------------------------------------


async def test_illegal_transition_is_409_with_the_allowed_stages(api: Api) -> None:
    job = await create_job(api)
    problem = await _refused(api, "tech.valence", job, "repairing", 409)
    assert set(problem["allowed"]) == {"diagnosing", "on_hold"}
    # The allowed stages depend on who asks: the front desk may cancel, not diagnose.
    problem = await _refused(api, "desk.valence", job, "quality_check", 409)
    assert set(problem["allowed"]) == {"on_hold", "cancelled"}


async def test_unknown_stage_is_422(api: Api) -> None:
    job = await create_job(api)
    response = await send(api, "tech.valence", job, "POST", "/transitions", {"to": "teleported"})
    assert_problem(response, 422, "to")


async def test_transition_body_rejects_unknown_fields(api: Api) -> None:
    job = await create_job(api)
    response = await send(api, "tech.valence", job, "POST", "/transitions", {"to": "diagnosing", "version": 5})
    assert_problem(response, 422, "version")
    assert (await get_job(api, "manager", job["ref"]))["stage"] == "received"


@pytest.mark.parametrize(
    ("user", "to"),
    [
        ("desk.valence", "diagnosing"),  # the bench's work
        ("tech.valence", "cancelled"),  # the desk's decision
    ],
)
async def test_role_not_allowed_is_403(api: Api, user: str, to: str) -> None:
    job = await create_job(api)
    await _refused(api, user, job, to, 403)


async def test_collection_is_a_hand_over_for_the_front_desk_or_a_manager(api: Api) -> None:
    job = await advance_to(api, await create_job(api), "ready_for_pickup")
    assert "collected" not in job["allowed_transitions"]
    await _refused(api, "tech.valence", job, "collected", 403)
    problem = await _refused(api, "desk.valence", job, "collected", 409)  # not a move: the hand-over, with the code
    assert f"/api/v1/jobs/{job['ref']}/pickup" in problem["detail"]
    code = await pickup_code(api, job["ref"])
    assert_problem(await send(api, "tech.valence", job, "POST", "/pickup", {"code": code}), 403)
    assert (await get_job(api, "manager", job["ref"]))["stage"] == "ready_for_pickup"
    job = await collect(api, "manager.valence", job)
    assert job["stage"] == "collected"


async def test_awaiting_approval_needs_an_estimate(api: Api) -> None:
    job = await move(api, "tech.valence", await create_job(api), "diagnosing")
    problem = await _refused(api, "tech.valence", job, "awaiting_approval", 409)
    assert "awaiting_approval" not in problem["allowed"]
    assert "awaiting_approval" not in job["allowed_transitions"]
    job = await estimate(api, "tech.valence", job, 8900)
    assert "awaiting_approval" in job["allowed_transitions"]
    job = await move(api, "tech.valence", job, "awaiting_approval")
    assert job["stage"] == "awaiting_approval"


async def test_repairing_needs_the_customers_approval(api: Api) -> None:
    job = await move(api, "tech.valence", await create_job(api), "diagnosing")
    job = await estimate(api, "tech.valence", job, 8900)
    await _refused(api, "tech.valence", job, "repairing", 409)  # no budget: approval cannot be skipped
    job = await move(api, "tech.valence", job, "awaiting_approval")
    await _refused(api, "tech.valence", job, "repairing", 409)  # no answer yet
    job = await approve(api, "desk.valence", job)
    job = await move(api, "tech.valence", job, "repairing")
    assert job["stage"] == "repairing"


async def test_skipping_approval_within_the_preapproved_budget(api: Api) -> None:
    job = await create_job(api, tier="express", preapproved_budget_cents=10000)
    assert job["preapproved_budget_cents"] == 10000
    job = await move(api, "tech.valence", job, "diagnosing")
    job = await estimate(api, "tech.valence", job, 6000, 4000)  # exactly the budget
    job = await move(api, "tech.valence", job, "repairing")
    assert job["stage"] == "repairing"
    assert job["approval"]["approved"] is True
    assert job["approval"]["source"] == "preapproved_budget"


async def test_skipping_approval_over_the_budget_is_409(api: Api) -> None:
    job = await create_job(api, tier="express", preapproved_budget_cents=10000)
    job = await move(api, "tech.valence", job, "diagnosing")
    job = await estimate(api, "tech.valence", job, 6000, 4001)
    problem = await _refused(api, "tech.valence", job, "repairing", 409)
    assert "repairing" not in problem["allowed"]
    await _refused(api, "tech.valence", job, "awaiting_parts", 409)
    # The ordinary road is still open.
    job = await move(api, "tech.valence", job, "awaiting_approval")
    assert job["stage"] == "awaiting_approval"


async def test_new_estimate_needs_a_new_approval(api: Api) -> None:
    job = await advance_to(api, await create_job(api), "awaiting_approval")
    job = await approve(api, "desk.valence", job)
    assert job["approval"]["approved"] is True
    job = await estimate(api, "tech.valence", job, 15000)
    assert job["approval"] is None
    await _refused(api, "tech.valence", job, "repairing", 409)


async def test_estimate_is_fixed_once_repair_starts(api: Api) -> None:
    job = await advance_to(api, await create_job(api), "repairing")
    status, problem = await act(api, "tech.valence", job, "PUT", "/estimate", {"lines": [part(100)]})
    assert status == 409, problem
    assert (await get_job(api, "manager", job["ref"]))["estimate"]["total_cents"] == 8900


async def test_front_desk_cannot_write_an_estimate(api: Api) -> None:
    job = await move(api, "tech.valence", await create_job(api), "diagnosing")
    response = await send(api, "desk.valence", job, "PUT", "/estimate", {"lines": [part(100)]})
    assert_problem(response, 403)


INVALID_ESTIMATES: dict[str, tuple[dict[str, Any], str]] = {
    "empty": ({"lines": []}, "lines"),
    "too-many": ({"lines": [part(100)] * 51}, "lines"),
    "negative-price": ({"lines": [{**part(100), "unit_price_cents": -1}]}, "lines.0.unit_price_cents"),
    "zero-quantity": ({"lines": [{**part(100), "quantity": 0}]}, "lines.0.quantity"),
    "unknown-kind": ({"lines": [{**part(100), "kind": "tip"}]}, "lines.0.kind"),
    "currency": ({"lines": [{**part(100), "currency": "USD"}]}, "lines.0.currency"),
    "total": ({"lines": [{**part(100), "total_cents": 1}]}, "lines.0.total_cents"),
    "approved": ({"lines": [part(100)], "approved": True}, "approved"),
}


async def test_invalid_estimate_is_422(api: Api) -> None:
    job = await move(api, "tech.valence", await create_job(api), "diagnosing")
    for case, (body, field) in INVALID_ESTIMATES.items():
        response = await send(api, "tech.valence", job, "PUT", "/estimate", body)
        assert response.status_code == 422, case
        assert_problem(response, 422, field)
    after = await get_job(api, "manager", job["ref"])
    assert (after["version"], after["estimate"]["lines"]) == (job["version"], [])


async def test_approval_outside_awaiting_approval_is_409(api: Api) -> None:
    job = await move(api, "tech.valence", await create_job(api), "diagnosing")
    status, problem = await act(api, "desk.valence", job, "POST", "/approval", {"approved": True})
    assert status == 409, problem
    assert (await get_job(api, "manager", job["ref"]))["approval"] is None


async def test_approval_must_be_a_boolean(api: Api) -> None:
    job = await advance_to(api, await create_job(api), "awaiting_approval")
    response = await send(api, "desk.valence", job, "POST", "/approval", {"approved": "yes"})
    assert_problem(response, 422, "approved")


async def test_declined_estimate_goes_to_pickup_as_declined(api: Api) -> None:
    job = await advance_to(api, await create_job(api), "awaiting_approval")
    job = await approve(api, "desk.valence", job, approved=False)
    assert job["approval"]["approved"] is False
    await _refused(api, "tech.valence", job, "repairing", 409)
    job = await move(api, "desk.valence", job, "ready_for_pickup")
    assert job["stage"] == "ready_for_pickup"
    assert job["outcome"] == "declined"
    job = await collect(api, "desk.valence", job)
    assert (job["stage"], job["outcome"]) == ("collected", "declined")


async def test_pickup_without_an_answer_needs_an_outcome(api: Api) -> None:
    job = await advance_to(api, await create_job(api), "awaiting_approval")
    await _refused(api, "desk.valence", job, "ready_for_pickup", 409)


async def test_impossible_repair_goes_to_pickup_not_repaired(api: Api) -> None:
    job = await move(api, "tech.valence", await create_job(api), "diagnosing")
    job = await move(api, "tech.valence", job, "ready_for_pickup", note="board is dead")
    assert (job["stage"], job["outcome"]) == ("ready_for_pickup", "not_repaired")


async def test_failed_check_goes_back_to_the_bench(api: Api) -> None:
    job = await advance_to(api, await create_job(api), "quality_check")
    job = await move(api, "tech.valence", job, "repairing")
    job = await move(api, "tech.valence", job, "quality_check")
    job = await move(api, "tech.valence", job, "ready_for_pickup", outcome="not_repaired")
    assert job["outcome"] == "not_repaired"


async def test_awaiting_parts_on_the_way_to_repair(api: Api) -> None:
    job = await advance_to(api, await create_job(api), "awaiting_approval")
    job = await approve(api, "desk.valence", job)
    job = await move(api, "desk.valence", job, "awaiting_parts")
    job = await move(api, "tech.valence", job, "repairing")
    assert job["stage"] == "repairing"


# --- on hold, cancellation, terminal stages ----------------------------------------------------


async def test_on_hold_and_back_to_the_same_stage(api: Api) -> None:
    job = await move(api, "tech.valence", await create_job(api), "diagnosing")
    job = await move(api, "desk.valence", job, "on_hold", note="waiting for the customer's password")
    assert job["stage"] == "on_hold"
    assert job["held_from"] == "diagnosing"
    problem = await _refused(api, "tech.valence", job, "repairing", 409)
    assert "diagnosing" in problem["allowed"]
    job = await move(api, "tech.valence", job, "diagnosing")
    assert job["stage"] == "diagnosing"
    assert job["held_from"] is None


@pytest.mark.parametrize("stage", ["received", "diagnosing", "awaiting_approval"])
async def test_cancel_before_repairing(api: Api, stage: str) -> None:
    job = await advance_to(api, await create_job(api), stage)
    job = await move(api, "desk.valence", job, "cancelled", note="customer changed their mind")
    assert job["stage"] == "cancelled"


async def test_cancel_a_held_job_that_had_not_started(api: Api) -> None:
    job = await move(api, "desk.valence", await create_job(api), "on_hold")
    job = await move(api, "desk.valence", job, "cancelled")
    assert job["stage"] == "cancelled"


@pytest.mark.parametrize("stage", ["repairing", "quality_check", "ready_for_pickup"])
async def test_cancel_after_repair_started_is_409(api: Api, stage: str) -> None:
    job = await advance_to(api, await create_job(api), stage)
    problem = await _refused(api, "desk.valence", job, "cancelled", 409)
    assert "cancelled" not in problem["allowed"]


async def test_cancel_a_job_held_during_repair_is_409(api: Api) -> None:
    job = await advance_to(api, await create_job(api), "repairing")
    job = await move(api, "tech.valence", job, "on_hold")
    await _refused(api, "desk.valence", job, "cancelled", 409)


@pytest.mark.parametrize("terminal", ["collected", "cancelled"])
async def test_terminal_stages_allow_no_transition(api: Api, terminal: str) -> None:
    job = await create_job(api)
    job = (
        await advance_to(api, job, "collected")
        if terminal == "collected"
        else await move(api, "desk.valence", job, "cancelled")
    )
    assert job["allowed_transitions"] == []
    for user, to in [
        ("manager.valence", "received"),
        ("manager.valence", "on_hold"),
        ("manager.valence", "diagnosing"),
        ("manager.valence", "cancelled" if terminal == "collected" else "collected"),
        ("desk.valence", "ready_for_pickup"),
    ]:
        problem = await _refused(api, user, job, to, 409)
        assert problem["allowed"] == []
    # Nor can it be reassigned or re-estimated.
    status, _ = await act(api, "manager.valence", job, "POST", "/assignment", {"technician": "tech2.valence"})
    assert status == 409
    status, _ = await act(api, "manager.valence", job, "PUT", "/estimate", {"lines": [part(1)]})
    assert status == 409


# --- assignment --------------------------------------------------------------------------------


async def test_technician_is_assigned_when_starting_diagnosis(api: Api) -> None:
    job = await create_job(api)
    assert job["technician"] is None
    job = await move(api, "tech.valence", job, "diagnosing")
    assert job["technician"] == "tech.valence"


async def test_technician_is_assigned_when_starting_repair_on_an_unassigned_job(api: Api) -> None:
    job = await create_job(api, preapproved_budget_cents=10000)
    job = await move(api, "manager.valence", job, "diagnosing")
    assert job["technician"] is None  # a manager starting the diagnosis is not assigned
    job = await estimate(api, "manager.valence", job, 5000)
    job = await move(api, "tech2.valence", job, "repairing")
    assert job["technician"] == "tech2.valence"


async def test_an_assigned_job_keeps_its_technician(api: Api) -> None:
    job = await create_job(api)
    status, job = await act(api, "manager.valence", job, "POST", "/assignment", {"technician": "tech2.valence"})
    assert status == 200
    job = await move(api, "tech.valence", job, "diagnosing")
    assert job["technician"] == "tech2.valence"


async def test_assignment_by_username(api: Api) -> None:
    job = await create_job(api)
    response = await send(api, "manager.valence", job, "POST", "/assignment", {"technician": "tech2.valence"})
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["technician"] == "tech2.valence"
    assert job["version"] == 2
    assert response.headers["etag"] == '"v2"'
    # A technician may take the job over, and it can be unassigned.
    status, job = await act(api, "tech.valence", job, "POST", "/assignment", {"technician": "tech.valence"})
    assert (status, job["technician"]) == (200, "tech.valence")
    status, job = await act(api, "manager.valence", job, "POST", "/assignment", {"technician": None})
    assert (status, job["technician"]) == (200, None)
    assigned = [e["data"] for e in await events(api, "manager.valence", job["ref"]) if e["kind"] == "assigned"]
    assert assigned == [
        {"from": None, "to": "tech2.valence"},
        {"from": "tech2.valence", "to": "tech.valence"},
        {"from": "tech.valence", "to": None},
    ]


@pytest.mark.parametrize(
    "technician",
    ["nobody.here", "tech.guilherand", "desk.valence"],
    ids=["unknown", "other-branch", "not-a-technician"],
)
async def test_assignment_to_someone_who_cannot_take_the_job_is_422(api: Api, technician: str) -> None:
    job = await create_job(api)
    response = await send(api, "manager.valence", job, "POST", "/assignment", {"technician": technician})
    assert_problem(response, 422, "technician")
    after = await get_job(api, "manager", job["ref"])
    assert (after["technician"], after["version"]) == (None, 1)


async def test_front_desk_cannot_assign(api: Api) -> None:
    job = await create_job(api)
    response = await send(api, "desk.valence", job, "POST", "/assignment", {"technician": "tech.valence"})
    assert_problem(response, 403)


async def test_assignment_body_needs_the_technician(api: Api) -> None:
    job = await create_job(api)
    response = await send(api, "manager.valence", job, "POST", "/assignment", {"user_id": 2})
    assert_problem(response, 422)


# --- notes -------------------------------------------------------------------------------------


async def test_notes_are_added_to_the_history(api: Api) -> None:
    job = await create_job(api)
    response = await send(api, "desk.valence", job, "POST", "/notes", {"note": "  customer prefers SMS  "})
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["version"] == 2
    assert job["stage"] == "received"
    assert response.headers["etag"] == '"v2"'
    last = (await events(api, "tech.valence", job["ref"]))[-1]
    assert (last["kind"], last["actor"], last["note"]) == ("note_added", "desk.valence", "customer prefers SMS")


async def test_invalid_note_is_422(api: Api) -> None:
    job = await create_job(api)
    for body in (
        {"note": ""},
        {"note": "   "},
        {"note": "n" * 4001},
        {},
        {"note": "ok", "stage": "collected"},
        {"note": "a\x00b"},
    ):
        response = await send(api, "desk.valence", job, "POST", "/notes", body)
        assert response.status_code == 422, body
        assert_problem(response, 422)
    assert (await get_job(api, "manager", job["ref"]))["version"] == 1


# --- reading -----------------------------------------------------------------------------------


async def test_unknown_job_is_404(api: Api) -> None:
    headers = await api.login("desk.valence")
    for ref in ("AT-999999", "nope", "AT-", "123", "AT-99999999999999999999", "AT-%00"):
        for path in (f"{JOBS}/{ref}", f"{JOBS}/{ref}/events"):
            assert_problem(await api.client.get(path, headers=headers), 404)
        response = await api.client.post(
            f"{JOBS}/{ref}/transitions", json={"to": "on_hold"}, headers={**headers, "If-Match": '"v1"'}
        )
        assert_problem(response, 404)
