"""Shared setup of the parts, sourcing and webhook API tests: catalogue parts, suppliers on supplier
sandbox tenants (real HTTP), jobs with part lines, supplier orders, and signed webhook pushes."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from integrations.sandbox.catalogue import seeded
from integrations.webhooks import sign
from tests.api.helpers import JOBS, create_job, events
from tests.conftest import Api
from tests.sandbox_fixture import SandboxServer

PARTS = "/api/v1/parts"
SUPPLIERS = "/api/v1/suppliers"
ORDERS = "/api/v1/supplier-orders"
WEBHOOKS = "/api/v1/webhooks/suppliers"

SKU = "IPH13-SCREEN-OLED"  # in the sandbox's catalogue: every tenant carries it
SKU2 = "IPH13-BATTERY"
TECH = "tech.valence"
MANAGER = "manager"
SANDBOX_KEY = {"Authorization": "Bearer test-key"}

# The Standard Webhooks test vector's secret, and two more for rotation tests.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
NEW_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()


def new_tenant() -> str:
    """A sandbox tenant nobody else uses (its orders, stock and faults are its own)."""
    return f"t-{uuid.uuid4().hex[:16]}"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def near(a: datetime, b: datetime, seconds: float = 120) -> bool:
    return abs(a - b) <= timedelta(seconds=seconds)


# --- catalogue and suppliers ---------------------------------------------------------------------


async def add_part(api: Api, sku: str = SKU, description: str = "iPhone 13 OLED display") -> dict[str, Any]:
    body = {"sku": sku, "description": description, "models": ["iPhone 13"]}
    response = await api.client.post(PARTS, json=body, headers=await api.login(MANAGER))
    assert response.status_code == 201, response.text
    part: dict[str, Any] = response.json()
    return part


async def add_supplier(
    api: Api,
    sandbox: SandboxServer,
    tenant: str,
    *,
    name: str | None = None,
    adapter: str = "rest_json",
    secrets: Sequence[str] = (),
) -> dict[str, Any]:
    """A supplier (created by the chain-wide manager) whose base URL is a sandbox tenant."""
    body: dict[str, Any] = {
        "name": name or f"Supplier {tenant}",
        "adapter": adapter,
        "base_url": sandbox.tenant_url(tenant),
        "api_key": "test-key",
        "webhook_secrets": list(secrets),
    }
    response = await api.client.post(SUPPLIERS, json=body, headers=await api.login(MANAGER))
    assert response.status_code == 201, response.text
    supplier: dict[str, Any] = response.json()
    return supplier


# --- the sandbox's own view ------------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxOffer:
    """What a sandbox tenant quotes for a SKU, read from its stock admin route after pinning the stock."""

    tenant: str
    price_cents: int
    available: int
    eta: datetime


def pin_stock(sandbox: SandboxServer, tenant: str, sku: str, available: int) -> SandboxOffer:
    """Fix the tenant's stock of `sku` (it no longer varies per minute) and read back its quote."""
    item = sandbox.set_stock(sku, available, tenant=tenant)["item"]
    assert item["sku"] == sku and item["available"] == available, item
    return SandboxOffer(tenant, item["price_cents"], item["available"], at(item["eta"]))


