"""Signing in, and which endpoints need a bearer token (every /api/v1 one but the token endpoint)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from litestar import Litestar

from integrations.webhooks import sign
from tests.api.helpers import JOBS, assert_problem, create_job, intake_body
from tests.conftest import JWT_SECRET, PASSWORD, Api, FakeClock

TOKEN = "/api/v1/auth/token"
# Supplier webhooks authenticate by their signature (Standard Webhooks), not by a staff token.
WEBHOOK = "/api/v1/webhooks/suppliers/{supplier_id:str}"
PUBLIC_ROUTES = (TOKEN, WEBHOOK)
REF = "AT-000001"
PARTS = "/api/v1/parts"
SUPPLIERS = "/api/v1/suppliers"
ORDERS = "/api/v1/supplier-orders"
SKU = "IPH13-BATTERY"

# Concrete values for the path parameters of the routes (REF is swapped for a real job's reference).
PATH_VALUES = {
    "{ref:str}": REF,
    "{line_id:int}": "1",
    "{sku:str}": SKU,
    "{supplier_id:int}": "1",
    "{supplier_sku:str}": "ACME-1",
    "{order_id:int}": "1",
    "{alert_id:int}": "1",
    "{code:str}": "valence",
    "{customer_id:int}": "1",
}
SUPPLIER = {"name": "Acme", "adapter": "rest_json", "base_url": "https://93.184.215.14/", "api_key": "k-123"}

# Every endpoint under /api/v1 that needs a token, with a body that would otherwise be acceptable.
PROTECTED: list[tuple[str, str, dict[str, object] | None]] = [
    ("GET", JOBS, None),
    ("POST", JOBS, intake_body()),
    ("GET", f"{JOBS}/{REF}", None),
    ("GET", f"{JOBS}/{REF}/events", None),
    ("GET", f"{JOBS}/{REF}/passcode", None),
    ("POST", f"{JOBS}/{REF}/transitions", {"to": "diagnosing"}),
    ("PUT", f"{JOBS}/{REF}/estimate", {"lines": [{"kind": "labour", "description": "x", "unit_price_cents": 1}]}),
    ("POST", f"{JOBS}/{REF}/approval", {"approved": True}),
    ("POST", f"{JOBS}/{REF}/assignment", {"technician": "tech.valence"}),
    ("POST", f"{JOBS}/{REF}/notes", {"note": "hello"}),
    # The customer's own routes (/track/{token}) are outside /api/v1: the token in the path is the credential.
    ("GET", f"{JOBS}/{REF}/tracking", None),
    ("POST", f"{JOBS}/{REF}/tracking", None),
    ("DELETE", f"{JOBS}/{REF}/tracking", None),
    ("GET", f"{JOBS}/{REF}/parts", None),
    ("POST", f"{JOBS}/{REF}/parts", {"sku": SKU, "quantity": 1}),
    ("PATCH", f"{JOBS}/{REF}/parts/1", {"status": "cancelled"}),
    ("POST", f"{JOBS}/{REF}/parts/1/quotes", None),
    ("POST", f"{JOBS}/{REF}/parts/1/order", {"supplier_id": 1}),
    ("GET", PARTS, None),
    ("POST", PARTS, {"sku": SKU, "description": "iPhone 13 battery", "models": ["iPhone 13"]}),
    ("GET", f"{PARTS}/late", None),
    ("GET", f"{PARTS}/{SKU}", None),
    ("PUT", f"{PARTS}/{SKU}", {"description": "iPhone 13 battery", "models": []}),
    ("GET", SUPPLIERS, None),
    ("POST", SUPPLIERS, SUPPLIER),
    ("GET", f"{SUPPLIERS}/1", None),
    ("PATCH", f"{SUPPLIERS}/1", {"clear_api_key": True}),
    ("GET", f"{SUPPLIERS}/1/scorecard", None),
    ("GET", f"{SUPPLIERS}/1/skus", None),
    ("PUT", f"{SUPPLIERS}/1/skus/ACME-1", {"sku": SKU}),
    ("GET", ORDERS, None),
    ("GET", f"{ORDERS}/1", None),
    ("POST", f"{ORDERS}/1/receipts", {"lines": []}),
    ("POST", f"{ORDERS}/1/cancel", {"reason": "no longer needed"}),
    ("GET", "/api/v1/alerts", None),
    ("POST", "/api/v1/alerts/1/acknowledge", None),
    ("GET", "/api/v1/branches/valence", None),
    ("PATCH", "/api/v1/branches/valence", {"express_capacity": 1}),
    ("GET", "/api/v1/express/capacity", None),
    ("GET", "/api/v1/queue", None),
    ("POST", "/api/v1/customers/1/erasure", None),
    ("POST", f"{JOBS}/{REF}/pickup", {"code": "ABCD-EFGH"}),
    ("GET", "/api/v1/pickup/lookup", None),
]


def _concrete(path: str) -> str:
    for placeholder, value in PATH_VALUES.items():
        path = path.replace(placeholder, value)
    return path.rstrip("/") or "/"


def _token(key: str = JWT_SECRET, **claims: object) -> str:
    """A token as the API would sign it (for desk.valence), with `claims` overridden."""
    now = datetime.now(UTC)
    payload: dict[str, object] = {
        "sub": "1",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
        "extras": {"usr": "desk.valence", "role": "front_desk", "br": 1},
        **claims,
    }
    return jwt.encode(payload, key, algorithm="HS256")


async def test_token_endpoint_returns_a_bearer_token(api: Api) -> None:
    response = await api.client.post(TOKEN, json={"username": "desk.valence", "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    assert isinstance(body["access_token"], str) and body["access_token"]
    # The token opens the API.
    listed = await api.client.get(JOBS, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert listed.status_code == 200, listed.text


@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "desk.valence", "password": "wrong-password"},
        {"username": "nobody.here", "password": PASSWORD},
    ],
    ids=["wrong-password", "unknown-user"],
)
async def test_bad_credentials_are_401_problem(api: Api, credentials: dict[str, str]) -> None:
    response = await api.client.post(TOKEN, json=credentials)
    body = assert_problem(response, 401)
    assert "access_token" not in body


async def test_malformed_token_request_is_a_4xx_problem(api: Api) -> None:
    missing = await api.client.post(TOKEN, json={"username": "desk.valence"})
    assert_problem(missing, 422, "password")
    extra = await api.client.post(TOKEN, json={"username": "desk.valence", "password": PASSWORD, "role": "manager"})
    assert_problem(extra, 422, "role")
    nul = await api.client.post(TOKEN, json={"username": "desk\x00valence", "password": PASSWORD})
    assert_problem(nul, 422, "username")


def test_every_api_endpoint_is_in_the_protected_list(api: Api) -> None:
    """Guards the test below: a new /api/v1 endpoint must be added to PROTECTED."""
    app = api.client.app
    assert isinstance(app, Litestar)
    routes = {
        (method, _concrete(route.path))
        for route in app.routes
        if route.path.startswith("/api/v1") and route.path not in PUBLIC_ROUTES
        for method in route.methods
        if method not in ("HEAD", "OPTIONS")
    }
    assert not any("{" in path for _, path in routes), routes  # a path parameter PATH_VALUES does not know
    assert routes == {(method, path) for method, path, _ in PROTECTED}
    # The public routes are still there (and so must be tested elsewhere for their own authentication).
    assert set(PUBLIC_ROUTES) <= {route.path for route in app.routes}


async def test_api_endpoints_need_a_token(api: Api) -> None:
    job = await create_job(api, passcode="zq-passcode-8317")  # nothing a random id could contain
    for method, template, body in PROTECTED:
        path = template.replace(REF, job["ref"])
        headers = {"If-Match": '"v1"'}
        missing = await api.client.request(method, path, json=body, headers=headers)
        assert_problem(missing, 401)
        garbage = await api.client.request(method, path, json=body, headers={**headers, "Authorization": "Bearer x"})
        assert_problem(garbage, 401)
        assert missing.headers["www-authenticate"] == garbage.headers["www-authenticate"] == "Bearer"
        assert "zq-passcode-8317" not in missing.text + garbage.text
    # Nothing was created or changed by any attempt.
    manager = await api.login("manager.valence")
    listed = await api.client.get(JOBS, headers=manager)
    assert [(j["ref"], j["version"]) for j in listed.json()["items"]] == [(job["ref"], 1)]
    assert (await api.client.get(f"{JOBS}/{job['ref']}/parts", headers=manager)).json()["lines"] == []
    assert (await api.client.get(PARTS, headers=manager)).json() == []
    assert (await api.client.get(SUPPLIERS, headers=manager)).json() == []
    assert (await api.client.get(ORDERS, headers=manager)).json()["items"] == []


def _stock_event(clock: FakeClock) -> bytes:
    return json.dumps(
        {"type": "stock.changed", "timestamp": clock.now.isoformat(), "data": {"sku": "ACME-1", "available": 5}}
    ).encode()


async def test_supplier_webhook_needs_a_signature_not_a_token(api: Api, clock: FakeClock) -> None:
    """The webhook route is public for tokens, but a push without a valid signature is refused and
    writes nothing; a staff token does not stand in for the signature."""
    secret = "whsec_" + base64.b64encode(b"s" * 32).decode()
    created = await api.client.post(
        SUPPLIERS, json={**SUPPLIER, "webhook_secrets": [secret]}, headers=await api.login("manager")
    )
    assert created.status_code == 201, created.text
    supplier_id = created.json()["id"]
    url = f"/api/v1/webhooks/suppliers/{supplier_id}"
    body = _stock_event(clock)
    seconds = str(int(clock.now.timestamp()))
    staff = await api.login("manager")

    # No signature header at all, with or without a staff token: a malformed push, 400.
    unsigned = {"content-type": "application/json", "webhook-id": "msg_1", "webhook-timestamp": seconds}
    assert_problem(await api.client.post(url, content=body, headers=unsigned), 400)
    assert_problem(await api.client.post(url, content=body, headers={**unsigned, **staff}), 400)
    assert_problem(await api.client.post(url, content=body, headers=staff), 400)

    # A signature that is not the supplier's: 401, token or not.
    forged = {**unsigned, "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}
    assert_problem(await api.client.post(url, content=body, headers=forged), 401)
    assert_problem(await api.client.post(url, content=body, headers={**forged, **staff}), 401)
    wrong_key = "whsec_" + base64.b64encode(b"w" * 32).decode()
    other = {**unsigned, "webhook-signature": sign(wrong_key, "msg_1", int(seconds), body)}
    assert_problem(await api.client.post(url, content=body, headers=other), 401)
    # Nothing at all, to a supplier that does not exist: 401.
    assert_problem(await api.client.post("/api/v1/webhooks/suppliers/999999", content=body), 401)

    skus = await api.client.get(f"{SUPPLIERS}/{supplier_id}/skus", headers=staff)
    assert skus.json() == []

    # The same push, signed: accepted (so the refusals above were about the signature).
    signed = {**unsigned, "webhook-signature": sign(secret, "msg_1", int(seconds), body)}
    accepted = await api.client.post(url, content=body, headers=signed)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"id": "msg_1", "type": "stock.changed", "outcome": "applied"}
    skus = await api.client.get(f"{SUPPLIERS}/{supplier_id}/skus", headers=staff)
    assert [(m["supplier_sku"], m["available"]) for m in skus.json()] == [("ACME-1", 5)]


async def test_invalid_tokens_are_401(api: Api) -> None:
    assert (await api.client.get(JOBS, headers={"Authorization": f"Bearer {_token()}"})).status_code == 200
    invalid = {
        "expired": _token(exp=int((datetime.now(UTC) - timedelta(minutes=5)).timestamp())),
        "another-secret": _token(extras={"usr": "manager", "role": "manager", "br": None}, key="another-" * 8),
        "unsigned": jwt.encode({"sub": "1", "exp": 4102444800}, None, algorithm="none"),
        "not-a-jwt": "not.a.jwt",
    }
    for case, token in invalid.items():
        response = await api.client.get(JOBS, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, case
        assert_problem(response, 401)


@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
async def test_health_needs_no_token(api: Api, path: str) -> None:
    response = await api.client.get(path)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"


async def test_ready_checks_the_database(api: Api) -> None:
    response = await api.client.get("/health/ready")
    assert response.json()["checks"]["database"] == "ok"


async def test_openapi_schema_needs_no_token(api: Api) -> None:
    page = await api.client.get("/schema")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    response = await api.client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert f"{JOBS}/{{ref}}/transitions" in schema["paths"]
    assert "/api/v1/auth/token" in schema["paths"]
