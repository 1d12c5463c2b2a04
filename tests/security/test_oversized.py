"""Oversized and malformed bodies: over ATELIER_MAX_BODY_BYTES (1 MiB) every route that reads a body
answers 413, whether the size is announced (Content-Length) or not (streamed); a list over its bound is 422
naming it; absurd JSON (nested deep, numbers of 100,000 digits) is a 4xx. Never a 500, never a write."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from litestar import Litestar

from service.settings import Settings
from tests.api.helpers import JOBS, PROBLEM_JSON, assert_problem, create_job, intake_body, move, part
from tests.api.parts_helpers import MANAGER, ORDERS, PARTS, SUPPLIERS
from tests.conftest import Api
from tests.security.support import StaffSession, body_route_keys, changed_tables, counter_form, dump_tables, signed_in

LIMIT = 1024 * 1024
MISSING = {"ref": "AT-999999", "line_id": "999999", "order_id": "999999", "supplier_id": "999999"}
TOKEN = "A" * 43  # well formed, issued to nobody
# Handlers that read the body themselves (no `data` parameter).
RAW_BODY_ROUTES = {"POST /track/{token:str}/approval", "POST /api/v1/webhooks/suppliers/{supplier_id:str}"}


def _path(route: str) -> str:
    """The route's path with made-up ids: the body is read (and refused) before anything is looked up."""
    path = route.split(" ", 1)[1]
    names = {**MISSING, "code": "valence", "sku": "NO-SUCH-SKU", "supplier_sku": "X", "token": TOKEN}
    for name, value in names.items():
        path = path.replace(f"{{{name}:int}}", value).replace(f"{{{name}:str}}", value)
    return path


def _routes(app: Litestar) -> list[str]:
    return sorted(body_route_keys(app) | RAW_BODY_ROUTES)


def _oversized_json() -> bytes:
    return json.dumps({"note": "x" * LIMIT}).encode()


def _oversized_form(csrf: str) -> bytes:
    return f"_csrf_token={csrf}&note=".encode() + b"x" * LIMIT


async def _chunks(first: bytes, size: int) -> AsyncIterator[bytes]:
    yield first
    for _ in range(size // 65536 + 1):
        yield b"x" * 65536


async def test_a_body_over_the_limit_is_413_on_every_route(api: Api, settings: Settings) -> None:
    pages = await signed_in(api, "manager")  # the pages' forms, with the session's CSRF token
    bearer = await api.login(MANAGER)
    before = await dump_tables(settings)
    wrong = []
    for route in _routes(api.client.app):
        method, path = route.split(" ", 1)[0], _path(route)
        if path.startswith("/app/"):
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            response = await pages.request(method, path, content=_oversized_form(pages.csrf), headers=headers)
        else:
            headers = {**bearer, "Content-Type": "application/json"}
            response = await api.client.request(method, path, content=_oversized_json(), headers=headers)
        if response.status_code != 413:
            wrong.append(f"{route}: {response.status_code} {response.text[:200]}")
        elif not path.startswith("/app/") and not response.headers["content-type"].startswith(PROBLEM_JSON):
            wrong.append(f"{route}: 413 but not a problem: {response.headers['content-type']}")
    assert wrong == [], "\n".join(wrong)
    assert changed_tables(before, await dump_tables(settings)) == []


async def test_a_streamed_body_over_the_limit_is_413_on_every_route(live_app: Litestar, live_api: Api) -> None:
    api = live_api  # Litestar's test client cannot stream a request body: no Content-Length, counted as read
    bearer = await api.login(MANAGER)
    pages = StaffSession(api, "manager")
    await pages.sign_in()
    wrong = []
    for route in _routes(live_app):
        method, path = route.split(" ", 1)[0], _path(route)
        if path.startswith("/app/"):
            cookies = "; ".join(f"{k}={v}" for k, v in pages.cookies.items())
            headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookies}
            first = f"_csrf_token={pages.csrf}&note=".encode()
        else:
            headers = {**bearer, "Content-Type": "application/json"}
            first = b'{"note": "'
        api.client.cookies.clear()
        response = await api.client.request(method, path, content=_chunks(first, LIMIT), headers=headers)
        if response.status_code != 413:
            wrong.append(f"{route}: {response.status_code} {response.text[:200]}")
    assert wrong == [], "\n".join(wrong)


def _many(n: int, make: Any) -> list[Any]:
    return [make(i) for i in range(n)]