def sandbox_stock(sandbox: SandboxServer, tenant: str, sku: str) -> dict[str, Any]:
    """The tenant's stock answer for one SKU, through its REST API."""
    response = sandbox.client.get(
        f"{sandbox.tenant_url(tenant)}/api/v1/stock", params={"skus": sku}, headers=SANDBOX_KEY
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()["items"]
    assert isinstance(item, dict)
    return item


def sandbox_orders(sandbox: SandboxServer, tenant: str, po: str) -> list[dict[str, Any]]:
    """The tenant's orders for our PO (the sandbox API answers 0 or 1)."""
    response = sandbox.client.get(f"{sandbox.tenant_url(tenant)}/api/v1/orders", params={"po": po}, headers=SANDBOX_KEY)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def find_offers(
    sandbox: SandboxServer,
    sku: str,
    wanted: int,
    accept: Callable[[list[SandboxOffer]], bool],
    *,
    available: int = 10,
    pool: int = 80,
) -> list[SandboxOffer]:
    """`wanted` offers from fresh tenants that together satisfy `accept` (e.g. "the cheaper one is the
    later one"): tenants quote seeded prices and lead times, so some combination of a pool fits."""
    seen: list[SandboxOffer] = []
    for _ in range(pool):
        seen.append(pin_stock(sandbox, new_tenant(), sku, available))
        found = _combination(seen, wanted, accept)
        if found is not None:
            return found
    raise AssertionError(f"no {wanted} sandbox tenants out of {pool} fit the scenario")


def _combination(
    offers: list[SandboxOffer], wanted: int, accept: Callable[[list[SandboxOffer]], bool]
) -> list[SandboxOffer] | None:
    newest = offers[-1]
    if wanted == 1:
        return [newest] if accept([newest]) else None
    from itertools import permutations

    for rest in permutations(offers[:-1], wanted - 1):
        for position in range(wanted):
            candidate = [*rest[:position], newest, *rest[position:]]
            if accept(candidate):
                return candidate
    return None


def dice_tenant(sandbox: SandboxServer, rate: float, broken: Sequence[bool]) -> str:
    """A fresh tenant whose seeded fault dice, with `malformed_rate=rate`, break the body of exactly the
    API answers marked True, in order (the dice draw once per answer, twice when they break one)."""
    for _ in range(5000):
        tenant = new_tenant()
        rng = seeded(sandbox.seed, tenant, "faults")
        for breaks in broken:
            hit = rng.random() < rate
            if hit is not breaks:
                break
            if hit:
                rng.random()
        else:
            return tenant
    raise AssertionError("no tenant with the wanted dice")


def good_then_broken(sandbox: SandboxServer, rate: float) -> str:
    """A fresh tenant answering its first API request well and breaking the body of its second."""
    return dice_tenant(sandbox, rate, (False, True))


# --- jobs and their parts --------------------------------------------------------------------------


async def new_job(api: Api, *, tier: str = "standard", budget: int | None = None) -> dict[str, Any]:
    overrides: dict[str, Any] = {"tier": tier}
    if budget is not None:
        overrides["preapproved_budget_cents"] = budget
    return await create_job(api, "desk.valence", **overrides)


async def add_lines(
    api: Api, ref: str, body: dict[str, Any], user: str = TECH, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await api.client.post(
        f"{JOBS}/{ref}/parts", json=body, headers={**(await api.login(user)), **(headers or {})}
    )


async def job_with_lines(
    api: Api, lines: Sequence[tuple[str, int]], *, tier: str = "standard", budget: int | None = None
) -> dict[str, Any]:
    """A fresh valence job with these (sku, quantity) part lines; returns the job's parts view."""
    job = await new_job(api, tier=tier, budget=budget)
    response = await add_lines(api, job["ref"], {"lines": [{"sku": s, "quantity": q} for s, q in lines]})
    assert response.status_code == 201, response.text
    view: dict[str, Any] = response.json()
    return view


async def job_parts(api: Api, ref: str, user: str = TECH) -> dict[str, Any]:
    response = await api.client.get(f"{JOBS}/{ref}/parts", headers=await api.login(user))
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def quotes(api: Api, ref: str, line_id: int, user: str = TECH) -> httpx.Response:
    return await api.client.post(f"{JOBS}/{ref}/parts/{line_id}/quotes", headers=await api.login(user))


async def order(api: Api, ref: str, line_id: int, supplier_id: int | None = None, user: str = TECH) -> httpx.Response:
    body = {"supplier_id": supplier_id} if supplier_id is not None else {}
    return await api.client.post(f"{JOBS}/{ref}/parts/{line_id}/order", json=body, headers=await api.login(user))


async def ordered(api: Api, ref: str, line_id: int, supplier_id: int | None = None) -> dict[str, Any]:
    response = await order(api, ref, line_id, supplier_id)
    assert response.status_code == 201, response.text
    placed: dict[str, Any] = response.json()
    return placed


async def get_order(api: Api, order_id: int, user: str = TECH) -> dict[str, Any]:
    response = await api.client.get(f"{ORDERS}/{order_id}", headers=await api.login(user))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def change_line(api: Api, ref: str, line_id: int, body: dict[str, Any], user: str = TECH) -> httpx.Response:
    return await api.client.patch(f"{JOBS}/{ref}/parts/{line_id}", json=body, headers=await api.login(user))


async def kinds(api: Api, ref: str) -> list[str]:
    return [event["kind"] for event in await events(api, TECH, ref)]


async def events_of(api: Api, ref: str, kind: str) -> list[dict[str, Any]]:
    return [event for event in await events(api, TECH, ref) if event["kind"] == kind]


@dataclass
class PlacedOrder:
    """A supplier on a sandbox tenant, a job with one line, and that line ordered through the API."""

    tenant: str
    supplier: dict[str, Any]
    job: dict[str, Any]
    line_id: int
    order: dict[str, Any]

    @property
    def supplier_ref(self) -> str:
        ref: str = self.order["supplier_ref"]
        return ref


async def place_order(
    api: Api,
    sandbox: SandboxServer,
    *,
    quantity: int = 1,
    secrets: Sequence[str] = (),
    sku: str = SKU,
    tenant: str | None = None,
) -> PlacedOrder:
    """Catalogue part (if missing), a supplier on a fresh tenant with stock, a job, its line ordered."""
    existing = await api.client.get(f"{PARTS}/{sku}", headers=await api.login(MANAGER))
    if existing.status_code == 404:
        await add_part(api, sku)
    tenant = tenant or new_tenant()
    pin_stock(sandbox, tenant, sku, 50)
    supplier = await add_supplier(api, sandbox, tenant, secrets=secrets)
    view = await job_with_lines(api, [(sku, quantity)])
    line_id = view["lines"][0]["id"]
    placed = await ordered(api, view["ref"], line_id, supplier["id"])
    return PlacedOrder(tenant, supplier, view, line_id, placed)


def line_of(view: dict[str, Any], line_id: int) -> dict[str, Any]:
    found: dict[str, Any] = next(line for line in view["lines"] if line["id"] == line_id)
    return found


# --- webhooks ------------------------------------------------------------------------------------------


def event_body(kind: str, when: datetime, **data: Any) -> bytes:
    """A supplier event as the wire spec has it (the fact's time is `when`)."""
    return json.dumps({"type": kind, "timestamp": iso(when), "data": data}).encode()


def signed_headers(secret: str | Sequence[str], msg_id: str, timestamp: int | datetime, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers, signed with one secret or several (several signatures in the header)."""
    secrets = [secret] if isinstance(secret, str) else list(secret)
    seconds = int(timestamp.timestamp()) if isinstance(timestamp, datetime) else int(timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": " ".join(sign(s, msg_id, seconds, body) for s in secrets),
        "content-type": "application/json",
    }


async def push(api: Api, supplier_id: int | str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """POST a webhook as a supplier would: no staff token."""
    return await api.client.post(f"{WEBHOOKS}/{supplier_id}", content=body, headers=headers)


async def supplier_skus(api: Api, supplier_id: int) -> dict[str, dict[str, Any]]:
    response = await api.client.get(f"{SUPPLIERS}/{supplier_id}/skus", headers=await api.login(MANAGER))
    assert response.status_code == 200, response.text
    return {item["supplier_sku"]: item for item in response.json()}


def msg_id() -> str:
    return f"msg_{uuid.uuid4().hex}"
