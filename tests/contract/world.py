"""The data the contract run fuzzes against: jobs in several stages, a part line ordered from a supplier on the
sandbox, a job waiting for pickup, another branch's job. Built once through the API itself, so the fuzzer's
path parameters can name things that exist (a made-up reference only ever reaches the 404 branch)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from stdnum import luhn

from service.secrets import PasscodeCipher
from service.settings import Settings
from tests.api.helpers import sealed_pickup_code
from tests.conftest import PASSWORD

JOBS = "/api/v1/jobs"
USERS = ("manager", "manager.valence", "desk.valence", "tech.valence")
SKU = "IPH13-SCREEN-OLED"  # in the sandbox's catalogue
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class World:
    tokens: dict[str, str]
    refs: list[str] = field(default_factory=list)
    line_ids: list[int] = field(default_factory=list)
    order_ids: list[int] = field(default_factory=list)
    supplier_ids: list[int] = field(default_factory=list)
    customer_ids: list[int] = field(default_factory=list)
    skus: list[str] = field(default_factory=list)
    tracking_tokens: list[str] = field(default_factory=list)
    pickup_codes: list[str] = field(default_factory=list)
    line_job: int = 0  # the index in `refs` of the job whose part lines are `line_ids`
    ready_ref: str = ""  # the job waiting for pickup (its code is `pickup_codes[0]`)
    branches: list[str] = field(default_factory=lambda: ["valence", "guilherand"])

    client: requests.Session | None = None

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def etag(self, ref: str) -> str:
        """The job's current ETag, as a chain-wide manager reads it."""
        assert self.client is not None
        response = self.client.get(f"{JOBS}/{ref}", headers=self.headers("manager"))
        assert response.status_code == 200, response.text
        return response.headers["ETag"]


class Seeder:
    """Sends the seeding requests as the named users and insists on success: a broken seed is a broken test."""

    def __init__(self, client: requests.Session, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens

    def call(self, user: str, method: str, path: str, body: Any = None, **headers: str) -> dict[str, Any]:
        auth = {"Authorization": f"Bearer {self.tokens[user]}"}
        response = self.client.request(method, path, json=body, headers={**auth, **headers})
        assert response.status_code in (200, 201), f"{method} {path}: {response.status_code} {response.text}"
        answer: dict[str, Any] = response.json()
        return answer

    def change(self, user: str, job: dict[str, Any], method: str, path: str, body: Any) -> dict[str, Any]:
        return self.call(user, method, f"{JOBS}/{job['ref']}{path}", body, **{"If-Match": f'"v{job["version"]}"'})

    def move(self, user: str, job: dict[str, Any], to: str) -> dict[str, Any]:
        return self.change(user, job, "POST", "/transitions", {"to": to})


def sign_in(client: requests.Session, users: tuple[str, ...]) -> dict[str, str]:
    tokens: dict[str, str] = {}
    for user in users:
        response = client.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
        assert response.status_code == 200, response.text
        tokens[user] = response.json()["access_token"]
    return tokens


def imei(n: int) -> str:
    body = f"35209900{n:06d}"
    return body + luhn.calc_check_digit(body)


def _intake(n: int, tier: str = "standard") -> dict[str, Any]:
    return {
        "customer": {"name": f"Client {n}", "phone": f"06 12 34 56 {n:02d}", "email": f"client{n}@example.org"},
        "device": {"brand": "Apple", "model": "iPhone 13", "imei": imei(n), "condition": "scratched"},
        "fault": {"category": "screen", "description": "cracked screen"},
        "tier": tier,
        "passcode": "1234",
    }


def build_world(client: requests.Session, sandbox_url: str, settings: Settings, cipher: PasscodeCipher) -> World:
    tokens = sign_in(client, (*USERS, "desk.guilherand"))
    world = World(tokens, client=client)
    seed = Seeder(client, tokens)

    seed.call(
        "manager", "POST", "/api/v1/parts", {"sku": SKU, "description": "iPhone 13 OLED", "models": ["iPhone 13"]}
    )
    supplier = seed.call(
        "manager",
        "POST",
        "/api/v1/suppliers",
        {
            "name": "Contract parts",
            "adapter": "rest_json",
            "base_url": f"{sandbox_url}/t/contract",
            "api_key": "test-key",
            "webhook_secrets": [WEBHOOK_SECRET],
            "rate_limit_per_minute": 6000,  # quotes are asked for hundreds of times a minute here
        },
    )
    world.skus.append(SKU)
    world.supplier_ids.append(supplier["id"])

    def intake(user: str, n: int, tier: str = "standard") -> dict[str, Any]:
        job = seed.call(user, "POST", JOBS, _intake(n, tier))
        world.refs.append(job["ref"])
        world.customer_ids.append(job["customer"]["id"])
        world.tracking_tokens.append(urlsplit(job["tracking_url"]).path.rsplit("/", 1)[-1])
        return job

    intake("desk.valence", 1)
    intake("desk.guilherand", 5)  # another branch's: 404 for valence staff

    quoted = intake("desk.valence", 2, "express")
    quoted = seed.move("tech.valence", quoted, "diagnosing")
    line = {"kind": "part", "description": "screen", "quantity": 1, "unit_price_cents": 8900, "sku": SKU}
    quoted = seed.change("tech.valence", quoted, "PUT", "/estimate", {"lines": [line]})
    quoted = seed.move("tech.valence", quoted, "awaiting_approval")

    parts = intake("desk.valence", 3)
    parts = seed.move("tech.valence", parts, "diagnosing")
    view = seed.change("tech.valence", parts, "POST", "/parts", {"lines": [{"sku": SKU, "quantity": 1}]})
    line_id = view["lines"][0]["id"]
    order = seed.call("tech.valence", "POST", f"{JOBS}/{parts['ref']}/parts/{line_id}/order", {})
    world.line_ids.append(line_id)
    world.line_job = world.refs.index(parts["ref"])
    world.order_ids.append(order["id"])

    ready = intake("desk.valence", 4)
    ready = seed.move("tech.valence", ready, "diagnosing")
    ready = seed.change("tech.valence", ready, "PUT", "/estimate", {"lines": [line]})
    ready = seed.move("tech.valence", ready, "awaiting_approval")
    ready = seed.change("desk.valence", ready, "POST", "/approval", {"approved": True})
    for stage in ("repairing", "quality_check", "ready_for_pickup"):
        ready = seed.move("tech.valence", ready, stage)
    world.ready_ref = ready["ref"]
    world.pickup_codes.append(asyncio.run(sealed_pickup_code(settings, cipher, ready["ref"])))
    return world
