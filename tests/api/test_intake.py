"""Taking a device in: POST /api/v1/jobs, its validation, due dates, the passcode and Idempotency-Key."""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from tests.api.helpers import (
    JOBS,
    assert_problem,
    create_job,
    events,
    imei,
    intake_body,
    list_refs,
)
from tests.conftest import Api, FakeClock

PASSCODE = "739104"


def _due(job: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(job["due_at"])


async def _post(api: Api, body: Any, user: str = "desk.valence", **headers: str) -> Any:
    return await api.client.post(JOBS, json=body, headers={**(await api.login(user)), **headers})


# --- the happy intake --------------------------------------------------------------------------


async def test_intake_returns_201_with_location_and_etag(api: Api) -> None:
    response = await _post(api, intake_body())
    assert response.status_code == 201, response.text
    job = response.json()
    assert re.fullmatch(r"AT-\d{6,}", job["ref"])
    assert response.headers["location"] == f"{JOBS}/{job['ref']}"
    assert response.headers["etag"] == '"v1"'
    assert job["version"] == 1
    assert job["stage"] == "received"
    assert job["branch"] == "valence"
    assert job["tier"] == "standard"
    assert job["technician"] is None
    assert job["outcome"] is None
    assert job["approval"] is None
    assert job["has_passcode"] is False
    assert job["customer"]["name"] == "Camille Martin"
    assert job["device"] == {
        "brand": "Apple",
        "model": "iPhone 13",
        "imei": imei(),
        "serial_number": None,
        "colour": "blue",
        "condition": "scratched frame",
        "accessories": ["case"],
    }
    assert job["fault"] == {"category": "screen", "description": "cracked screen"}
    assert job["estimate"] == {"lines": [], "total_cents": 0, "currency": "EUR"}

    # The Location points at the job as stored, with the same ETag.
    fetched = await api.client.get(response.headers["location"], headers=await api.login("desk.valence"))
    assert fetched.status_code == 200
    # Only the intake answer gives the customer's link and the express slots left.
    assert job["tracking_url"] and job["express_slots_left"] is not None
    assert fetched.json() == {**job, "tracking_url": None, "express_slots_left": None}
    assert fetched.headers["etag"] == '"v1"'


async def test_intake_writes_a_created_event(api: Api) -> None:
    job = await create_job(api)
    history = await events(api, "desk.valence", job["ref"])
    assert len(history) == 1
    assert history[0]["kind"] == "created"
    assert history[0]["actor"] == "desk.valence"
    assert history[0]["to_stage"] == "received"


async def test_phone_is_normalised_to_e164(api: Api) -> None:
    job = await create_job(api)
    assert job["customer"]["phone"] == "+33612345678"


async def test_imei_with_separators_is_normalised(api: Api) -> None:
    dashed = f"{imei()[:2]}-{imei()[2:8]}-{imei()[8:14]}-{imei()[14]}"
    job = await create_job(api, device={"brand": "Apple", "model": "iPhone 13", "imei": dashed})
    assert job["device"]["imei"] == imei()


async def test_serial_number_alone_identifies_a_device(api: Api) -> None:
    job = await create_job(api, device={"brand": "Lenovo", "model": "T14", "serial_number": "pf-3abc12"})
    assert job["device"]["imei"] is None
    assert job["device"]["serial_number"] == "PF-3ABC12"


async def test_technician_cannot_take_a_device_in(api: Api) -> None:
    response = await _post(api, intake_body(), user="tech.valence")
    assert_problem(response, 403)
    assert await list_refs(api) == []


async def test_manager_of_a_branch_takes_devices_in_for_that_branch(api: Api) -> None:
    job = await create_job(api, user="manager.valence")
    assert job["branch"] == "valence"


async def test_staff_cannot_take_devices_in_for_another_branch(api: Api) -> None:
    response = await _post(api, intake_body(branch="guilherand"))
    assert_problem(response, 422, "branch")
    assert await list_refs(api) == []
    same = await _post(api, intake_body(branch="valence"))
    assert same.status_code == 201


# --- due dates (SLA) ---------------------------------------------------------------------------


async def test_express_is_due_in_four_business_hours(api: Api) -> None:
    # Monday 10:00 in Paris + 4 h -> 14:00 Paris, 13:00 UTC.
    job = await create_job(api, tier="express")
    assert job["tier"] == "express"
    assert _due(job) == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


async def test_standard_is_due_in_three_business_days(api: Api) -> None:
    # Monday 10:00 in Paris -> Thursday 10:00 Paris, 09:00 UTC.
    job = await create_job(api, tier="standard")
    assert _due(job) == datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


async def test_closed_hours_and_days_do_not_count(api: Api, clock: FakeClock) -> None:
    clock.advance(days=4, hours=7)  # Friday 27 Nov, 17:00 in Paris
    # Valence (Mon-Sat 09-19): 2 h on Friday, 2 h on Saturday morning.
    valence = await create_job(api, tier="express")
    assert _due(valence) == datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    # Guilherand (Mon-Fri 09-18): 1 h on Friday, the weekend is closed, 3 h on Monday.
    guilherand = await create_job(api, user="desk.guilherand", tier="express")
    assert _due(guilherand) == datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
    # Standard in Guilherand: Monday, Tuesday, Wednesday -> Wednesday 17:00 Paris.
    standard = await create_job(api, user="desk.guilherand", tier="standard")
    assert _due(standard) == datetime(2026, 12, 2, 16, 0, tzinfo=UTC)


# --- bad input: a 4xx problem naming the field, and nothing written ----------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = body
        for key in parents:
            target = target[key]
        target[last] = value

    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = body
        for key in parents:
            target = target[key]
        del target[last]

    return change


WRONG_CHECK_DIGIT = imei()[:-1] + str((int(imei()[-1]) + 1) % 10)

INVALID: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "imei-check-digit": (_set("device.imei", WRONG_CHECK_DIGIT), "device.imei"),
    "imei-too-short": (_set("device.imei", "35209900000001"), "device.imei"),
    "imei-letters": (_set("device.imei", "35209900000001X"), "device.imei"),
    "phone-invalid": (_set("customer.phone", "12"), "customer.phone"),
    "phone-letters": (_set("customer.phone", "call me maybe"), "customer.phone"),
    "email-invalid": (_set("customer.email", "not-an-email"), "customer.email"),
    "top-level-stage": (_set("stage", "repairing"), "stage"),
    "top-level-version": (_set("version", 7), "version"),
    "top-level-ref": (_set("ref", "AT-000001"), "ref"),
    "top-level-technician": (_set("technician", "tech.valence"), "technician"),
    "customer-id": (_set("customer.id", 1), "customer.id"),
    "device-unknown-field": (_set("device.owner", "someone"), "device.owner"),
    "missing-fault": (_drop("fault"), "fault"),
    "missing-fault-description": (_drop("fault.description"), "fault.description"),
    "blank-fault-description": (_set("fault.description", "   "), "fault.description"),
    "unknown-fault-category": (_set("fault.category", "keyboard"), "fault.category"),
    "unknown-tier": (_set("tier", "platinum"), "tier"),
    "missing-customer": (_drop("customer"), "customer"),
    "missing-customer-name": (_drop("customer.name"), "customer.name"),
    "no-imei-nor-serial": (_drop("device.imei"), "device"),
    "bad-serial": (_set("device", {"brand": "Apple", "model": "Mac", "serial_number": "!!"}), "device.serial_number"),
    "name-too-long": (_set("customer.name", "N" * 201), "customer.name"),
    "description-too-long": (_set("fault.description", "d" * 2001), "fault.description"),
    "condition-too-long": (_set("device.condition", "c" * 2001), "device.condition"),
    "brand-too-long": (_set("device.brand", "B" * 81), "device.brand"),
    "too-many-accessories": (_set("device.accessories", [f"item {i}" for i in range(21)]), "device.accessories"),
    "accessory-too-long": (_set("device.accessories", ["a" * 81]), "device.accessories.0"),
    "passcode-too-long": (_set("passcode", "1" * 65), "passcode"),
    "negative-budget": (_set("preapproved_budget_cents", -1), "preapproved_budget_cents"),
    "budget-not-a-number": (_set("preapproved_budget_cents", "lots"), "preapproved_budget_cents"),
    "sms-consent-not-a-bool": (_set("customer.sms_consent", "maybe"), "customer.sms_consent"),
    "sms-consent-yes-string": (_set("customer.sms_consent", "yes"), "customer.sms_consent"),
    "accessories-not-a-list": (_set("device.accessories", "case"), "device.accessories"),
    "nul-in-name": (_set("customer.name", "Cam\x00ille"), "customer.name"),
    "nul-in-accessory": (_set("device.accessories", ["case\x00"]), "device.accessories"),
    "nul-in-passcode": (_set("passcode", "12\x0034"), "passcode"),
    "budget-too-large": (_set("preapproved_budget_cents", 10**30), "preapproved_budget_cents"),
}


