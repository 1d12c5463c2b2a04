"""What the security tests share: signed-in page sessions over the API's test client, a dump of every
table, the app's route table, and a small world of one branch's jobs, part lines, orders and alerts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from litestar import Litestar
from sqlalchemy import JSON, MetaData, String, Text, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.persistence.db import create_engine
from service.settings import Settings
from tests.api.helpers import JOBS, create_job, estimate, if_match, move
from tests.api.parts_helpers import (
    MANAGER,
    SKU,
    add_lines,
    add_part,
    add_supplier,
    new_tenant,
    order,
    pin_stock,
)
from tests.conftest import PASSWORD, Api
from tests.sandbox_fixture import SandboxServer

CSRF_COOKIE = "atelier_csrf"


# --- the staff pages, signed in ---------------------------------------------------------------------


class StaffSession:
    """One member of staff signed in to the pages, as a browser would be: their own cookies (the shared
    test client's jar is emptied around each request, so several sessions can take turns on one app)."""

    def __init__(self, api: Api, username: str) -> None:
        self.api, self.username = api, username
        self.cookies: dict[str, str] = {}

    async def sign_in(self, password: str = PASSWORD, **extra: str) -> httpx.Response:
        await self.get("/app/signin")  # the CSRF cookie, as the sign-in form sets it
        answer = await self.post("/app/signin", {"username": self.username, "password": password, **extra})
        assert answer.status_code == 303, answer.text
        return answer

    @property
    def csrf(self) -> str:
        return self.cookies[CSRF_COOKIE]

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, form: Mapping[str, str] | None = None, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, form=form, **kw)

    async def request(
        self,
        method: str,
        path: str,
        *,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        client = self.api.client
        sent = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()), **(headers or {})}
        data = None
        if form is not None:
            data = {"_csrf_token": self.cookies.get(CSRF_COOKIE, ""), **form}
        client.cookies.clear()
        try:
            response = await client.request(
                method, path, data=data, content=content, params=params, headers=sent, follow_redirects=False
            )
        finally:
            client.cookies.clear()
        self.cookies.update(response.cookies.items())
        return response


def counter_form(serial_number: str, **fields: str) -> dict[str, str]:
    """The counter's intake form as the desk fills it (a standard screen job), plus `fields`."""
    return {
        "name": "Camille Martin",
        "phone": "06 12 34 56 78",
        "brand": "Apple",
        "model": "iPhone 13",
        "serial_number": serial_number,
        "category": "screen",
        "description": "cracked",
        "tier": "standard",
        **fields,
    }


async def signed_in(api: Api, username: str) -> StaffSession:
    session = StaffSession(api, username)
    await session.sign_in()
    return session


# --- the database, every table ----------------------------------------------------------------------


async def _reflect(conn: AsyncConnection) -> MetaData:
    meta = MetaData()
    await conn.run_sync(meta.reflect)
    return meta


async def dump_tables(settings: Settings) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table (reflected, so a table added later is included), as sorted text tuples."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            meta = await _reflect(conn)
            found = {}
            for name, table in meta.tables.items():
                rows = (await conn.execute(select(table))).all()
                found[name] = sorted(tuple(repr(value) for value in row) for row in rows)
    finally:
        await engine.dispose()
    return found


def changed_tables(before: Mapping[str, list[Any]], after: Mapping[str, list[Any]]) -> list[str]:
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


