"""Suppliers over HTTP: managing them (managers only, secrets write-only, no SSRF), their SKU map and
scorecard, and branch scoping of what they deliver (supplier orders and a job's part lines)."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from integrations.webhooks import sign
from service.app import create_app
from service.settings import Settings
from tests.api.helpers import JOBS, assert_problem, create_job
from tests.conftest import Api, FakeClock
from tests.sandbox_fixture import SandboxServer

SUPPLIERS = "/api/v1/suppliers"
WEBHOOKS = "/api/v1/webhooks/suppliers"
PARTS = "/api/v1/parts"
ORDERS = "/api/v1/supplier-orders"

PUBLIC_URL = "https://93.184.215.14/api"  # a public address literal: no DNS needed
API_KEY = "sk-live-7Qe1VtZr0pX9mW3aLk5N"
NEW_API_KEY = "sk-live-rotated-4Hc8JdY2uT6bFq1S"


def _secret(fill: bytes, size: int = 32) -> str:
    return "whsec_" + base64.b64encode((fill * size)[:size]).decode()


OLD_SECRET = _secret(b"old-key-")
NEW_SECRET = _secret(b"new-key-")
OTHER_SECRET = _secret(b"other-")
ALL_SECRETS = (API_KEY, NEW_API_KEY, OLD_SECRET, NEW_SECRET, OTHER_SECRET)

SUPPLIER_KEYS = {
    "id",
    "name",
    "adapter",
    "base_url",
    "poll_interval_seconds",
    "rate_limit_per_minute",
    "active",
    "has_api_key",
    "webhook_secret_count",
    "last_ok_at",
    "stale_since",
}


def supplier_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Pièces Express",
        "adapter": "rest_json",
        "base_url": PUBLIC_URL,
        "api_key": API_KEY,
        "webhook_secrets": [OLD_SECRET],
    }
    body.update(overrides)
    return body


async def create_supplier(api: Api, user: str = "manager", **overrides: Any) -> dict[str, Any]:
    response = await api.client.post(SUPPLIERS, json=supplier_body(**overrides), headers=await api.login(user))
    assert response.status_code == 201, response.text
    supplier: dict[str, Any] = response.json()
    return supplier


async def patch(api: Api, supplier_id: int, body: dict[str, Any], user: str = "manager") -> httpx.Response:
    return await api.client.patch(f"{SUPPLIERS}/{supplier_id}", json=body, headers=await api.login(user))


async def get_supplier(api: Api, supplier_id: int, user: str = "desk.valence") -> dict[str, Any]:
    response = await api.client.get(f"{SUPPLIERS}/{supplier_id}", headers=await api.login(user))
    assert response.status_code == 200, response.text
    supplier: dict[str, Any] = response.json()
    return supplier


async def list_suppliers(api: Api, user: str = "manager") -> list[dict[str, Any]]:
    response = await api.client.get(SUPPLIERS, headers=await api.login(user))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def add_part(api: Api, sku: str, description: str = "a part", models: tuple[str, ...] = ()) -> None:
    body = {"sku": sku, "description": description, "models": list(models)}
    response = await api.client.post(PARTS, json=body, headers=await api.login("manager"))
    assert response.status_code == 201, response.text


def stock_event(clock: FakeClock, sku: str, available: int) -> bytes:
    event = {
        "type": "stock.changed",
        "timestamp": clock.now.isoformat(),
        "data": {"sku": sku, "available": available, "price_cents": 1250, "currency": "EUR"},
    }
    return json.dumps(event).encode()


async def push(
    api: Api, supplier_id: int, body: bytes, secret: str, clock: FakeClock, msg_id: str = "msg_1"
) -> httpx.Response:
    """A Standard Webhooks push, signed with `secret` at the test clock's time."""
    seconds = int(clock.now.timestamp())
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": sign(secret, msg_id, seconds, body),
    }
    return await api.client.post(f"{WEBHOOKS}/{supplier_id}", content=body, headers=headers)


async def skus(api: Api, supplier_id: int, user: str = "manager", **params: Any) -> list[dict[str, Any]]:
    response = await api.client.get(f"{SUPPLIERS}/{supplier_id}/skus", params=params, headers=await api.login(user))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def map_sku(
    api: Api, supplier_id: int, supplier_sku: str, sku: str | None, user: str = "manager"
) -> httpx.Response:
    return await api.client.put(
        f"{SUPPLIERS}/{supplier_id}/skus/{supplier_sku}", json={"sku": sku}, headers=await api.login(user)
    )


# --- creating and reading ----------------------------------------------------------------------


