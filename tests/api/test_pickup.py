"""Pickup: a code and a storage slot when a device is ready, the hand-over at the counter with the code (or
a manager's reason), the wrong-code lockout, the express lookup, and the rate limits on all of it."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.pickup import ALPHABET
from service.app import create_app
from service.persistence.db import create_engine
from service.persistence.tables import branch_t, job_t, notification_t, outbox_t
from service.services import Services
from service.settings import Settings
from service.usecases import outbox
from service.usecases import pickup as pickup_usecase
from service.usecases.notifications import MASK, SEALED
from tests.api.helpers import (
    JOBS,
    advance_to,
    assert_problem,
    collect,
    create_job,
    events,
    get_job,
    move,
    pickup_code,
)
from tests.conftest import Api, FakeClock

LOOKUP = "/api/v1/pickup/lookup"
CODE = re.compile(f"^[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}$")


# --- fixtures and steps --------------------------------------------------------------------------


@asynccontextmanager
async def connection(settings: Settings) -> AsyncIterator[AsyncConnection]:
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            yield conn
    finally:
        await engine.dispose()


async def stored(settings: Settings, ref: str) -> dict[str, Any]:
    """The job's pickup columns as stored."""
    columns = (job_t.c.pickup_code_hash, job_t.c.pickup_slot, job_t.c.pickup_failures, job_t.c.pickup_locked_until)
    async with connection(settings) as conn:
        row = (await conn.execute(select(*columns).where(job_t.c.id == int(ref[3:])))).mappings().one()
    return dict(row)


async def ready_entries(settings: Settings, ref: str) -> list[dict[str, Any]]:
    """The job's ready-for-pickup outbox entries."""
    async with connection(settings) as conn:
        query = select(outbox_t).where(outbox_t.c.job_id == int(ref[3:])).order_by(outbox_t.c.id)
        rows = [dict(row) for row in (await conn.execute(query)).mappings()]
    return [row for row in rows if row["payload"]["template"] == "ready_for_pickup"]


@pytest.fixture
async def branch_slots(settings: Settings) -> AsyncIterator[Callable[[str, list[str] | None], Awaitable[None]]]:
    """Set a branch's own storage slots (restored to the default afterwards: branches outlive tests)."""
    touched: set[str] = set()

    async def set_slots(code: str, slots: list[str] | None) -> None:
        touched.add(code)
        async with connection(settings) as conn:
            await conn.execute(update(branch_t).where(branch_t.c.code == code).values(storage_slots=slots))

    yield set_slots
    for code in touched:
        async with connection(settings) as conn:
            await conn.execute(update(branch_t).where(branch_t.c.code == code).values(storage_slots=None))


@pytest.fixture
async def roomy(api: Api, settings: Settings, clock: FakeClock) -> AsyncIterator[Api]:
    """The app with the request rate limits out of the way, to reach the wrong-code lockout."""
    configured = settings.model_copy(update={"pickup_rate_per_minute_ip": 10_000, "pickup_rate_per_minute_job": 10_000})
    async with AsyncTestClient(app=create_app(configured, clock=clock)) as client:
        yield Api(client, api.tokens)


async def ready(api: Api, desk: str = "desk.valence", tech: str = "tech.valence", **intake: Any) -> dict[str, Any]:
    """A new job, straight to ready_for_pickup (diagnosed beyond repair)."""
    job = await create_job(api, desk, **intake)
    job = await move(api, tech, job, "diagnosing")
    return await move(api, tech, job, "ready_for_pickup", note="board is dead")


