"""The customer's whole journey over HTTP, as the shop lives it: the API through Litestar's client, the
supplier and the SMS gateway on the sandbox over real HTTP, and the outbox handled as a worker would.

Express: intake → diagnosis → estimate within the pre-approved budget → the part ordered from the sandbox
→ received → repair → check → ready (the code arrives by SMS) → pickup with that code.
Standard: the estimate goes to the customer, who declines it through their link; the device goes back.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from service.persistence.tables import notification_t, outbox_t
from service.services import Services
from service.settings import Settings
from tests.api.helpers import JOBS, create_job, events, get_job, if_match, move
from tests.api.parts_helpers import ORDERS, SKU, add_lines, add_part, add_supplier, new_tenant, ordered, pin_stock
from tests.conftest import Api, FakeClock
from tests.messages import CODE, deliver, sms_services, texts_to
from tests.sandbox_fixture import SandboxServer

DESK, TECH, MANAGER = "desk.valence", "tech.valence", "manager.valence"
PHONE, SURNAME, IMEI = "+33611223344", "Durand", "356938035643809"
LINK = re.compile(r"https?://\S+/track/[A-Za-z0-9_-]+")
THURSDAY_MORNING = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)  # 10:30 in Valence: open, no quiet hours


@pytest.fixture
async def services(
    settings: Settings, clock: FakeClock, sandbox: SandboxServer, sandbox_tenant: str, api: Api
) -> AsyncIterator[Services]:
    async with sms_services(settings, clock, sandbox, sandbox_tenant) as built:
        yield built


def customer(**extra: Any) -> dict[str, Any]:
    return {"name": f"Claire {SURNAME}", "phone": "06 11 22 33 44", "sms_consent": True, "language": "en", **extra}


async def track(api: Api, link: str, **headers: str) -> Any:
    response = await api.client.get(urlsplit(link).path, headers=headers)
    assert response.status_code == 200, response.text
    return response


async def test_express_journey_from_intake_to_pickup_with_the_code_sent_by_sms(
    api: Api, clock: FakeClock, sandbox: SandboxServer, sandbox_tenant: str, services: Services
) -> None:
    clock.now = THURSDAY_MORNING
    supplier_tenant = new_tenant()
    offer = pin_stock(sandbox, supplier_tenant, SKU, 10)
    await add_part(api)
    supplier = await add_supplier(api, sandbox, supplier_tenant)
    budget = offer.price_cents + 10_000

    # The front desk takes the phone in: express, a budget the customer pre-approved, the passcode.
    job = await create_job(
        api,
        DESK,
        customer=customer(),
        device={"brand": "Apple", "model": "iPhone 13", "imei": IMEI},
        tier="express",
        preapproved_budget_cents=budget,
        passcode="1234",
    )
    ref = job["ref"]
    assert job["tier"] == "express" and isinstance(job["express_slots_left"], int)
    await deliver(services, ref, clock)
    (received,) = texts_to(sandbox, sandbox_tenant, PHONE)
    link = LINK.search(received)
    assert link is not None and link.group(0) == job["tracking_url"]
    page = (await track(api, link.group(0), Accept="application/json")).json()
    assert page["ref"] == ref and SURNAME not in str(page) and IMEI not in str(page) and "1122" not in str(page)

    # The bench: diagnosis, an estimate within the budget, the part ordered from the supplier, received.
    job = await move(api, TECH, job, "diagnosing")
    estimate = {
        "lines": [
            {"kind": "part", "description": "OLED screen", "quantity": 1, "unit_price_cents": offer.price_cents},
            {"kind": "labour", "description": "fitting", "quantity": 1, "unit_price_cents": 4_000},
        ]
    }
    response = await api.client.put(
        f"{JOBS}/{ref}/estimate", json=estimate, headers={**if_match(job), **await api.login(TECH)}
    )
    assert response.status_code == 200, response.text
    added = await add_lines(api, ref, {"lines": [{"sku": SKU, "quantity": 1}]})
    assert added.status_code == 201, added.text
    view = added.json()
    assert view["stage"] == "awaiting_parts"
    order = await ordered(api, ref, view["lines"][0]["id"], supplier["id"])
    receipt = await api.client.post(f"{ORDERS}/{order['id']}/receipts", headers=await api.login(TECH))
    assert receipt.status_code == 201, receipt.text

    job = await get_job(api, TECH, ref)
    for stage in ("repairing", "quality_check", "ready_for_pickup"):
        job = await move(api, TECH, job, stage)
    assert job["approval"]["source"] == "preapproved_budget"
    assert job["pickup_slot"]  # on a shelf, so the counter does not search

    # The customer gets the code by SMS; what we keep of the message does not hold it.
    clock.advance(minutes=5)
    await deliver(services, ref, clock)
    ready = texts_to(sandbox, sandbox_tenant, PHONE)[-1]
    found = CODE.search(ready)
    assert found is not None, ready
    code = found.group(0)
    async with services.db.transaction(write=False) as uow:
        stored = [row.body for row in await uow.connection.execute(select(notification_t.c.body))]
        payloads = [str(row.payload) for row in await uow.connection.execute(select(outbox_t.c.payload))]
    assert not any(code in body or code.replace("-", "") in body for body in stored + payloads)

    # At the counter: the code finds the device and its slot, then hands it over.
    lookup = await api.client.get("/api/v1/pickup/lookup", params={"code": code}, headers=await api.login(DESK))
    assert lookup.status_code == 200, lookup.text
    assert (lookup.json()["ref"], lookup.json()["pickup_slot"]) == (ref, job["pickup_slot"])
    body = {"code": code.lower(), "paid_cents": budget - 10_000 + 4_000, "id_checked": True}
    handed = await api.client.post(f"{JOBS}/{ref}/pickup", json=body, headers=await api.login(DESK))

    assert handed.status_code == 200, handed.text
    done = handed.json()
    assert (done["stage"], done["pickup_slot"], done["paid_cents"]) == ("collected", None, body["paid_cents"])
    assert done["has_passcode"] is False
    (collected,) = [e for e in await events(api, MANAGER, ref) if e.get("to_stage") == "collected"]
    assert collected["data"]["handed_over_by"] == DESK and collected["data"]["id_checked"] is True
    # The link still tells the customer where things stand, until 30 days after collection.
    assert (await track(api, link.group(0), Accept="application/json")).json()["ref"] == ref
    clock.advance(days=31)
    gone = await api.client.get(urlsplit(link.group(0)).path, headers={"Accept": "application/json"})
    assert gone.status_code == 404


async def test_a_standard_estimate_declined_through_the_link_sends_the_device_back(
    api: Api, clock: FakeClock, sandbox: SandboxServer, sandbox_tenant: str, services: Services
) -> None:
    clock.now = THURSDAY_MORNING
    job = await create_job(api, DESK, customer=customer(language="fr"))
    ref = job["ref"]
    job = await move(api, TECH, job, "diagnosing")
    estimate = {"lines": [{"kind": "labour", "description": "board repair", "quantity": 1, "unit_price_cents": 25_000}]}
    response = await api.client.put(
        f"{JOBS}/{ref}/estimate", json=estimate, headers={**if_match(job), **await api.login(TECH)}
    )
    assert response.status_code == 200, response.text
    job = await move(api, TECH, response.json(), "awaiting_approval")
    await deliver(services, ref, clock)

    asked = texts_to(sandbox, sandbox_tenant, PHONE)[-1]
    link = LINK.search(asked)
    assert link is not None and "250,00" in asked, asked
    path = urlsplit(link.group(0)).path
    html = (await track(api, link.group(0))).text
    assert "<form" in html and SURNAME not in html and "06 11" not in html

    answer = await api.client.post(f"{path}/approval", json={"approved": False, "note": "too expensive"})

    assert answer.status_code == 200, answer.text
    (decision,) = [e for e in await events(api, MANAGER, ref) if e["kind"] == "approval_recorded"]
    assert (decision["actor"], decision["data"]["approved"], decision["data"]["source"]) == (
        "customer",
        False,
        "customer",
    )
    job = await get_job(api, DESK, ref)
    refused = await api.client.post(
        f"{JOBS}/{ref}/transitions", json={"to": "repairing"}, headers={**if_match(job), **await api.login(TECH)}
    )
    assert refused.status_code == 409
    job = await move(api, DESK, job, "ready_for_pickup")
    assert job["outcome"] == "declined"
    clock.advance(minutes=1)
    await deliver(services, ref, clock)
    code = CODE.search(texts_to(sandbox, sandbox_tenant, PHONE)[-1])
    assert code is not None
    handed = await api.client.post(f"{JOBS}/{ref}/pickup", json={"code": code.group(0)}, headers=await api.login(DESK))
    assert handed.status_code == 200 and handed.json()["stage"] == "collected"