@pytest.mark.parametrize("user", ["manager", "manager.valence"])
async def test_manager_creates_a_supplier_201_with_location(api: Api, user: str) -> None:
    response = await api.client.post(
        SUPPLIERS,
        json=supplier_body(webhook_secrets=[NEW_SECRET, OLD_SECRET], poll_interval_seconds=300),
        headers=await api.login(user),
    )
    assert response.status_code == 201, response.text
    supplier = response.json()
    assert set(supplier) == SUPPLIER_KEYS
    assert isinstance(supplier["id"], int)
    assert supplier == {
        "id": supplier["id"],
        "name": "Pièces Express",
        "adapter": "rest_json",
        "base_url": PUBLIC_URL,
        "poll_interval_seconds": 300,
        "rate_limit_per_minute": 60,
        "active": True,
        "has_api_key": True,
        "webhook_secret_count": 2,
        "last_ok_at": None,
        "stale_since": None,
    }
    assert response.headers["location"] == f"{SUPPLIERS}/{supplier['id']}"
    fetched = await api.client.get(response.headers["location"], headers=await api.login("desk.valence"))
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == supplier


async def test_supplier_without_secrets_says_so(api: Api) -> None:
    supplier = await create_supplier(api, api_key=None, webhook_secrets=[], adapter="csv_feed")
    assert (supplier["adapter"], supplier["has_api_key"], supplier["webhook_secret_count"]) == ("csv_feed", False, 0)


@pytest.mark.parametrize("user", ["desk.valence", "tech.valence", "desk.guilherand", "tech.guilherand"])
async def test_only_a_manager_creates_suppliers_others_get_403(api: Api, user: str) -> None:
    response = await api.client.post(SUPPLIERS, json=supplier_body(), headers=await api.login(user))
    problem = assert_problem(response, 403)
    assert "manager" in problem["detail"]
    assert API_KEY not in response.text and OLD_SECRET not in response.text
    assert await list_suppliers(api) == []


async def test_suppliers_are_chain_wide_readable_by_all_staff(api: Api) -> None:
    second = await create_supplier(api, name="Zeta Parts")
    first = await create_supplier(api, name="Alpha Pièces")
    for user in ("desk.valence", "tech.valence", "desk.guilherand", "tech.guilherand", "manager.valence"):
        assert await list_suppliers(api, user) == [first, second]  # by name
        assert await get_supplier(api, second["id"], user) == second


async def test_duplicate_name_is_409_problem(api: Api) -> None:
    first = await create_supplier(api)
    again = await api.client.post(SUPPLIERS, json=supplier_body(), headers=await api.login("manager"))
    problem = assert_problem(again, 409)
    assert "Pièces Express" in problem["detail"]
    assert await list_suppliers(api) == [first]

    other = await create_supplier(api, name="Other Parts")
    renamed = await patch(api, other["id"], {"name": "Pièces Express"})
    assert_problem(renamed, 409)
    assert [s["name"] for s in await list_suppliers(api)] == ["Other Parts", "Pièces Express"]


@pytest.mark.parametrize("adapter", ["soap", "REST_JSON", "", "email"])
async def test_adapter_must_be_rest_json_or_csv_feed(api: Api, adapter: str) -> None:
    response = await api.client.post(SUPPLIERS, json=supplier_body(adapter=adapter), headers=await api.login("manager"))
    assert_problem(response, 422, "adapter")
    assert await list_suppliers(api) == []

    supplier = await create_supplier(api)
    changed = await patch(api, supplier["id"], {"adapter": adapter})
    assert_problem(changed, 422, "adapter")
    assert (await get_supplier(api, supplier["id"]))["adapter"] == "rest_json"
    switched = await patch(api, supplier["id"], {"adapter": "csv_feed"})
    assert switched.status_code == 200, switched.text
    assert switched.json()["adapter"] == "csv_feed"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": None}, "name"),
        ({"name": "  "}, "name"),
        ({"base_url": None}, "base_url"),
        ({"poll_interval_seconds": 59}, "poll_interval_seconds"),
        ({"rate_limit_per_minute": 0}, "rate_limit_per_minute"),
        ({"active": "yes"}, "active"),
        ({"id": 7}, "id"),
        ({"credentials_ciphertext": "x"}, "credentials_ciphertext"),
        ({"webhook_secrets": [OLD_SECRET] * 6}, "webhook_secrets"),
    ],
    ids=[
        "missing-name",
        "blank-name",
        "missing-base_url",
        "poll-too-often",
        "rate-limit-0",
        "active-not-bool",
        "unknown-field-id",
        "unknown-field-ciphertext",
        "too-many-secrets",
    ],
)
async def test_invalid_supplier_is_422_naming_the_field(api: Api, overrides: dict[str, Any], field: str) -> None:
    body = {k: v for k, v in supplier_body(**overrides).items() if v is not None}
    response = await api.client.post(SUPPLIERS, json=body, headers=await api.login("manager"))
    assert_problem(response, 422, field)
    assert OLD_SECRET not in response.text and API_KEY not in response.text
    assert await list_suppliers(api) == []