# (route, user, body builder given the job, the field the 422 names)
OVER_BOUND: dict[str, tuple[str, str, Any, str]] = {
    "accessories": (
        "POST " + JOBS,
        "desk.valence",
        lambda job: intake_body(device={**intake_body()["device"], "accessories": _many(21, lambda i: f"a{i}")}),
        "device.accessories",
    ),
    "estimate lines": (
        "PUT " + JOBS + "/{ref}/estimate",
        "tech.valence",
        lambda job: {"lines": _many(51, lambda i: part(100, f"line {i}"))},
        "lines",
    ),
    "part lines": (
        "POST " + JOBS + "/{ref}/parts",
        "tech.valence",
        lambda job: {"lines": _many(21, lambda i: {"sku": f"SKU-{i}", "quantity": 1})},
        "lines",
    ),
    "receipt lines": (
        "POST " + ORDERS + "/1/receipts",
        "desk.valence",
        lambda job: {"lines": _many(51, lambda i: {"line_id": i + 1})},
        "lines",
    ),
    "part models": (
        "POST " + PARTS,
        MANAGER,
        lambda job: {"sku": "BIG-1", "description": "d", "models": _many(51, lambda i: f"model {i}")},
        "models",
    ),
    "part models, update": (
        "PUT " + PARTS + "/BIG-1",
        MANAGER,
        lambda job: {"description": "d", "models": _many(51, lambda i: f"model {i}")},
        "models",
    ),
    "webhook secrets": (
        "POST " + SUPPLIERS,
        MANAGER,
        lambda job: {
            "name": "Many Secrets",
            "adapter": "rest_json",
            "base_url": "http://127.0.0.1:9/",
            "webhook_secrets": _many(6, lambda i: f"whsec_{'A' * 43}{i}"),
        },
        "webhook_secrets",
    ),
    "webhook secrets, update": (
        "PATCH " + SUPPLIERS + "/1",
        MANAGER,
        lambda job: {"webhook_secrets": _many(6, lambda i: f"whsec_{'A' * 43}{i}")},
        "webhook_secrets",
    ),
    "storage slots": (
        "PATCH /api/v1/branches/valence",
        "manager.valence",
        lambda job: {"storage_slots": _many(501, lambda i: f"S-{i}")},
        "storage_slots",
    ),
}


@pytest.mark.parametrize("case", OVER_BOUND)
async def test_a_list_over_its_bound_is_422_naming_it(api: Api, settings: Settings, case: str) -> None:
    route, user, build, field = OVER_BOUND[case]
    job = await move(api, "tech.valence", await create_job(api), "diagnosing")
    method, path = route.split(" ", 1)
    headers = {**(await api.login(user)), "If-Match": f'"v{job["version"]}"'}
    before = await dump_tables(settings)
    response = await api.client.request(method, path.format(ref=job["ref"]), json=build(job), headers=headers)
    assert_problem(response, 422, field)
    assert changed_tables(before, await dump_tables(settings)) == []


async def test_the_pages_refuse_lists_over_their_bound(api: Api, settings: Settings) -> None:
    tech = await signed_in(api, "tech.valence")
    job = await move(api, "tech.valence", await create_job(api), "diagnosing")
    rows: dict[str, str] = {"action": "save", "version": str(job["version"])}
    for i in range(51):  # one row more than an estimate takes: refused, not cut to 50 and saved
        rows |= {f"kind-{i}": "part", f"description-{i}": f"line {i}", f"quantity-{i}": "1", f"price-{i}": "1"}
    before = await dump_tables(settings)
    estimate = await tech.post(f"/app/jobs/{job['ref']}/estimate", rows)
    assert estimate.status_code == 422, estimate.status_code

    desk = await signed_in(api, "desk.valence")
    form = counter_form("SN-BIG-1", accessories=", ".join(f"thing {i}" for i in range(21)))
    intake = await desk.post("/app/counter/intake", form)
    assert intake.status_code == 422, intake.status_code
    assert changed_tables(before, await dump_tables(settings)) == []


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


# JSON no client means, each small enough to be read (under 1 MiB).
ABSURD: Mapping[str, bytes] = {
    "nested 500,000 deep": _deep(500_000),
    "invalid UTF-8": b'{"note": "\xff\xfe"}',
    "a lone surrogate": b'{"note": "\\ud800"}',
    "a number of 100,000 digits": b'{"approved": true, "note": "n", "quantity": ' + b"9" * 100_000 + b"}",
    "a float beyond double": b'{"approved": true, "preapproved_budget_cents": 1e999}',
    "a thousand keys": json.dumps({f"k{i}": i for i in range(1000)}).encode(),
}
# Litestar's own body decoding (every `data` body), and the customer's answer (its handler's own json.loads).
ABSURD_ROUTES = {
    "intake": ("POST", JOBS),
    "notes": ("POST", f"{JOBS}/AT-999999/notes"),
    "customer's answer": ("POST", f"/track/{TOKEN}/approval"),
}


@pytest.mark.parametrize(("case", "route"), [(case, route) for case in ABSURD for route in ABSURD_ROUTES])
async def test_absurd_json_is_a_4xx_never_a_500(api: Api, settings: Settings, case: str, route: str) -> None:
    method, path = ABSURD_ROUTES[route]
    headers = {**(await api.login("desk.valence")), "If-Match": '"v1"', "Content-Type": "application/json"}
    before = await dump_tables(settings)
    response = await api.client.request(method, path, content=ABSURD[case], headers=headers)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    assert changed_tables(before, await dump_tables(settings)) == []