async def test_invalid_intake_is_422_naming_the_field_and_creates_nothing(api: Api) -> None:
    for case, (change, field) in INVALID.items():
        body = intake_body()
        change(body)
        response = await _post(api, body)
        problem = assert_problem(response, 422, field)
        assert field in problem["detail"], case
    assert await list_refs(api) == []


async def test_body_of_the_wrong_shape_is_a_4xx_problem(api: Api) -> None:
    for body in ([intake_body()], "intake", 42, None, {}):
        response = await _post(api, body)
        assert 400 <= response.status_code < 500, (body, response.text)
        assert_problem(response, response.status_code)
    assert await list_refs(api) == []


async def test_malformed_json_is_400_problem(api: Api) -> None:
    headers = {**(await api.login("desk.valence")), "Content-Type": "application/json"}
    response = await api.client.post(JOBS, content=b'{"customer": {"name": "Camille"', headers=headers)
    assert_problem(response, 400)
    assert await list_refs(api) == []


async def test_body_over_one_mebibyte_is_413(api: Api) -> None:
    body = intake_body()
    body["device"]["condition"] = "x" * (1024 * 1024)
    response = await _post(api, body)
    assert_problem(response, 413)
    assert await list_refs(api) == []


async def test_chunked_body_over_one_mebibyte_is_413(live_api: Api) -> None:
    api = live_api  # Litestar's test client cannot stream a request body

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the server must count as it reads
        yield b'{"customer": {"name": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}}'

    headers = {**(await api.login("desk.valence")), "Content-Type": "application/json"}
    response = await api.client.post(JOBS, content=chunks(), headers=headers)
    assert_problem(response, 413)
    assert await list_refs(api) == []