async def test_unknown_supplier_is_404(api: Api) -> None:
    await create_supplier(api)
    headers = await api.login("manager")
    for method, path, body in (
        ("GET", "/999999", None),
        ("PATCH", "/999999", {"name": "Ghost"}),
        ("GET", "/999999/skus", None),
        ("GET", "/999999/scorecard", None),
        ("PUT", "/999999/skus/ACME-1", {"sku": None}),
    ):
        response = await api.client.request(method, f"{SUPPLIERS}{path}", json=body, headers=headers)
        problem = assert_problem(response, 404)
        assert "999999" in problem["detail"], (method, path, problem)
    assert [s["name"] for s in await list_suppliers(api)] == ["Pièces Express"]


# --- secrets are write-only --------------------------------------------------------------------


def _assert_no_secret(response: httpx.Response) -> None:
    text = response.text
    for secret in ALL_SECRETS:
        assert secret not in text, (response.request.method, response.request.url, text)
        if secret.startswith("whsec_"):
            assert secret.removeprefix("whsec_") not in text, (response.request.method, response.request.url)
    assert "ciphertext" not in text
    assert "api_key" not in json.dumps(response.json() if text else None).replace("has_api_key", "")


async def test_secrets_never_appear_in_any_supplier_response(api: Api, clock: FakeClock) -> None:
    await add_part(api, "IPH13-BATTERY")
    manager = await api.login("manager")
    desk = await api.login("desk.valence")
    seen: list[httpx.Response] = []

    created = await api.client.post(
        SUPPLIERS, json=supplier_body(webhook_secrets=[OLD_SECRET, OTHER_SECRET]), headers=manager
    )
    assert created.status_code == 201, created.text
    supplier_id = created.json()["id"]
    seen.append(created)
    url = f"{SUPPLIERS}/{supplier_id}"
    seen += [
        await api.client.get(SUPPLIERS, headers=manager),
        await api.client.get(SUPPLIERS, headers=desk),
        await api.client.get(url, headers=manager),
        await api.client.patch(url, json={"api_key": NEW_API_KEY, "webhook_secrets": [NEW_SECRET]}, headers=manager),
        await api.client.patch(url, json={"name": "Renamed Parts"}, headers=manager),
        await push(api, supplier_id, stock_event(clock, "ACME-1", 3), NEW_SECRET, clock),
        await push(api, supplier_id, stock_event(clock, "ACME-1", 3), OLD_SECRET, clock, "msg_2"),  # 401
        await api.client.get(f"{url}/skus", headers=manager),
        await api.client.get(f"{url}/skus", params={"unmapped": "true"}, headers=manager),
        await api.client.put(f"{url}/skus/ACME-1", json={"sku": "IPH13-BATTERY"}, headers=manager),
        await api.client.get(f"{url}/scorecard", headers=manager),
        # Refusals must not echo what they were sent either.
        await api.client.post(SUPPLIERS, json=supplier_body(name="Renamed Parts"), headers=manager),  # 409
        await api.client.post(SUPPLIERS, json=supplier_body(name="Desk's", api_key=NEW_API_KEY), headers=desk),
        await api.client.post(
            SUPPLIERS,
            json=supplier_body(name="Bad", webhook_secrets=[NEW_SECRET, "whsec_" + "A" * 12]),
            headers=manager,
        ),
        await api.client.patch(url, json={"api_key": API_KEY, "adapter": "soap"}, headers=manager),
        await api.client.patch(
            url, json={"api_key": API_KEY, "webhook_secrets": [OLD_SECRET, "nope"]}, headers=manager
        ),
        await api.client.patch(url, json={"api_key": API_KEY, "base_url": "ftp://x.example"}, headers=manager),
    ]
    assert [r.status_code for r in seen[:12]] == [201, 200, 200, 200, 200, 200, 200, 401, 200, 200, 200, 200]
    assert [r.status_code for r in seen[12:]] == [409, 403, 422, 422, 422, 422]
    for response in seen:
        _assert_no_secret(response)
    final = await get_supplier(api, supplier_id)
    assert (final["name"], final["has_api_key"], final["webhook_secret_count"]) == ("Renamed Parts", True, 1)


async def test_openapi_schema_of_supplier_responses_has_no_secret_fields(api: Api) -> None:
    schema = (await api.client.get("/schema/openapi.json")).json()
    out = schema["components"]["schemas"]["SupplierOut"]["properties"]
    assert set(out) == SUPPLIER_KEYS


# --- changing suppliers ------------------------------------------------------------------------


async def test_patch_changes_only_the_fields_given(api: Api) -> None:
    supplier = await create_supplier(api, webhook_secrets=[OLD_SECRET, OTHER_SECRET])
    response = await patch(api, supplier["id"], {"name": "Pièces Express Sud", "rate_limit_per_minute": 30})
    assert response.status_code == 200, response.text
    expected = {**supplier, "name": "Pièces Express Sud", "rate_limit_per_minute": 30}
    assert response.json() == expected
    assert await get_supplier(api, supplier["id"]) == expected  # secrets untouched: still set, still two


