"""Request bodies and small steps that many API tests share."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import select
from stdnum import luhn

from domain.model import parse_ref
from service.persistence.db import create_engine
from service.persistence.tables import outbox_t
from service.secrets import PasscodeCipher
from service.settings import Settings
from service.usecases.notifications import SEALED
from tests.conftest import Api

JOBS = "/api/v1/jobs"
PROBLEM_JSON = "application/problem+json"


def imei(n: int = 1) -> str:
    body = f"35209900{n:06d}"
    return body + luhn.calc_check_digit(body)


def intake_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer": {"name": "Camille Martin", "phone": "06 12 34 56 78", "email": "camille@example.org"},
        "device": {
            "brand": "Apple",
            "model": "iPhone 13",
            "imei": imei(),
            "colour": "blue",
            "condition": "scratched frame",
            "accessories": ["case"],
        },
        "fault": {"category": "screen", "description": "cracked screen"},
        "tier": "standard",
    }
    body.update(overrides)
    return body


async def create_job(api: Api, user: str = "desk.valence", **overrides: Any) -> dict[str, Any]:
    response = await api.client.post(JOBS, json=intake_body(**overrides), headers=await api.login(user))
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def if_match(job: dict[str, Any]) -> dict[str, str]:
    return {"If-Match": f'"v{job["version"]}"'}


async def act(
    api: Api, user: str, job: dict[str, Any], method: str, path: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """Send a change to the job with its current ETag; returns (status, body)."""
    response = await send(api, user, job, method, path, body)
    return response.status_code, response.json()


async def send(
    api: Api, user: str, job: dict[str, Any], method: str, path: str, body: dict[str, Any]
) -> httpx.Response:
    """Send a change to the job with its current ETag; returns the whole response."""
    headers = {**(await api.login(user)), **if_match(job)}
    return await api.client.request(method, f"{JOBS}/{job['ref']}{path}", json=body, headers=headers)


async def move(api: Api, user: str, job: dict[str, Any], to: str, **extra: Any) -> dict[str, Any]:
    status, body = await act(api, user, job, "POST", "/transitions", {"to": to, **extra})
    assert status == 200, body
    return body


def part(price_cents: int, description: str = "screen assembly", quantity: int = 1) -> dict[str, Any]:
    return {"kind": "part", "description": description, "quantity": quantity, "unit_price_cents": price_cents}


async def estimate(api: Api, user: str, job: dict[str, Any], *prices_cents: int) -> dict[str, Any]:
    """Write an estimate with one part line per price."""
    status, body = await act(api, user, job, "PUT", "/estimate", {"lines": [part(p) for p in prices_cents]})
    assert status == 200, body
    return body


async def approve(api: Api, user: str, job: dict[str, Any], approved: bool = True) -> dict[str, Any]:
    status, body = await act(api, user, job, "POST", "/approval", {"approved": approved})
    assert status == 200, body
    return body


# The ordinary road of a repaired device, and who takes each step.
HAPPY_PATH: tuple[tuple[str, str], ...] = (
    ("diagnosing", "tech.valence"),
    ("awaiting_approval", "tech.valence"),
    ("repairing", "tech.valence"),
    ("quality_check", "tech.valence"),
    ("ready_for_pickup", "tech.valence"),
    ("collected", "desk.valence"),
)


async def advance_to(api: Api, job: dict[str, Any], stage: str) -> dict[str, Any]:
    """Walk a fresh valence job along the happy path (estimate and approval included) up to `stage`."""
    for to, user in HAPPY_PATH:
        if job["stage"] == stage:
            break
        if to == "awaiting_approval":
            job = await estimate(api, "tech.valence", job, 8900)
        if to == "repairing":
            job = await approve(api, "desk.valence", job)
        job = await collect(api, user, job) if to == "collected" else await move(api, user, job, to)
    assert job["stage"] == stage, job
    return job


async def pickup_code(api: Api, ref: str) -> str:
    """The pickup code the customer was sent, as the message says it."""
    state = api.client.app.state
    return await sealed_pickup_code(state.settings, state.cipher, ref)


async def sealed_pickup_code(settings: Settings, cipher: PasscodeCipher, ref: str) -> str:
    """The code from the job's latest ready-for-pickup outbox entry, whose sealed secrets the data keys open."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            query = select(outbox_t.c.payload).where(outbox_t.c.job_id == parse_ref(ref)).order_by(outbox_t.c.id.desc())
            payloads = [row[0] for row in await conn.execute(query)]
    finally:
        await engine.dispose()
    sealed = next(p[SEALED] for p in payloads if p.get("template") == "ready_for_pickup" and SEALED in p)
    code: str = json.loads(cipher.decrypt(sealed))["pickup_code"]
    return code


async def collect(api: Api, user: str, job: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Hand the device over at the counter with the code the customer was sent."""
    body = {"code": await pickup_code(api, job["ref"]), **extra}
    response = await api.client.post(f"{JOBS}/{job['ref']}/pickup", json=body, headers=await api.login(user))
    assert response.status_code == 200, response.text
    collected: dict[str, Any] = response.json()
    return collected


async def get_job(api: Api, user: str, ref: str) -> dict[str, Any]:
    response = await api.client.get(f"{JOBS}/{ref}", headers=await api.login(user))
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def events(api: Api, user: str, ref: str) -> list[dict[str, Any]]:
    response = await api.client.get(f"{JOBS}/{ref}/events", headers=await api.login(user))
    assert response.status_code == 200, response.text
    history: list[dict[str, Any]] = response.json()
    return history


async def list_refs(api: Api, user: str = "manager", **params: Any) -> list[str]:
    """References of one page of the job list as `user` sees it (limit 100 unless given)."""
    response = await api.client.get(JOBS, params={"limit": 100, **params}, headers=await api.login(user))
    assert response.status_code == 200, response.text
    return [job["ref"] for job in response.json()["items"]]


def assert_problem(response: httpx.Response, status: int, *fields: str) -> dict[str, Any]:
    """An RFC 9457 problem-details answer with `status`, naming each of `fields` among its errors."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    for key in ("type", "title", "detail"):
        assert isinstance(body.get(key), str) and body[key], (key, body)
    assert body["status"] == status, body
    if fields:
        named = {error["field"] for error in body.get("errors", [])}
        assert set(fields) <= named, (fields, body)
    return body