async def test_problem_details_shape(api: Api) -> None:
    body = intake_body()
    body["device"]["imei"] = WRONG_CHECK_DIGIT
    response = await _post(api, body)
    problem = assert_problem(response, 422, "device.imei")
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["title"]
    assert problem["type"]
    assert all(set(error) >= {"field", "reason"} for error in problem["errors"])


# --- the passcode ------------------------------------------------------------------------------


async def test_passcode_is_never_returned_in_bodies_lists_or_events(api: Api) -> None:
    response = await _post(api, intake_body(passcode=PASSCODE))
    assert response.status_code == 201
    job = response.json()
    assert job["has_passcode"] is True
    assert "passcode" not in job
    assert PASSCODE not in response.text
    headers = await api.login("manager.valence")
    fetched = await api.client.get(f"{JOBS}/{job['ref']}", headers=headers)
    assert fetched.json()["has_passcode"] is True
    assert PASSCODE not in fetched.text
    listed = await api.client.get(JOBS, headers=headers)
    assert [j["ref"] for j in listed.json()["items"]] == [job["ref"]]
    assert PASSCODE not in listed.text
    history = await api.client.get(f"{JOBS}/{job['ref']}/events", headers=headers)
    assert history.status_code == 200
    assert PASSCODE not in history.text