async def test_patch_can_clear_and_set_the_api_key(api: Api) -> None:
    supplier = await create_supplier(api)
    cleared = await patch(api, supplier["id"], {"clear_api_key": True})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["has_api_key"] is False
    assert (await get_supplier(api, supplier["id"]))["has_api_key"] is False
    assert (await get_supplier(api, supplier["id"]))["webhook_secret_count"] == 1

    again = await patch(api, supplier["id"], {"api_key": NEW_API_KEY})
    assert again.status_code == 200, again.text
    assert again.json()["has_api_key"] is True
    assert (await get_supplier(api, supplier["id"]))["has_api_key"] is True


async def test_patch_replaces_webhook_secrets_for_rotation(api: Api, clock: FakeClock) -> None:
    supplier = await create_supplier(api, webhook_secrets=[OLD_SECRET])
    sid = supplier["id"]
    assert (await push(api, sid, stock_event(clock, "ACME-1", 1), OLD_SECRET, clock, "m1")).status_code == 200
    assert_problem(await push(api, sid, stock_event(clock, "ACME-1", 2), NEW_SECRET, clock, "m2"), 401)

    # Rotation, step one: both are accepted while the supplier switches over.
    both = await patch(api, sid, {"webhook_secrets": [NEW_SECRET, OLD_SECRET]})
    assert both.status_code == 200, both.text
    assert both.json()["webhook_secret_count"] == 2
    assert (await push(api, sid, stock_event(clock, "ACME-1", 3), NEW_SECRET, clock, "m3")).status_code == 200
    assert (await push(api, sid, stock_event(clock, "ACME-1", 4), OLD_SECRET, clock, "m4")).status_code == 200

    # Step two: the old secret is dropped and no longer opens the endpoint.
    only_new = await patch(api, sid, {"webhook_secrets": [NEW_SECRET]})
    assert only_new.status_code == 200, only_new.text
    assert only_new.json()["webhook_secret_count"] == 1
    assert_problem(await push(api, sid, stock_event(clock, "ACME-1", 5), OLD_SECRET, clock, "m5"), 401)
    assert (await push(api, sid, stock_event(clock, "ACME-1", 6), NEW_SECRET, clock, "m6")).status_code == 200
    assert [(m["supplier_sku"], m["available"]) for m in await skus(api, sid)] == [("ACME-1", 6)]

    # An empty list removes them all: every push is then unauthenticated.
    none = await patch(api, sid, {"webhook_secrets": []})
    assert none.status_code == 200, none.text
    assert none.json()["webhook_secret_count"] == 0
    assert_problem(await push(api, sid, stock_event(clock, "ACME-1", 7), NEW_SECRET, clock, "m7"), 401)
    assert [(m["supplier_sku"], m["available"]) for m in await skus(api, sid)] == [("ACME-1", 6)]


BAD_SECRETS = {
    "no-prefix": base64.b64encode(b"k" * 32).decode(),
    "wrong-prefix": "whsek_" + base64.b64encode(b"k" * 32).decode(),
    "not-base64": "whsec_" + "!" * 44,
    "too-short-key": "whsec_" + base64.b64encode(b"k" * 23).decode(),
    "too-long-key": "whsec_" + base64.b64encode(b"k" * 65).decode(),
    "prefix-only": "whsec_",
}


@pytest.mark.parametrize("bad", list(BAD_SECRETS.values()), ids=list(BAD_SECRETS))
async def test_bad_webhook_secret_is_422_naming_its_index(api: Api, bad: str) -> None:
    response = await api.client.post(
        SUPPLIERS, json=supplier_body(webhook_secrets=[OLD_SECRET, bad]), headers=await api.login("manager")
    )
    problem = assert_problem(response, 422, "webhook_secrets[1]")
    reason = next(e["reason"] for e in problem["errors"] if e["field"] == "webhook_secrets[1]")
    assert reason.startswith("a webhook secret"), reason
    if bad.removeprefix("whsec_"):
        assert bad.removeprefix("whsec_") not in response.text
    assert await list_suppliers(api) == []

    supplier = await create_supplier(api)
    changed = await patch(api, supplier["id"], {"webhook_secrets": [bad], "name": "Not Applied"})
    assert_problem(changed, 422, "webhook_secrets[0]")
    assert await get_supplier(api, supplier["id"]) == supplier


@pytest.mark.parametrize("user", ["desk.valence", "tech.valence", "tech.guilherand"])
async def test_only_a_manager_changes_suppliers_others_get_403(api: Api, user: str) -> None:
    supplier = await create_supplier(api)
    response = await patch(api, supplier["id"], {"name": "Hijacked", "clear_api_key": True}, user)
    assert_problem(response, 403)
    assert await get_supplier(api, supplier["id"]) == supplier