async def text_cells(settings: Settings) -> list[tuple[str, str, str]]:
    """(table, column, value) of every text and JSON cell of every table, JSON as its text."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            meta = await _reflect(conn)
            cells: list[tuple[str, str, str]] = []
            for name, table in meta.tables.items():
                # Text by the column's reflected type (VARCHAR, TEXT, JSON, JSONB) or by the value itself
                # (SQLite stores any value in any column): every cell that can hold text.
                columns = list(table.columns)
                for row in (await conn.execute(select(*columns))).all():
                    for column, value in zip(columns, row, strict=True):
                        if value is None:
                            continue
                        textual = isinstance(column.type, String | Text | JSON)
                        if textual or isinstance(value, str | bytes | dict | list):
                            cells.append((name, column.name, value if isinstance(value, str) else repr(value)))
    finally:
        await engine.dispose()
    return cells


# --- the app's routes -------------------------------------------------------------------------------


def route_keys(app: Litestar) -> set[str]:
    """`METHOD /path` of every route handler the app serves (Litestar's automatic OPTIONS left out)."""
    keys = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods:
                if method != "OPTIONS":
                    keys.add(f"{method} {route.path}")
    return keys


def body_route_keys(app: Litestar) -> set[str]:
    """The routes whose handler takes a parsed body (`data`)."""
    keys = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if "data" in handler.parsed_fn_signature.parameters:
                keys.update(f"{method} {route.path}" for method in handler.http_methods if method != "OPTIONS")
    return keys


def same_but_ids(text: str, real: Mapping[str, str], missing: Mapping[str, str]) -> str:
    """`text` with each real identifier (as a whole word) replaced by its missing counterpart."""
    for key, value in real.items():
        if value != missing[key]:
            text = re.sub(rf"(?<![\w-]){re.escape(value)}(?![\w-])", missing[key], text)
    return text


# --- one branch's world -----------------------------------------------------------------------------


def track_path(tracking_url: str) -> str:
    return urlsplit(tracking_url).path


async def walk(api: Api, job: dict[str, Any], stage: str, tech: str, desk: str) -> dict[str, Any]:
    """A fresh job along the happy path (estimate and approval included) up to `stage`, by `tech`/`desk`."""
    steps = ("diagnosing", "awaiting_approval", "repairing", "quality_check", "ready_for_pickup")
    for to in steps:
        if job["stage"] == stage:
            break
        if to == "awaiting_approval":
            job = await estimate(api, tech, job, 8900)
        if to == "repairing":
            response = await api.client.post(
                f"{JOBS}/{job['ref']}/approval",
                json={"approved": True},
                headers={**(await api.login(desk)), **if_match(job)},
            )
            assert response.status_code == 200, response.text
            job = response.json()
        job = await move(api, tech, job, to)
    assert job["stage"] == stage, job
    return job


async def assign(api: Api, job: dict[str, Any], technician: str, manager: str = MANAGER) -> dict[str, Any]:
    response = await api.client.post(
        f"{JOBS}/{job['ref']}/assignment",
        json={"technician": technician},
        headers={**(await api.login(manager)), **if_match(job)},
    )
    assert response.status_code == 200, response.text
    assigned: dict[str, Any] = response.json()
    return assigned


@dataclass
class Branch:
    """One branch's resources, each kind of thing a route can name."""

    code: str
    job: dict[str, Any]  # awaiting approval, with a passcode, assigned to the branch's technician
    ready: dict[str, Any]  # ready for pickup
    parts_job: dict[str, Any]  # waiting for parts, its line ordered
    line_id: int
    order: dict[str, Any]
    alert_id: int
    alert_ref: str  # the job the alert is about
    supplier: dict[str, Any]
    marker: str  # the customer's name on every job of the branch: found in a response, it leaked
    passcode: str  # `job`'s
    tech: str  # the branch's technician
    desk: str  # and its front desk

    @property
    def customer_id(self) -> int:
        customer_id: int = self.job["customer"]["id"]
        return customer_id


async def build_branch(api: Api, sandbox: SandboxServer, code: str, *, desk: str, tech: str) -> Branch:
    marker = f"Zed{code.capitalize()}Secretname"
    customer = {"name": f"{marker} Client", "phone": "06 12 34 56 78", "email": f"{code}@example.org"}

    passcode = f"Pc-{code}-246810"
    job = await create_job(api, desk, passcode=passcode, customer=customer)
    job = await walk(api, job, "awaiting_approval", tech, desk)
    job = await assign(api, job, tech)

    # The customer declines through their link: the branch's staff get an alert.
    ready = await create_job(api, desk, customer=customer)
    ready = await walk(api, ready, "ready_for_pickup", tech, desk)
    declining = await create_job(api, desk, customer=customer)
    link = track_path(declining["tracking_url"])
    declining = await walk(api, declining, "awaiting_approval", tech, desk)
    answered = await api.client.post(f"{link}/approval", json={"approved": False})
    assert answered.status_code == 200, answered.text
    alerts = await api.client.get("/api/v1/alerts", headers=await api.login(desk))
    assert alerts.status_code == 200, alerts.text
    alert_id = next(a["id"] for a in alerts.json() if a["ref"] == declining["ref"])

    existing = await api.client.get(f"/api/v1/parts/{SKU}", headers=await api.login(MANAGER))
    if existing.status_code == 404:
        await add_part(api)
    tenant = new_tenant()
    pin_stock(sandbox, tenant, SKU, 50)
    supplier = await add_supplier(api, sandbox, tenant)
    parts_job = await create_job(api, desk, customer=customer)
    added = await add_lines(api, parts_job["ref"], {"lines": [{"sku": SKU, "quantity": 1}]}, user=tech)
    assert added.status_code == 201, added.text
    line_id = added.json()["lines"][0]["id"]
    placed = await order(api, parts_job["ref"], line_id, supplier["id"], user=tech)
    assert placed.status_code == 201, placed.text
    got = await api.client.get(f"{JOBS}/{parts_job['ref']}", headers=await api.login(desk))
    return Branch(
        code=code,
        job=job,
        ready=ready,
        parts_job=got.json(),
        line_id=line_id,
        order=placed.json(),
        alert_id=alert_id,
        alert_ref=declining["ref"],
        supplier=supplier,
        marker=marker,
        passcode=passcode,
        tech=tech,
        desk=desk,
    )
