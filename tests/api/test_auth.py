"""Signing in, and which endpoints need a bearer token (every /api/v1 one but the token endpoint)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from litestar import Litestar

from tests.api.helpers import JOBS, assert_problem, create_job, intake_body
from tests.conftest import JWT_SECRET, PASSWORD, Api

TOKEN = "/api/v1/auth/token"
REF = "AT-000001"

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
]


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
        (method, route.path.replace("{ref:str}", REF).rstrip("/") or "/")
        for route in app.routes
        if route.path.startswith("/api/v1") and route.path != TOKEN
        for method in route.methods
        if method not in ("HEAD", "OPTIONS")
    }
    assert routes == {(method, path) for method, path, _ in PROTECTED}


async def test_api_endpoints_need_a_token(api: Api) -> None:
    job = await create_job(api, passcode="1234")
    for method, template, body in PROTECTED:
        path = template.replace(REF, job["ref"])
        headers = {"If-Match": '"v1"'}
        missing = await api.client.request(method, path, json=body, headers=headers)
        assert_problem(missing, 401)
        garbage = await api.client.request(method, path, json=body, headers={**headers, "Authorization": "Bearer x"})
        assert_problem(garbage, 401)
        assert missing.headers["www-authenticate"] == garbage.headers["www-authenticate"] == "Bearer"
        assert "1234" not in missing.text + garbage.text
    # Nothing was created or changed by any attempt.
    listed = await api.client.get(JOBS, headers=await api.login("manager.valence"))
    assert [(j["ref"], j["version"]) for j in listed.json()["items"]] == [(job["ref"], 1)]


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