# --- no SSRF -----------------------------------------------------------------------------------


@pytest.fixture
async def strict_api(api: Api, settings: Settings, clock: FakeClock) -> AsyncIterator[Api]:
    """The app as in production: private supplier URLs refused (same database and tokens as `api`)."""
    strict = settings.model_copy(update={"allow_private_supplier_urls": False})
    app = create_app(strict, clock=clock)
    async with AsyncTestClient(app=app) as client:
        yield Api(client, api.tokens)


UNSAFE_URLS = {
    "loopback": "http://127.0.0.1:9100/",
    "loopback-other": "http://127.8.9.10/",
    "localhost": "http://localhost:8000/",
    "localhost-subdomain": "http://api.localhost/",
    "dot-local": "http://printer.local/",
    "private-10": "http://10.1.2.3/",
    "private-172": "http://172.16.5.4/",
    "private-192": "https://192.168.1.10/api",
    "metadata": "http://169.254.169.254/latest/meta-data/",
    "unspecified": "http://0.0.0.0/",
    "ipv6-loopback": "http://[::1]:9100/",
    "ipv6-link-local": "http://[fe80::1]/",
    "ipv6-unique-local": "http://[fd00::1]/",
    "ipv4-mapped-loopback": "http://[::ffff:127.0.0.1]/",
    "ipv4-mapped-metadata": "http://[::ffff:169.254.169.254]/",
    "ipv4-mapped-private": "http://[::ffff:10.0.0.1]/",
    "decimal-ip": "http://2130706433/",
    "short-ip": "http://127.1/",
    "hex-ip": "http://0x7f.0.0.1/",
    "credentials": "http://user:pass@93.184.215.14/",
    "user-only": "https://user@93.184.215.14/",
    "ftp": "ftp://93.184.215.14/stock.csv",
    "file": "file:///etc/passwd",
    "gopher": "gopher://93.184.215.14:70/",
    "no-scheme": "93.184.215.14/api",
    "no-host": "http:///api",
}


@pytest.mark.parametrize("url", list(UNSAFE_URLS.values()), ids=list(UNSAFE_URLS))
async def test_unsafe_base_url_is_refused_422_and_nothing_is_written(strict_api: Api, url: str) -> None:
    response = await strict_api.client.post(
        SUPPLIERS, json=supplier_body(base_url=url), headers=await strict_api.login("manager")
    )
    problem = assert_problem(response, 422, "base_url")
    assert API_KEY not in response.text
    assert await list_suppliers(strict_api) == []
    assert problem["errors"][0]["reason"]


@pytest.mark.parametrize(
    "url", [UNSAFE_URLS[k] for k in ("loopback", "metadata", "ipv4-mapped-loopback", "credentials", "file")]
)
async def test_unsafe_base_url_is_refused_on_update_too(strict_api: Api, url: str) -> None:
    supplier = await create_supplier(strict_api)
    response = await patch(strict_api, supplier["id"], {"base_url": url, "name": "Not Applied"})
    assert_problem(response, 422, "base_url")
    assert await get_supplier(strict_api, supplier["id"]) == supplier