# --- Idempotency-Key ---------------------------------------------------------------------------


async def test_idempotent_retry_replays_the_first_answer_and_creates_nothing(api: Api) -> None:
    first = await _post(api, intake_body(), **{"Idempotency-Key": "intake-1"})
    assert first.status_code == 201, first.text
    retry = await _post(api, intake_body(), **{"Idempotency-Key": "intake-1"})
    assert retry.status_code == 201, retry.text
    assert retry.json() == first.json()
    assert retry.headers["location"] == first.headers["location"]
    assert retry.headers["etag"] == first.headers["etag"]
    assert await list_refs(api) == [first.json()["ref"]]


async def test_idempotent_replay_survives_later_changes_of_the_job(api: Api) -> None:
    """A retry returns the first answer even after the job moved on (it is a replay, not a read)."""
    first = await _post(api, intake_body(), **{"Idempotency-Key": "intake-2"})
    job = first.json()
    headers = {**(await api.login("tech.valence")), "If-Match": '"v1"'}
    moved = await api.client.post(f"{JOBS}/{job['ref']}/transitions", json={"to": "diagnosing"}, headers=headers)
    assert moved.status_code == 200
    retry = await _post(api, intake_body(), **{"Idempotency-Key": "intake-2"})
    assert retry.status_code == 201
    assert retry.json() == job
    assert await list_refs(api) == [job["ref"]]


async def test_same_key_with_a_different_body_is_422(api: Api) -> None:
    first = await _post(api, intake_body(), **{"Idempotency-Key": "intake-3"})
    assert first.status_code == 201
    other = intake_body(tier="express")
    response = await _post(api, other, **{"Idempotency-Key": "intake-3"})
    assert_problem(response, 422)
    assert await list_refs(api) == [first.json()["ref"]]


async def test_keys_are_scoped_to_the_user(api: Api) -> None:
    desk = await _post(api, intake_body(), **{"Idempotency-Key": "shared-key"})
    manager = await _post(api, intake_body(), user="manager.valence", **{"Idempotency-Key": "shared-key"})
    assert desk.status_code == manager.status_code == 201
    assert desk.json()["ref"] != manager.json()["ref"]
    assert sorted(await list_refs(api)) == sorted([desk.json()["ref"], manager.json()["ref"]])


async def test_keys_are_kept_for_24_hours(api: Api, clock: FakeClock) -> None:
    first = await _post(api, intake_body(), **{"Idempotency-Key": "day-key"})
    clock.advance(hours=23, minutes=59)
    replay = await _post(api, intake_body(), **{"Idempotency-Key": "day-key"})
    assert replay.json()["ref"] == first.json()["ref"]
    clock.advance(minutes=2)  # 24 h and a minute after the first use
    fresh = await _post(api, intake_body(), **{"Idempotency-Key": "day-key"})
    assert fresh.status_code == 201
    assert fresh.json()["ref"] != first.json()["ref"]
    assert len(await list_refs(api)) == 2


async def test_rejected_request_does_not_burn_the_key(api: Api) -> None:
    """A request that failed changed nothing, so its key is still free for the corrected request."""
    bad = copy.deepcopy(intake_body())
    bad["device"]["imei"] = WRONG_CHECK_DIGIT
    rejected = await _post(api, bad, **{"Idempotency-Key": "fix-and-retry"})
    assert_problem(rejected, 422, "device.imei")
    forbidden = await _post(api, intake_body(), user="tech.valence", **{"Idempotency-Key": "fix-and-retry"})
    assert_problem(forbidden, 403)
    assert await list_refs(api) == []
    accepted = await _post(api, intake_body(), **{"Idempotency-Key": "fix-and-retry"})
    assert accepted.status_code == 201, accepted.text