async def pickup(api: Api, user: str, ref: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await api.client.post(f"{JOBS}/{ref}/pickup", json=body, headers={**(await api.login(user)), **headers})


async def lookup(api: Api, user: str, **params: str) -> httpx.Response:
    return await api.client.get(LOOKUP, params=params, headers=await api.login(user))


async def manager_alerts(api: Api, user: str = "manager.valence") -> list[dict[str, Any]]:
    response = await api.client.get("/api/v1/alerts", headers=await api.login(user))
    assert response.status_code == 200, response.text
    return [alert for alert in response.json() if alert["audience"] == "manager"]


def kinds(history: list[dict[str, Any]]) -> list[str]:
    return [event["kind"] for event in history]


# --- ready for pickup: code, slot, message ---------------------------------------------------------


async def test_a_ready_device_gets_a_slot_and_its_customer_a_code_stored_only_as_a_hash(
    api: Api, settings: Settings
) -> None:
    job = await ready(api)
    assert (job["stage"], job["pickup_slot"]) == ("ready_for_pickup", "A-01")
    code = await pickup_code(api, job["ref"])
    assert CODE.match(code), code

    row = await stored(settings, job["ref"])
    assert re.fullmatch(r"v1\$[0-9a-f]{32}\$[0-9a-f]{64}", row["pickup_code_hash"])
    assert code.replace("-", "") not in row["pickup_code_hash"]
    assert (row["pickup_slot"], row["pickup_failures"], row["pickup_locked_until"]) == ("A-01", 0, None)

    [entry] = await ready_entries(settings, job["ref"])
    assert entry["payload"]["data"] == {"outcome": "not_repaired"}  # the code only sealed
    assert code not in json.dumps(entry["payload"]) and code.replace("-", "") not in json.dumps(entry["payload"])

    history = await events(api, "manager", job["ref"])
    prepared = [e for e in history if e["kind"] == "pickup_prepared"]
    assert [e["data"] for e in prepared] == [{"slot": "A-01"}]
    assert code not in json.dumps(history)
    # Neither the code nor its hash is ever in the job's representation.
    fetched = await api.client.get(f"{JOBS}/{job['ref']}", headers=await api.login("manager"))
    assert "pickup_code" not in fetched.text and row["pickup_code_hash"] not in fetched.text
    assert fetched.json()["version"] == job["version"]  # preparing pickup is part of the move


class Recorder:
    """A notification channel that keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, to: str, subject: str, body: str, *, idempotency_key: str | None = None) -> str:
        self.sent.append((to, subject, body))
        return f"msg-{len(self.sent)}"


async def test_the_customer_is_sent_the_code_and_the_opening_hours_and_only_the_sent_copy_says_it(
    api: Api, services: Services, settings: Settings, clock: FakeClock
) -> None:
    job = await ready(api)
    code = await pickup_code(api, job["ref"])
    [entry] = await ready_entries(settings, job["ref"])
    channel = Recorder()
    services.channels = {"email": channel}

    assert await outbox.handle(services, entry["id"], now=clock.now)

    [(to, subject, body)] = channel.sent
    assert (to, subject) == ("camille@example.org", f"Prêt à retirer ({job['ref']})")
    assert f"Votre code de retrait : {code}." in body
    assert "Horaires : lun-sam 09:00-19:00." in body
    async with connection(settings) as conn:
        kept = await conn.execute(select(notification_t.c.body).where(notification_t.c.outbox_id == entry["id"]))
        bodies = [row[0] for row in kept]
    assert bodies and all(MASK in b and code not in b for b in bodies)
    [done] = await ready_entries(settings, job["ref"])
    assert done["done_at"] is not None and SEALED not in done["payload"]  # the sealed code is gone


async def test_slots_are_given_in_order_and_a_freed_one_is_reused(api: Api) -> None:
    first, second = await ready(api), await ready(api)
    assert (first["pickup_slot"], second["pickup_slot"]) == ("A-01", "A-02")
    await collect(api, "desk.valence", first)
    third = await ready(api)
    assert third["pickup_slot"] == "A-01"
    # Another branch has shelves of its own.
    other = await ready(api, "desk.guilherand", "tech.guilherand")
    assert other["pickup_slot"] == "A-01"


async def test_a_branch_uses_its_own_slots_and_when_none_is_free_the_device_still_goes_ready(
    api: Api, branch_slots: Callable[[str, list[str] | None], Awaitable[None]]
) -> None:
    await branch_slots("guilherand", ["COMPTOIR-1"])
    first = await ready(api, "desk.guilherand", "tech.guilherand")
    assert first["pickup_slot"] == "COMPTOIR-1"
    assert await manager_alerts(api, "manager") == []

    second = await ready(api, "desk.guilherand", "tech.guilherand")
    assert (second["stage"], second["pickup_slot"]) == ("ready_for_pickup", None)
    [alert] = await manager_alerts(api, "manager")
    assert (alert["kind"], alert["ref"]) == ("no_storage_slot", second["ref"])
    assert await manager_alerts(api, "manager.valence") == []  # another branch's managers
    # Without a slot, the customer still gets a code, and the device goes with it.
    assert CODE.match(await pickup_code(api, second["ref"]))
    collected = await collect(api, "desk.guilherand", second)
    assert collected["stage"] == "collected"


async def test_a_hold_keeps_the_slot_and_the_code(api: Api, settings: Settings) -> None:
    job = await ready(api)
    code = await pickup_code(api, job["ref"])
    job = await move(api, "desk.valence", job, "on_hold", note="customer abroad")
    assert job["pickup_slot"] == "A-01"
    assert_problem(await pickup(api, "desk.valence", job["ref"], {"code": code}), 409)
    assert_problem(await lookup(api, "desk.valence", code=code), 404)  # only devices waiting are found
    job = await move(api, "desk.valence", job, "ready_for_pickup")
    assert job["pickup_slot"] == "A-01"
    assert len(await ready_entries(settings, job["ref"])) == 1  # no new code, no new message
    assert kinds(await events(api, "manager", job["ref"])).count("pickup_prepared") == 1
    assert (await collect(api, "desk.valence", job))["stage"] == "collected"


async def test_codes_are_unique_among_the_branchs_devices_waiting(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    first = await ready(api)
    taken = (await pickup_code(api, first["ref"])).replace("-", "")
    script = iter(taken + "ZZZZ2222")  # the first draw repeats the waiting device's code
    monkeypatch.setattr(pickup_usecase, "draw", lambda _alphabet: next(script))

    second = await ready(api)

    assert await pickup_code(api, second["ref"]) == "ZZZZ-2222"
    assert next(script, None) is None  # both codes were drawn: the repeat was refused
    found = await lookup(api, "desk.valence", code="ZZZZ2222")
    assert found.json()["ref"] == second["ref"]
    found = await lookup(api, "desk.valence", code=taken)
    assert found.json()["ref"] == first["ref"]


# --- the hand-over -----------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["as sent", "lower case", "no dash", "spaced"])
async def test_the_right_code_hands_the_device_over(api: Api, settings: Settings, clock: FakeClock, typed: str) -> None:
    job = await ready(api, passcode="1234")
    code = await pickup_code(api, job["ref"])
    given = {
        "as sent": code,
        "lower case": code.lower(),
        "no dash": code.replace("-", ""),
        "spaced": " ".join(code.replace("-", "")),
    }[typed]
    clock.advance(minutes=5)

    response = await pickup(api, "desk.valence", job["ref"], {"code": given, "paid_cents": 4900, "id_checked": True})

    assert response.status_code == 200, response.text
    done = response.json()
    assert response.headers["etag"] == f'"v{done["version"]}"'
    assert done["version"] == job["version"] + 1
    assert (done["stage"], done["pickup_slot"], done["paid_cents"]) == ("collected", None, 4900)
    assert datetime.fromisoformat(done["collected_at"]) == clock.now
    assert done["has_passcode"] is False  # the device's unlock code is erased as it leaves
    row = await stored(settings, job["ref"])
    assert (row["pickup_code_hash"], row["pickup_slot"], row["pickup_failures"]) == (None, None, 0)
    last = (await events(api, "manager", job["ref"]))[-1]
    assert (last["kind"], last["from_stage"], last["to_stage"], last["actor"]) == (
        "stage_changed",
        "ready_for_pickup",
        "collected",
        "desk.valence",
    )
    assert last["data"] == {
        "handed_over_by": "desk.valence",
        "with_code": True,
        "paid_cents": 4900,
        "id_checked": True,
        "slot": "A-01",
        "passcode_erased": True,
    }
    assert (await get_job(api, "manager", job["ref"]))["stage"] == "collected"


async def test_a_wrong_code_is_403_naming_the_code_and_is_counted_even_though_it_fails(
    api: Api, settings: Settings
) -> None:
    job = await ready(api)
    code = await pickup_code(api, job["ref"])
    wrong = "ZZZZ-ZZZZ" if code != "ZZZZ-ZZZZ" else "YYYY-YYYY"

    problem = assert_problem(await pickup(api, "desk.valence", job["ref"], {"code": wrong}), 403, "code")

    assert "wrong pickup code" in problem["detail"]
    assert (await stored(settings, job["ref"]))["pickup_failures"] == 1
    after = await get_job(api, "manager", job["ref"])
    assert (after["stage"], after["version"]) == ("ready_for_pickup", job["version"])  # not a change of the job
    refused = (await events(api, "manager", job["ref"]))[-1]
    assert (refused["kind"], refused["actor"], refused["data"]) == ("pickup_refused", "desk.valence", {"failures": 1})
    # The right code still works, and the count is reset with the hand-over.
    assert (await collect(api, "desk.valence", job))["stage"] == "collected"
    assert (await stored(settings, job["ref"]))["pickup_failures"] == 0


async def test_five_wrong_codes_lock_pickup_for_15_minutes_and_tell_the_managers(
    roomy: Api, settings: Settings, clock: FakeClock
) -> None:
    api = roomy
    job = await ready(api)
    code = await pickup_code(api, job["ref"])
    wrong = "ZZZZ-ZZZZ" if code != "ZZZZ-ZZZZ" else "YYYY-YYYY"
    for attempt in range(1, 5):
        problem = assert_problem(await pickup(api, "desk.valence", job["ref"], {"code": wrong}), 403, "code")
        assert "locked" not in problem["detail"], attempt
    assert await manager_alerts(api) == []

    problem = assert_problem(await pickup(api, "desk.valence", job["ref"], {"code": wrong}), 403, "code")

    assert "locked for 15 minutes" in problem["detail"]
    row = await stored(settings, job["ref"])
    assert row["pickup_locked_until"] == clock.now + timedelta(minutes=15)
    history = await events(api, "manager", job["ref"])
    assert kinds(history)[-2:] == ["pickup_refused", "pickup_locked"]
    assert history[-1]["data"] == {"failures": 5, "until": (clock.now + timedelta(minutes=15)).isoformat()}
    [alert] = await manager_alerts(api)
    assert (alert["kind"], alert["ref"]) == ("pickup_locked", job["ref"])

    # While locked, every attempt is 429 with Retry-After, the right code included, and none is counted.
    response = await pickup(api, "desk.valence", job["ref"], {"code": code})
    assert_problem(response, 429)
    assert response.headers["retry-after"] == "900"
    clock.advance(minutes=14)
    response = await pickup(api, "manager.valence", job["ref"], {"code": wrong})
    assert_problem(response, 429)
    assert response.headers["retry-after"] == "60"
    assert kinds(await events(api, "manager", job["ref"])) == kinds(history)
    assert (await get_job(api, "manager", job["ref"]))["stage"] == "ready_for_pickup"

    clock.advance(minutes=1)  # the lock is over
    done = await pickup(api, "desk.valence", job["ref"], {"code": code})
    assert done.status_code == 200, done.text
    assert done.json()["stage"] == "collected"


async def test_after_a_lock_five_more_wrong_codes_lock_again(roomy: Api, settings: Settings, clock: FakeClock) -> None:
    api = roomy
    job = await ready(api)
    wrong = "ZZZZ-ZZZZ" if await pickup_code(api, job["ref"]) != "ZZZZ-ZZZZ" else "YYYY-YYYY"
    for _ in range(5):
        assert_problem(await pickup(api, "desk.valence", job["ref"], {"code": wrong}), 403, "code")
    clock.advance(minutes=15)
    for failures in range(1, 5):
        assert_problem(await pickup(api, "desk.valence", job["ref"], {"code": wrong}), 403, "code")
        assert (await stored(settings, job["ref"]))["pickup_failures"] == failures
    assert (await stored(settings, job["ref"]))["pickup_locked_until"] is None  # the old lock is over and cleared
    assert_problem(await pickup(api, "desk.valence", job["ref"], {"code": wrong}), 403, "code")
    assert (await stored(settings, job["ref"]))["pickup_locked_until"] == clock.now + timedelta(minutes=15)
    assert len(await manager_alerts(api)) == 2


async def test_a_manager_may_hand_over_a_locked_device_with_a_reason(roomy: Api) -> None:
    api = roomy
    job = await ready(api)
    wrong = "ZZZZ-ZZZZ" if await pickup_code(api, job["ref"]) != "ZZZZ-ZZZZ" else "YYYY-YYYY"
    for _ in range(5):
        assert_problem(await pickup(api, "desk.valence", job["ref"], {"code": wrong}), 403, "code")
    reason = {"reason": "customer lost the message; ID checked against the intake name", "id_checked": True}
    response = await pickup(api, "manager.valence", job["ref"], reason)
    assert response.status_code == 200, response.text
    assert response.json()["stage"] == "collected"


async def test_a_manager_hands_over_without_the_code_with_a_reason_recorded(api: Api, settings: Settings) -> None:
    job = await ready(api)
    body = {"reason": "customer lost the message", "paid_cents": 0, "id_checked": True}

    response = await pickup(api, "manager.valence", job["ref"], body)

    assert response.status_code == 200, response.text
    assert (response.json()["stage"], response.json()["paid_cents"]) == ("collected", 0)
    last = (await events(api, "manager", job["ref"]))[-1]
    assert (last["actor"], last["note"]) == ("manager.valence", "customer lost the message")
    assert last["data"]["with_code"] is False
    assert last["data"]["reason"] == "customer lost the message"
    assert last["data"]["handed_over_by"] == "manager.valence"
    assert (await stored(settings, job["ref"]))["pickup_code_hash"] is None


async def test_only_a_manager_hands_over_without_the_code(api: Api) -> None:
    job = await ready(api)
    assert_problem(await pickup(api, "desk.valence", job["ref"], {"reason": "customer lost the message"}), 403)
    # Nothing at all: the code is what is missing.
    assert_problem(await pickup(api, "desk.valence", job["ref"], {}), 422, "code")
    assert_problem(await pickup(api, "manager.valence", job["ref"], {"paid_cents": 100}), 422, "code")
    assert_problem(await pickup(api, "manager.valence", job["ref"], {"reason": "   "}), 422, "reason")
    assert (await get_job(api, "manager", job["ref"]))["stage"] == "ready_for_pickup"


async def test_a_technician_hands_nothing_over_and_their_attempt_is_not_counted(api: Api, settings: Settings) -> None:
    job = await ready(api)
    code = await pickup_code(api, job["ref"])
    assert_problem(await pickup(api, "tech.valence", job["ref"], {"code": code}), 403)
    assert_problem(await pickup(api, "tech.valence", job["ref"], {"code": "ZZZZ-ZZZZ"}), 403)
    assert (await stored(settings, job["ref"]))["pickup_failures"] == 0
    assert "pickup_refused" not in kinds(await events(api, "manager", job["ref"]))
    assert (await get_job(api, "manager", job["ref"]))["stage"] == "ready_for_pickup"


async def test_a_job_not_waiting_for_pickup_is_409_and_no_code_is_counted(api: Api, settings: Settings) -> None:
    repairing = await advance_to(api, await create_job(api), "repairing")
    problem = assert_problem(await pickup(api, "desk.valence", repairing["ref"], {"code": "ZZZZ-ZZZZ"}), 409)
    assert "not waiting for pickup" in problem["detail"]
    assert (await stored(settings, repairing["ref"]))["pickup_failures"] == 0

    job = await ready(api)
    code = await pickup_code(api, job["ref"])
    job = await collect(api, "desk.valence", job)
    assert_problem(await pickup(api, "desk.valence", job["ref"], {"code": code}), 409)
    assert_problem(await pickup(api, "manager.valence", job["ref"], {"reason": "again"}), 409)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "ABC"}, "code"),
        ({"code": "ABCD-EFG0"}, "code"),  # 0 is never in a code
        ({"code": ""}, "code"),
        ({"code": "A" * 41}, "code"),
        ({"code": "ABCD-EFGH", "reason": "both"}, "reason"),
        ({"code": "ABCD-EFGH", "paid_cents": -1}, "paid_cents"),
        ({"code": "ABCD-EFGH", "id_checked": "yes"}, "id_checked"),
        ({"code": "ABCD-EFGH", "stage": "collected"}, "stage"),
        ({"code": "ABCD\x00EFGH"}, "code"),
    ],
)
async def test_malformed_pickups_are_422_and_not_counted(
    api: Api, settings: Settings, body: dict[str, Any], field: str
) -> None:
    job = await ready(api)
    assert_problem(await pickup(api, "desk.valence", job["ref"], body), 422, field)
    assert (await stored(settings, job["ref"]))["pickup_failures"] == 0
    assert (await get_job(api, "manager", job["ref"]))["stage"] == "ready_for_pickup"


async def test_if_match_is_optional_but_checked_when_sent(api: Api) -> None:
    job = await ready(api)
    code = await pickup_code(api, job["ref"])
    stale = await pickup(api, "desk.valence", job["ref"], {"code": code}, **{"If-Match": '"v1"'})
    assert_problem(stale, 412)
    current = await pickup(api, "desk.valence", job["ref"], {"code": code}, **{"If-Match": f'"v{job["version"]}"'})
    assert current.status_code == 200, current.text


async def test_another_branchs_device_is_not_found(api: Api, settings: Settings) -> None:
    job = await ready(api)
    code = await pickup_code(api, job["ref"])
    assert_problem(await pickup(api, "desk.guilherand", job["ref"], {"code": code}), 404)
    assert_problem(await pickup(api, "desk.guilherand", "AT-999999", {"code": code}), 404)
    assert_problem(await lookup(api, "desk.guilherand", code=code), 404)
    assert (await stored(settings, job["ref"]))["pickup_failures"] == 0


# --- express lookup at the desk ------------------------------------------------------------------------


async def test_lookup_by_code_or_reference_finds_the_device_and_its_slot(api: Api) -> None:
    first, second = await ready(api), await ready(api)
    code = await pickup_code(api, second["ref"])

    spellings = ({"code": code}, {"code": code.lower().replace("-", " ")}, {"ref": second["ref"]})
    for params in (*spellings, {"reference": second["ref"]}):
        response = await lookup(api, "desk.valence", **params)
        assert response.status_code == 200, (params, response.text)
        found = response.json()
        assert (found["ref"], found["pickup_slot"], found["stage"]) == (second["ref"], "A-02", "ready_for_pickup")
        assert response.headers["etag"] == f'"v{found["version"]}"'
    assert (await lookup(api, "manager", code=code)).json()["ref"] == second["ref"]  # a chain-wide manager
    assert (await lookup(api, "manager.valence", ref=first["ref"].lower())).json()["pickup_slot"] == "A-01"


async def test_lookup_refusals(api: Api) -> None:
    job = await ready(api)
    code = await pickup_code(api, job["ref"])
    wrong = "ZZZZ-ZZZZ" if code != "ZZZZ-ZZZZ" else "YYYY-YYYY"
    assert_problem(await lookup(api, "desk.valence", code=wrong), 404)
    assert_problem(await lookup(api, "desk.valence", code="ABCD-EFG0"), 422, "code")
    assert_problem(await lookup(api, "desk.valence"), 422, "code")
    assert_problem(await lookup(api, "desk.valence", code=code, ref=job["ref"]), 422, "code")
    assert_problem(await lookup(api, "desk.valence", ref=job["ref"], reference="AT-999999"), 422, "reference")
    assert_problem(await lookup(api, "tech.valence", code=code), 403)
    assert_problem(await lookup(api, "desk.valence", ref="AT-999999"), 404)
    repairing = await advance_to(api, await create_job(api), "repairing")
    assert_problem(await lookup(api, "desk.valence", ref=repairing["ref"]), 409)


async def test_a_locked_device_is_not_found_by_its_code(roomy: Api, clock: FakeClock) -> None:
    api = roomy
    job = await ready(api)
    code = await pickup_code(api, job["ref"])
    wrong = "ZZZZ-ZZZZ" if code != "ZZZZ-ZZZZ" else "YYYY-YYYY"
    for _ in range(5):
        assert_problem(await pickup(api, "desk.valence", job["ref"], {"code": wrong}), 403, "code")
    assert_problem(await lookup(api, "desk.valence", code=code), 404)  # no way around the lock
    assert (await lookup(api, "desk.valence", ref=job["ref"])).status_code == 200
    clock.advance(minutes=15)
    assert (await lookup(api, "desk.valence", code=code)).json()["ref"] == job["ref"]


# --- rate limits -----------------------------------------------------------------------------------------


async def test_pickup_attempts_are_rate_limited_per_job(settings: Settings, clock: FakeClock, api: Api) -> None:
    """With the default limits (10 a minute per job, all at once) and no lockout in the way."""
    configured = settings.model_copy(update={"pickup_max_failures": 100})
    async with AsyncTestClient(app=create_app(configured, clock=clock)) as client:
        limited = Api(client, api.tokens)
        job, other = await ready(limited), await ready(limited)
        burst = configured.pickup_rate_per_minute_job
        for _ in range(burst):
            assert_problem(await pickup(limited, "desk.valence", job["ref"], {"code": "ZZZZ-ZZZZ"}), 403, "code")
        response = await pickup(limited, "desk.valence", job["ref"], {"code": await pickup_code(limited, job["ref"])})
        assert_problem(response, 429)
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert (await get_job(limited, "manager", job["ref"]))["stage"] == "ready_for_pickup"
        # Another job, from the same desk, is not held back.
        assert (await collect(limited, "desk.valence", other))["stage"] == "collected"


async def test_lookups_are_rate_limited_per_ip(api: Api, settings: Settings) -> None:
    """Default: 30 a minute per IP (all at once); hand-overs and lookups count together."""
    job = await ready(api)
    burst = settings.pickup_rate_per_minute_ip
    for _ in range(burst):
        assert_problem(await lookup(api, "desk.valence", code="ZZZZ-ZZZZ"), 404)
    limited = await lookup(api, "desk.valence", ref=job["ref"])
    assert_problem(limited, 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert_problem(await pickup(api, "desk.valence", job["ref"], {"code": "ZZZZ-ZZZZ"}), 429)
    assert (await get_job(api, "manager", job["ref"]))["stage"] == "ready_for_pickup"


# --- concurrency ------------------------------------------------------------------------------------------


async def test_concurrent_wrong_codes_are_each_counted(
    live_api: Api, api: Api, settings: Settings, rendezvous: Callable[[int], None]
) -> None:
    job = await ready(live_api)
    wrong = "ZZZZ-ZZZZ" if await pickup_code(api, job["ref"]) != "ZZZZ-ZZZZ" else "YYYY-YYYY"
    rendezvous(2)
    responses = await asyncio.gather(
        *(pickup(live_api, user, job["ref"], {"code": wrong}) for user in ("desk.valence", "manager.valence"))
    )
    for response in responses:
        assert_problem(response, 403, "code")
    assert (await stored(settings, job["ref"]))["pickup_failures"] == 2
    assert kinds(await events(live_api, "manager", job["ref"])).count("pickup_refused") == 2


async def test_concurrent_hand_overs_hand_the_device_over_once(
    live_api: Api, api: Api, rendezvous: Callable[[int], None]
) -> None:
    job = await ready(live_api)
    code = await pickup_code(api, job["ref"])
    rendezvous(2)
    responses = await asyncio.gather(
        *(pickup(live_api, user, job["ref"], {"code": code}) for user in ("desk.valence", "manager.valence"))
    )
    assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
    history = await events(live_api, "manager", job["ref"])
    assert [e["to_stage"] for e in history].count("collected") == 1


async def test_devices_made_ready_at_once_get_different_slots(live_api: Api, rendezvous: Callable[[int], None]) -> None:
    jobs = []
    for _ in range(2):
        job = await create_job(live_api)
        jobs.append(await move(live_api, "tech.valence", job, "diagnosing"))
    tech = await live_api.login("tech.valence")
    rendezvous(2)
    responses = await asyncio.gather(
        *(
            live_api.client.post(
                f"{JOBS}/{job['ref']}/transitions",
                json={"to": "ready_for_pickup"},
                headers={**tech, "If-Match": f'"v{job["version"]}"'},
            )
            for job in jobs
        )
    )
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    assert sorted(r.json()["pickup_slot"] for r in responses) == ["A-01", "A-02"]
