"""Erasing a customer's personal data on request: a manager anonymises a customer with no open job; the
jobs' anonymous history and amounts stay."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select, update

from domain.model import EventKind, JobEvent
from service.persistence.tables import customer_t, idempotency_t, job_t, notification_t, outbox_t
from service.services import Services
from service.usecases import outbox
from tests.api.erasure_helpers import collect, collected_job, job_id
from tests.api.helpers import JOBS, advance_to, assert_problem, create_job, events, get_job, intake_body, list_refs
from tests.conftest import Api, FakeClock

CUSTOMERS = "/api/v1/customers"


async def erase(api: Api, customer_id: int, user: str = "manager.valence") -> httpx.Response:
    return await api.client.post(f"{CUSTOMERS}/{customer_id}/erasure", headers=await api.login(user))


async def deliver_messages(services: Services, job: dict[str, Any], now: datetime) -> None:
    """What a worker does with the job's outbox entries (no channel configured: each message is skipped,
    but its recipient and body are stored)."""
    async with services.db.transaction(write=False) as uow:
        rows = await uow.connection.execute(select(outbox_t.c.id).where(outbox_t.c.job_id == job_id(job)))
        ids = [row[0] for row in rows]
    for entry in ids:
        await outbox.handle(services, entry, now=now)


async def test_a_manager_erases_a_customer_and_the_anonymous_history_stays(
    api: Api, services: Services, clock: FakeClock
) -> None:
    customer = {
        "name": "Camille Martin",
        "phone": "06 12 34 56 78",
        "email": "camille@example.org",
        "sms_consent": True,
    }
    headers = {**(await api.login("desk.valence")), "Idempotency-Key": "intake-camille"}
    created = await api.client.post(
        JOBS,
        json=intake_body(
            customer=customer,
            passcode="1234",
            device={"brand": "Apple", "model": "iPhone 13", "serial_number": "F2LXK0AAHG7F"},
        ),
        headers=headers,
    )
    assert created.status_code == 201, created.text
    job = await advance_to(api, created.json(), "ready_for_pickup")
    await collect(services, job["ref"], clock.now)
    await deliver_messages(services, job, clock.now)
    async with services.db.transaction() as uow:  # a message that went out, as the history records it
        sent = {"channel": "sms", "template": "ready_for_pickup", "recipient": "+33612345678", "attempts": 1}
        await uow.jobs.add_events(job_id(job), [JobEvent(EventKind.NOTIFICATION_SENT, clock.now, None, data=sent)])
    before = await get_job(api, "manager", job["ref"])
    history = await events(api, "manager", job["ref"])
    customer_id = before["customer"]["id"]

    clock.advance(hours=1)
    response = await erase(api, customer_id)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": customer_id,
        "erased_at": clock.now.isoformat().replace("+00:00", "Z"),
        "jobs": [job["ref"]],
    }

    after = await get_job(api, "manager", job["ref"])
    assert after["customer"] == {
        "id": customer_id,
        "name": "[erased]",
        "phone": "",
        "email": None,
        "sms_consent": False,
        "language": before["customer"]["language"],
    }
    assert (after["device"]["imei"], after["device"]["serial_number"]) == (None, None)
    assert (after["device"]["brand"], after["device"]["model"]) == ("Apple", "iPhone 13")
    assert after["has_passcode"] is False
    # What the shop must keep: stages, dates, estimate, approval, amounts.
    for kept in ("stage", "estimate", "approval", "paid_cents", "collected_at", "created_at", "due_at", "outcome"):
        assert after[kept] == before[kept], kept
    assert after["paid_cents"] == 8900 and after["estimate"]["total_cents"] == 8900

    # The history: every entry stays, without the recipient; the erasure is on it.
    erased_history = await events(api, "manager", job["ref"])
    assert [e["kind"] for e in erased_history] == [e["kind"] for e in history] + ["customer_erased"]
    assert erased_history[-1]["actor"] == "manager.valence"
    assert erased_history[-1]["data"] == {"customer_id": customer_id}
    (notified,) = [e for e in erased_history if e["kind"] == "notification_sent"]
    assert notified["data"] == {**sent, "recipient": None}
    assert "+33612345678" not in str(erased_history) and "camille" not in str(erased_history).lower()

    async with services.db.transaction(write=False) as uow:
        conn = uow.connection
        messages = (await conn.execute(select(notification_t).where(notification_t.c.job_id == job_id(job)))).all()
        secrets = (
            await conn.execute(
                select(
                    job_t.c.tracking_hash,
                    job_t.c.tracking_ciphertext,
                    job_t.c.pickup_code_hash,
                    job_t.c.passcode_ciphertext,
                ).where(job_t.c.id == job_id(job))
            )
        ).one()
        stored = (await conn.execute(select(idempotency_t.c.key))).all()
        row = (await conn.execute(select(customer_t).where(customer_t.c.id == customer_id))).mappings().one()
    assert messages, "the messages were stored"
    assert {(m.recipient, m.body) for m in messages} == {("", "[erased]")}
    assert {m.template for m in messages} >= {"job_received"}
    assert tuple(secrets) == (None, None, None, None)
    assert stored == []  # the intake's stored answer (a copy of the customer) is gone
    assert row["erased_at"] is not None and row["phone"] == "" and row["email"] is None

    # Nobody finds them any more by name, phone, email or device.
    for q in ("Camille", "0612345678", "F2LXK0AAHG7F"):
        assert await list_refs(api, q=q) == []


async def test_erasure_again_answers_the_same_and_changes_nothing(
    api: Api, services: Services, clock: FakeClock
) -> None:
    job = await collected_job(api, services, clock)
    customer_id = job["customer"]["id"]
    first = await erase(api, customer_id)
    assert first.status_code == 200, first.text
    erased = await get_job(api, "manager", job["ref"])
    history = await events(api, "manager", job["ref"])

    clock.advance(days=2)
    again = await erase(api, customer_id, "manager")
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert await get_job(api, "manager", job["ref"]) == erased
    assert await events(api, "manager", job["ref"]) == history


async def test_a_customer_with_an_open_job_is_not_erased(api: Api, services: Services, clock: FakeClock) -> None:
    closed = await collected_job(api, services, clock)
    open_job = await create_job(api)
    async with services.db.transaction() as uow:  # a returning customer: both jobs are theirs
        await uow.connection.execute(
            update(job_t).where(job_t.c.id == job_id(open_job)).values(customer_id=closed["customer"]["id"])
        )
    body = assert_problem(await erase(api, closed["customer"]["id"]), 409)
    assert open_job["ref"] in body["detail"]
    assert (await get_job(api, "manager", closed["ref"]))["customer"]["name"] == "Camille Martin"

    # Once the other job is closed too, both are erased.
    await advance_to(api, await get_job(api, "manager", open_job["ref"]), "ready_for_pickup")
    await collect(services, open_job["ref"], clock.now)
    response = await erase(api, closed["customer"]["id"])
    assert response.status_code == 200, response.text
    assert response.json()["jobs"] == [closed["ref"], open_job["ref"]]
    for ref in (closed["ref"], open_job["ref"]):
        job = await get_job(api, "manager", ref)
        assert (job["customer"]["name"], job["device"]["imei"]) == ("[erased]", None)


async def test_a_cancelled_job_is_closed(api: Api) -> None:
    job = await create_job(api)
    cancelled = await api.client.post(
        f"{JOBS}/{job['ref']}/transitions",
        json={"to": "cancelled"},
        headers={**(await api.login("desk.valence")), "If-Match": '"v1"'},
    )
    assert cancelled.status_code == 200, cancelled.text
    response = await erase(api, job["customer"]["id"])
    assert response.status_code == 200, response.text
    assert (await get_job(api, "manager", job["ref"]))["stage"] == "cancelled"


async def test_only_managers_erase_and_only_customers_they_can_see(
    api: Api, services: Services, clock: FakeClock
) -> None:
    job = await collected_job(api, services, clock)
    customer_id = job["customer"]["id"]
    for user in ("desk.valence", "tech.valence"):
        assert_problem(await erase(api, customer_id, user), 403)
    for missing in (customer_id + 1000, 0, 2**31, 2**40):
        assert_problem(await erase(api, missing, "manager"), 404)
    assert (await get_job(api, "manager", job["ref"]))["customer"]["name"] == "Camille Martin"

    # A customer of Guilherand does not exist for Valence's manager; the chain-wide manager erases them.
    other = await create_job(api, "desk.guilherand")
    await api.client.post(
        f"{JOBS}/{other['ref']}/transitions",
        json={"to": "cancelled"},
        headers={**(await api.login("desk.guilherand")), "If-Match": '"v1"'},
    )
    assert_problem(await erase(api, other["customer"]["id"]), 404)
    assert (await erase(api, other["customer"]["id"], "manager")).status_code == 200