async def test_public_address_is_accepted_and_normalised(strict_api: Api) -> None:
    supplier = await create_supplier(strict_api, base_url="HTTPS://93.184.215.14:443/api/v2")
    assert supplier["base_url"] == "https://93.184.215.14/api/v2"
    other = await create_supplier(
        strict_api, name="IPv6 Parts", base_url="https://[2606:2800:220:1:248:1893:25c8:1946]/"
    )
    assert other["base_url"] == "https://[2606:2800:220:1:248:1893:25c8:1946]/"
    assert len(await list_suppliers(strict_api)) == 2


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers for a few *.example.com names (this machine may have no DNS); other names resolve as usual."""
    answers = {
        "parts.example.com": ["93.184.215.14"],
        "intranet.example.com": ["10.0.0.7"],
        "mixed.example.com": ["93.184.215.14", "192.168.0.20"],
        "rebind.example.com": ["::ffff:127.0.0.1"],
    }
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name in answers:
            family = {True: socket.AF_INET6, False: socket.AF_INET}
            return [
                (family[":" in ip], socket.SOCK_STREAM, 6, "", (ip, port) if ":" not in ip else (ip, port, 0, 0))
                for ip in answers[name]
            ]
        if isinstance(name, str) and name.endswith(".example.com"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


async def test_public_host_name_is_accepted(strict_api: Api, fake_dns: None) -> None:
    supplier = await create_supplier(strict_api, base_url="https://Parts.Example.com/api")
    assert supplier["base_url"] == "https://parts.example.com/api"


@pytest.mark.parametrize("host", ["intranet.example.com", "mixed.example.com", "rebind.example.com"])
async def test_host_name_resolving_to_a_private_address_is_refused(strict_api: Api, fake_dns: None, host: str) -> None:
    response = await strict_api.client.post(
        SUPPLIERS, json=supplier_body(base_url=f"https://{host}/"), headers=await strict_api.login("manager")
    )
    problem = assert_problem(response, 422, "base_url")
    assert "not public" in problem["errors"][0]["reason"]
    assert await list_suppliers(strict_api) == []


async def test_unresolvable_host_is_refused_422(strict_api: Api, fake_dns: None) -> None:
    """What urlguard does with a name that does not resolve (now): refused, saying so, nothing written."""
    response = await strict_api.client.post(
        SUPPLIERS,
        json=supplier_body(base_url="https://nowhere.example.com/"),
        headers=await strict_api.login("manager"),
    )
    problem = assert_problem(response, 422, "base_url")
    assert "does not resolve" in problem["errors"][0]["reason"]
    assert await list_suppliers(strict_api) == []


async def test_private_urls_allowed_by_the_setting_but_never_other_schemes_or_credentials(api: Api) -> None:
    """The test settings allow private addresses (the sandbox): a loopback URL is accepted there, while
    schemes other than http(s) and credentials in the URL are refused whatever the setting."""
    supplier = await create_supplier(api, base_url="http://127.0.0.1:9100/t/demo")
    assert supplier["base_url"] == "http://127.0.0.1:9100/t/demo"
    for url in (UNSAFE_URLS["credentials"], UNSAFE_URLS["ftp"], UNSAFE_URLS["file"]):
        response = await api.client.post(
            SUPPLIERS, json=supplier_body(name="Another", base_url=url), headers=await api.login("manager")
        )
        assert_problem(response, 422, "base_url")
    assert [s["name"] for s in await list_suppliers(api)] == ["Pièces Express"]


# --- the SKU map -------------------------------------------------------------------------------


async def _supplier_with_reported_stock(api: Api, clock: FakeClock) -> int:
    """A supplier that reported, by signed webhook, one SKU of ours and one we do not know."""
    await add_part(api, "IPH13-BATTERY", "iPhone 13 battery")
    await add_part(api, "IPH13-SCREEN-OLED", "iPhone 13 OLED display")
    supplier = await create_supplier(api)
    for msg_id, (sku, available) in enumerate((("ACME-77", 4), ("IPH13-BATTERY", 9))):
        response = await push(api, supplier["id"], stock_event(clock, sku, available), OLD_SECRET, clock, f"m{msg_id}")
        assert response.status_code == 200, response.text
        assert response.json() == {"id": f"m{msg_id}", "type": "stock.changed", "outcome": "applied"}
    supplier_id: int = supplier["id"]
    return supplier_id


def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def test_unknown_supplier_skus_from_stock_webhooks_are_listed_for_review(api: Api, clock: FakeClock) -> None:
    sid = await _supplier_with_reported_stock(api, clock)
    unmapped = await skus(api, sid, unmapped="true")
    assert [(m["supplier_sku"], m["sku"], m["available"]) for m in unmapped] == [("ACME-77", None, 4)]
    assert _at(unmapped[0]["observed_at"]) == clock.now

    everything = await skus(api, sid)
    assert [(m["supplier_sku"], m["sku"], m["available"]) for m in everything] == [
        ("ACME-77", None, 4),
        ("IPH13-BATTERY", "IPH13-BATTERY", 9),  # the supplier uses our code
    ]
    # Readable by any member of staff, like the supplier itself.
    assert await skus(api, sid, "desk.guilherand") == everything


async def test_mapping_an_unknown_sku_takes_it_off_the_review_list(api: Api, clock: FakeClock) -> None:
    sid = await _supplier_with_reported_stock(api, clock)
    response = await map_sku(api, sid, "ACME-77", "iph13-screen-oled")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["supplier_sku"], body["sku"]) == ("ACME-77", "IPH13-SCREEN-OLED")

    assert await skus(api, sid, unmapped="true") == []
    assert [(m["supplier_sku"], m["sku"], m["available"]) for m in await skus(api, sid)] == [
        ("ACME-77", "IPH13-SCREEN-OLED", 4),
        ("IPH13-BATTERY", "IPH13-BATTERY", 9),
    ]


async def test_mapping_can_be_made_before_the_supplier_reports_the_sku(api: Api, clock: FakeClock) -> None:
    sid = await _supplier_with_reported_stock(api, clock)
    response = await map_sku(api, sid, "ACME-SCR-13", "IPH13-SCREEN-OLED")
    assert response.status_code == 200, response.text
    listed = {m["supplier_sku"]: (m["sku"], m["available"]) for m in await skus(api, sid)}
    assert listed["ACME-SCR-13"] == ("IPH13-SCREEN-OLED", None)
    assert [m["supplier_sku"] for m in await skus(api, sid, unmapped="true")] == ["ACME-77"]


async def test_mapping_to_an_sku_not_in_the_catalogue_is_422(api: Api, clock: FakeClock) -> None:
    sid = await _supplier_with_reported_stock(api, clock)
    unknown = await map_sku(api, sid, "ACME-77", "IPH99-SCREEN")
    problem = assert_problem(unknown, 422, "sku")
    assert "IPH99-SCREEN" in problem["detail"]
    assert_problem(await map_sku(api, sid, "ACME-77", "not a sku"), 422, "sku")
    missing = await api.client.put(f"{SUPPLIERS}/{sid}/skus/ACME-77", json={}, headers=await api.login("manager"))
    assert_problem(missing, 422, "sku")
    assert [m["supplier_sku"] for m in await skus(api, sid, unmapped="true")] == ["ACME-77"]


async def test_marking_a_supplier_sku_as_none_of_ours_takes_it_off_the_review_list(api: Api, clock: FakeClock) -> None:
    """`{"sku": null}`: reviewed, it is none of ours (SkuMapIn: "kept out of the list")."""
    sid = await _supplier_with_reported_stock(api, clock)
    response = await map_sku(api, sid, "ACME-77", None)
    assert response.status_code == 200, response.text
    assert (response.json()["supplier_sku"], response.json()["sku"]) == ("ACME-77", None)
    assert await skus(api, sid, unmapped="true") == []


@pytest.mark.parametrize("user", ["desk.valence", "tech.valence", "tech.guilherand"])
async def test_only_a_manager_maps_supplier_skus(api: Api, clock: FakeClock, user: str) -> None:
    sid = await _supplier_with_reported_stock(api, clock)
    assert_problem(await map_sku(api, sid, "ACME-77", "IPH13-SCREEN-OLED", user), 403)
    assert [m["supplier_sku"] for m in await skus(api, sid, unmapped="true")] == ["ACME-77"]


async def test_unmapped_must_be_a_boolean(api: Api) -> None:
    supplier = await create_supplier(api)
    response = await api.client.get(
        f"{SUPPLIERS}/{supplier['id']}/skus", params={"unmapped": "maybe"}, headers=await api.login("manager")
    )
    assert_problem(response, 422, "unmapped")


# --- the scorecard -----------------------------------------------------------------------------


async def test_scorecard_of_a_supplier_without_orders_has_no_rates(api: Api) -> None:
    supplier = await create_supplier(api)
    for user in ("manager", "desk.guilherand"):
        response = await api.client.get(f"{SUPPLIERS}/{supplier['id']}/scorecard", headers=await api.login(user))
        assert response.status_code == 200, response.text
        assert response.json() == {
            "supplier_id": supplier["id"],
            "window_days": 90,
            "lines": 0,
            "due": 0,
            "on_time_rate": None,
            "mean_delay_hours": None,
            "p90_delay_hours": None,
            "slip_rate": None,
            "fill_rate": None,
        }


async def test_scorecard_of_an_unknown_supplier_is_404(api: Api) -> None:
    response = await api.client.get(f"{SUPPLIERS}/424242/scorecard", headers=await api.login("manager"))
    problem = assert_problem(response, 404)
    assert "424242" in problem["detail"]


# --- branch scoping of supplier orders and part lines ------------------------------------------


async def _valence_order(api: Api, sandbox: SandboxServer, tenant: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valence job with one part line ordered from a sandbox supplier: (job parts, order)."""
    await add_part(api, "IPH13-BATTERY", "iPhone 13 battery", ("iPhone 13",))
    supplier = await create_supplier(api, base_url=sandbox.tenant_url(tenant), webhook_secrets=[])
    job = await create_job(api)
    tech = await api.login("tech.valence")
    added = await api.client.post(f"{JOBS}/{job['ref']}/parts", json={"sku": "IPH13-BATTERY"}, headers=tech)
    assert added.status_code == 201, added.text
    line_id = added.json()["lines"][0]["id"]
    ordered = await api.client.post(
        f"{JOBS}/{job['ref']}/parts/{line_id}/order", json={"supplier_id": supplier["id"]}, headers=tech
    )
    assert ordered.status_code == 201, ordered.text
    parts = await api.client.get(f"{JOBS}/{job['ref']}/parts", headers=tech)
    assert parts.status_code == 200, parts.text
    return parts.json(), ordered.json()


