"""Signed webhooks end to end over real HTTP: the supplier sandbox (a real process) pushes Standard
Webhooks to a real `atelier serve` process, which verifies them and applies them to an order placed
through its own API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.settings import Settings
from tests.api.helpers import intake_body
from tests.api.parts_helpers import NEW_SECRET, SANDBOX_KEY, SKU, new_tenant, pin_stock
from tests.conftest import JWT_SECRET, PASSCODE_KEY, PASSWORD
from tests.sandbox_fixture import ROOT, SandboxServer, free_port


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def atelier(settings: Settings, clean_db: None, tmp_path: Path) -> Iterator[str]:
    """`atelier serve` on the test database (staff seeded, no jobs), allowed to call the local sandbox."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_")}
    env.update(
        PYTHONPATH=str(ROOT),
        ATELIER_DATABASE_URL=settings.database_url,
        ATELIER_JWT_SECRET=JWT_SECRET,
        ATELIER_PASSCODE_KEYS=PASSCODE_KEY,
        ATELIER_ALLOW_PRIVATE_SUPPLIER_URLS="true",
        ATELIER_LOG_LEVEL="WARNING",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
            cwd=tmp_path,  # no stray .env
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve exited early:\n{log.read_text()}")
            try:
                if httpx.get(f"{base}/health/ready", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve never became ready:\n{log.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def client(atelier: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=atelier, timeout=30, trust_env=False) as http:
        yield http


async def bearer(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def created(client: httpx.AsyncClient, path: str, body: Any, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_the_sandbox_pushes_signed_webhooks_that_the_live_server_applies(
    atelier: str, client: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    manager = await bearer(client, "manager")
    desk = await bearer(client, "desk.valence")
    tech = await bearer(client, "tech.valence")
    tenant = new_tenant()
    pin_stock(sandbox, tenant, SKU, 10)
    await created(client, "/api/v1/parts", {"sku": SKU, "description": "iPhone 13 OLED display"}, manager)
    supplier = await created(
        client,
        "/api/v1/suppliers",
        {
            "name": "Sandbox supplier",
            "adapter": "rest_json",
            "base_url": sandbox.tenant_url(tenant),
            "api_key": "test-key",
            "webhook_secrets": [NEW_SECRET],
        },
        manager,
    )
    sandbox.configure_webhooks(f"{atelier}/api/v1/webhooks/suppliers/{supplier['id']}", NEW_SECRET, tenant=tenant)
    job = await created(client, "/api/v1/jobs", intake_body(), desk)
    tech_headers = tech
    view = await created(client, f"/api/v1/jobs/{job['ref']}/parts", {"sku": SKU, "quantity": 1}, tech_headers)
    line_id = view["lines"][0]["id"]
    placed = await created(
        client, f"/api/v1/jobs/{job['ref']}/parts/{line_id}/order", {"supplier_id": supplier["id"]}, tech_headers
    )
    promised = at(placed["lines"][0]["promised_at"])
    # The sandbox stamps its facts to the second; a fact stamped in the very second of the order is
    # currently dropped as "older" than the order (a bug of its own, pinned by
    # tests/api/test_webhooks.py::test_an_eta_revision_stamped_in_the_second_of_the_order_is_applied).
    # Here the transport is under test, so the supplier acts in a later second.
    await asyncio.sleep(1.05 - (time.time() % 1))

    slipped = sandbox.advance(placed["supplier_ref"], "slip", tenant=tenant, hours=48)

    assert slipped["webhook"]["status"] == 200, slipped["webhook"]
    new_eta = at(slipped["order"]["eta"])
    assert new_eta > promised
    parts = (await client.get(f"/api/v1/jobs/{job['ref']}/parts", headers=tech_headers)).json()
    line = parts["lines"][0]
    assert at(line["eta"]) == new_eta and at(line["promised_at"]) == promised
    assert line["late"] is True
    last = line["eta_history"][-1]
    assert (last["source"], at(last["old_eta"]), at(last["new_eta"])) == ("webhook", promised, new_eta)

    shipped = sandbox.advance(placed["supplier_ref"], "ship", tenant=tenant)

    assert shipped["webhook"]["status"] == 200, shipped["webhook"]
    order = (await client.get(f"/api/v1/supplier-orders/{placed['id']}", headers=tech_headers)).json()
    assert order["status"] == "shipped"
    assert order["tracking_number"] == shipped["order"]["tracking_number"]
    assert (order["lines"][0]["status"], order["lines"][0]["shipped_quantity"]) == ("shipped", 1)
    log = sandbox.webhook_log(tenant=tenant)
    assert [(entry["type"], entry["status"]) for entry in log] == [("order.eta_revised", 200), ("order.shipped", 200)]
    # The sandbox's own record agrees with what the live server learned.
    remote = sandbox.client.get(
        f"{sandbox.tenant_url(tenant)}/api/v1/orders/{placed['supplier_ref']}", headers=SANDBOX_KEY
    ).json()
    assert remote["state"] == "shipped" and remote["tracking_number"] == order["tracking_number"]


async def test_the_live_server_refuses_a_push_signed_with_another_secret(
    atelier: str, client: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    manager = await bearer(client, "manager")
    tenant = new_tenant()
    await created(client, "/api/v1/parts", {"sku": SKU, "description": "iPhone 13 OLED display"}, manager)
    supplier = await created(
        client,
        "/api/v1/suppliers",
        {
            "name": "Sandbox supplier",
            "adapter": "rest_json",
            "base_url": sandbox.tenant_url(tenant),
            "webhook_secrets": [NEW_SECRET],
        },
        manager,
    )
    wrong = "whsec_" + "QUJD" * 8  # 24 bytes, not the supplier's secret
    sandbox.configure_webhooks(f"{atelier}/api/v1/webhooks/suppliers/{supplier['id']}", wrong, tenant=tenant)

    answer = sandbox.set_stock(SKU, 3, tenant=tenant)

    assert answer["webhook"]["status"] == 401, answer["webhook"]
    skus = (await client.get(f"/api/v1/suppliers/{supplier['id']}/skus", headers=manager)).json()
    assert skus == []
    sandbox.configure_webhooks(f"{atelier}/api/v1/webhooks/suppliers/{supplier['id']}", NEW_SECRET, tenant=tenant)
    accepted = sandbox.set_stock(SKU, 4, tenant=tenant)
    assert accepted["webhook"]["status"] == 200, accepted["webhook"]
    skus = (await client.get(f"/api/v1/suppliers/{supplier['id']}/skus", headers=manager)).json()
    assert [(s["supplier_sku"], s["sku"], s["available"]) for s in skus] == [(SKU, SKU, 4)]