def _endpoints(ref: str, line_id: int, order_id: int, clock: FakeClock) -> list[tuple[str, str, Any]]:
    eta = (clock.now + timedelta(days=2)).isoformat()
    return [
        ("GET", f"{JOBS}/{ref}/parts", None),
        ("POST", f"{JOBS}/{ref}/parts", {"sku": "IPH13-BATTERY"}),
        ("PATCH", f"{JOBS}/{ref}/parts/{line_id}", {"eta": eta}),
        ("POST", f"{JOBS}/{ref}/parts/{line_id}/quotes", None),
        ("POST", f"{JOBS}/{ref}/parts/{line_id}/order", {}),
        ("GET", f"{ORDERS}/{order_id}", None),
        ("POST", f"{ORDERS}/{order_id}/receipts", {}),
        ("POST", f"{ORDERS}/{order_id}/cancel", {"reason": "not ours"}),
    ]


@pytest.mark.parametrize("user", ["tech.guilherand", "desk.guilherand"])
async def test_another_branchs_supplier_orders_and_part_lines_are_404(
    api: Api, clock: FakeClock, sandbox: SandboxServer, sandbox_tenant: str, user: str
) -> None:
    parts, order = await _valence_order(api, sandbox, sandbox_tenant)
    ref, line_id, order_id = parts["ref"], parts["lines"][0]["id"], order["id"]
    headers = await api.login(user)
    for (method, path, body), (_, missing_path, _) in zip(
        _endpoints(ref, line_id, order_id, clock), _endpoints("AT-999999", line_id, 999999, clock), strict=True
    ):
        response = await api.client.request(method, path, json=body, headers=headers)
        if user == "desk.guilherand" and response.status_code == 403:
            # A role refusal said before looking the job up: the same for a job that does not exist.
            missing = await api.client.request(method, missing_path, json=body, headers=headers)
            assert_problem(missing, 403)
            continue
        problem = assert_problem(response, 404)
        missing = await api.client.request(method, missing_path, json=body, headers=headers)
        unknown = assert_problem(missing, 404)
        assert (problem["type"], problem["title"]) == (unknown["type"], unknown["title"]), (method, path)
        same = problem["detail"].replace(ref, "AT-999999").replace(f"order {order_id}", "order 999999")
        assert same == unknown["detail"], (method, path)

    # The lists show none of it.
    listed = await api.client.get(ORDERS, headers=headers)
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"items": [], "next_cursor": None}

    # And nothing changed for valence.
    manager = await api.login("manager.valence")
    after = await api.client.get(f"{JOBS}/{ref}/parts", headers=manager)
    assert after.json()["lines"] == parts["lines"]
    fetched = await api.client.get(f"{ORDERS}/{order_id}", headers=manager)
    assert fetched.status_code == 200, fetched.text
    assert (fetched.json()["status"], fetched.json()["lines"][0]["received_quantity"]) == (order["status"], 0)


async def test_desk_of_another_branch_is_404_on_reads(api: Api, sandbox: SandboxServer, sandbox_tenant: str) -> None:
    """Reads need no role: the other branch's desk gets 404 outright, like for a missing job."""
    parts, order = await _valence_order(api, sandbox, sandbox_tenant)
    headers = await api.login("desk.guilherand")
    assert_problem(await api.client.get(f"{JOBS}/{parts['ref']}/parts", headers=headers), 404)
    assert_problem(await api.client.get(f"{ORDERS}/{order['id']}", headers=headers), 404)


async def test_own_branch_and_chain_manager_see_the_order(
    api: Api, sandbox: SandboxServer, sandbox_tenant: str
) -> None:
    parts, order = await _valence_order(api, sandbox, sandbox_tenant)
    assert parts["lines"][0]["order_id"] == order["id"]
    assert order["job_ref"] == parts["ref"]
    for user in ("desk.valence", "tech.valence", "manager.valence", "manager"):
        headers = await api.login(user)
        listed = await api.client.get(ORDERS, headers=headers)
        assert [o["id"] for o in listed.json()["items"]] == [order["id"]], user
        fetched = await api.client.get(f"{ORDERS}/{order['id']}", headers=headers)
        assert fetched.status_code == 200, fetched.text
        assert fetched.json()["po"] == order["po"]
        own = await api.client.get(f"{JOBS}/{parts['ref']}/parts", headers=headers)
        assert own.status_code == 200, own.text
        assert [line["id"] for line in own.json()["lines"]] == [parts["lines"][0]["id"]]


async def test_late_parts_list_shows_only_the_branchs_own_lines(
    api: Api, clock: FakeClock, sandbox: SandboxServer, sandbox_tenant: str
) -> None:
    parts, _ = await _valence_order(api, sandbox, sandbox_tenant)
    clock.advance(days=120)  # far past any ETA the sandbox gives
    late = {}
    for user in ("tech.valence", "manager", "tech.guilherand", "desk.guilherand"):
        response = await api.client.get(f"{PARTS}/late", headers=await api.login(user))
        assert response.status_code == 200, response.text
        late[user] = [(item["ref"], item["line_id"]) for item in response.json()]
    expected = [(parts["ref"], parts["lines"][0]["id"])]
    assert late == {"tech.valence": expected, "manager": expected, "tech.guilherand": [], "desk.guilherand": []}
