"""Mass assignment: a body carrying fields the caller may not set (the stage, the version, ids, the
branch, the technician, the approval, the amount paid, a role...) is refused with 422 naming the field and
changes nothing; the same body without them is accepted (so the refusal is the extra field's doing).
The staff pages read their forms field by field: extra fields there are ignored, never applied.

Every route that reads a body is in API_CASES, PAGE_CASES or EXEMPT (`test_every_body_route_is_covered`)."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from service.settings import Settings
from tests.api.helpers import (
    JOBS,
    advance_to,
    create_job,
    get_job,
    if_match,
    intake_body,
    move,
    part,
    pickup_code,
)
from tests.api.parts_helpers import (
    MANAGER,
    NEW_SECRET,
    ORDERS,
    PARTS,
    SKU,
    SUPPLIERS,
    add_part,
    add_supplier,
    job_with_lines,
    new_tenant,
    pin_stock,
    place_order,
)
from tests.conftest import PASSWORD, Api
from tests.sandbox_fixture import SandboxServer
from tests.security.support import (
    StaffSession,
    body_route_keys,
    changed_tables,
    counter_form,
    dump_tables,
    signed_in,
    track_path,
)

# What no body may set, whatever the route: state the app keeps, ids, who and when.
ANYWHERE = {"id": 1, "version": 99, "stage": "collected", "branch_id": 2, "created_at": "2026-01-01T00:00:00Z"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Any
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Case:
    """A body a `user` may send to the route, and the fields (dotted, for nested ones) they may not add."""

    user: str | None
    prepare: Callable[[Api, SandboxServer], Awaitable[Request]]
    extras: Mapping[str, Any]


async def _headers(api: Api, user: str | None, job: Mapping[str, Any] | None = None) -> dict[str, str]:
    headers = await api.login(user) if user else {}
    return {**headers, **(if_match(dict(job)) if job else {})}


def _job_change(path: str, body: Any, stage: str = "received", user: str = "tech.valence") -> Any:
    async def prepare(api: Api, sandbox: SandboxServer) -> Request:
        job = await create_job(api)
        job = await advance_to(api, job, stage) if stage != "received" else job
        return Request("POST", f"{JOBS}/{job['ref']}{path}", body, await _headers(api, user, job))

    return prepare


async def _token(api: Api, sandbox: SandboxServer) -> Request:
    return Request("POST", "/api/v1/auth/token", {"username": "desk.valence", "password": PASSWORD}, {})


async def _intake(api: Api, sandbox: SandboxServer) -> Request:
    return Request("POST", JOBS, intake_body(passcode="1234"), await _headers(api, "desk.valence"))


async def _estimate(api: Api, sandbox: SandboxServer) -> Request:
    job = await move(api, "tech.valence", await create_job(api), "diagnosing")
    body = {"lines": [part(100)]}
    return Request("PUT", f"{JOBS}/{job['ref']}/estimate", body, await _headers(api, "tech.valence", job))


async def _pickup(api: Api, sandbox: SandboxServer) -> Request:
    job = await advance_to(api, await create_job(api), "ready_for_pickup")
    body = {"code": await pickup_code(api, job["ref"]), "paid_cents": 8900}
    return Request("POST", f"{JOBS}/{job['ref']}/pickup", body, await _headers(api, "desk.valence"))


async def _add_lines(api: Api, sandbox: SandboxServer) -> Request:
    await _catalogue(api)
    job = await create_job(api)
    body = {"lines": [{"sku": SKU, "quantity": 1}]}
    return Request("POST", f"{JOBS}/{job['ref']}/parts", body, await _headers(api, "tech.valence"))


async def _catalogue(api: Api) -> None:
    if (await api.client.get(f"{PARTS}/{SKU}", headers=await api.login(MANAGER))).status_code == 404:
        await add_part(api)


async def _change_line(api: Api, sandbox: SandboxServer) -> Request:
    await _catalogue(api)
    view = await job_with_lines(api, [(SKU, 1)])
    path = f"{JOBS}/{view['ref']}/parts/{view['lines'][0]['id']}"
    return Request("PATCH", path, {"eta": "2026-12-01T10:00:00Z"}, await _headers(api, "tech.valence"))


async def _order_line(api: Api, sandbox: SandboxServer) -> Request:
    await _catalogue(api)
    tenant = new_tenant()
    pin_stock(sandbox, tenant, SKU, 5)
    supplier = await add_supplier(api, sandbox, tenant)
    view = await job_with_lines(api, [(SKU, 1)])
    path = f"{JOBS}/{view['ref']}/parts/{view['lines'][0]['id']}/order"
    return Request("POST", path, {"supplier_id": supplier["id"]}, await _headers(api, "tech.valence"))


async def _receipts(api: Api, sandbox: SandboxServer) -> Request:
    placed = await place_order(api, sandbox)
    body = {"lines": [{"line_id": placed.line_id, "quantity": 1}]}
    return Request("POST", f"{ORDERS}/{placed.order['id']}/receipts", body, await _headers(api, "desk.valence"))


async def _cancel(api: Api, sandbox: SandboxServer) -> Request:
    placed = await place_order(api, sandbox)
    body = {"reason": "found cheaper"}
    return Request("POST", f"{ORDERS}/{placed.order['id']}/cancel", body, await _headers(api, "tech.valence"))


async def _new_part(api: Api, sandbox: SandboxServer) -> Request:
    body = {"sku": "MASS-1", "description": "a part", "models": ["iPhone 13"]}
    return Request("POST", PARTS, body, await _headers(api, MANAGER))


async def _update_part(api: Api, sandbox: SandboxServer) -> Request:
    await _catalogue(api)
    body = {"description": "renamed", "models": ["iPhone 13"]}
    return Request("PUT", f"{PARTS}/{SKU}", body, await _headers(api, MANAGER))


async def _new_supplier(api: Api, sandbox: SandboxServer) -> Request:
    body = {"name": "Mass Supplies", "adapter": "rest_json", "base_url": sandbox.tenant_url(new_tenant())}
    return Request("POST", SUPPLIERS, body, await _headers(api, MANAGER))


async def _update_supplier(api: Api, sandbox: SandboxServer) -> Request:
    supplier = await add_supplier(api, sandbox, new_tenant())
    return Request("PATCH", f"{SUPPLIERS}/{supplier['id']}", {"name": "Renamed"}, await _headers(api, MANAGER))


async def _map_sku(api: Api, sandbox: SandboxServer) -> Request:
    await _catalogue(api)
    supplier = await add_supplier(api, sandbox, new_tenant())
    return Request("PUT", f"{SUPPLIERS}/{supplier['id']}/skus/THEIRS-1", {"sku": SKU}, await _headers(api, MANAGER))


async def _branch(api: Api, sandbox: SandboxServer) -> Request:
    return Request("PATCH", "/api/v1/branches/valence", {"express_capacity": 5}, await _headers(api, "manager.valence"))


async def _customer_answer(api: Api, sandbox: SandboxServer) -> Request:
    created = await create_job(api)
    await advance_to(api, created, "awaiting_approval")
    return Request("POST", f"{track_path(created['tracking_url'])}/approval", {"approved": True}, {})


API_CASES: dict[str, Case] = {
    "POST /api/v1/auth/token": Case(None, _token, {"role": "manager", "branch": "guilherand", "branch_id": 2}),
    "POST /api/v1/jobs": Case(
        "desk.valence",
        _intake,
        {
            **ANYWHERE,
            "ref": "AT-000001",
            "technician": "tech.valence",
            "approval": {"approved": True},
            "paid_cents": 0,
            "collected_at": "2026-01-01T00:00:00Z",
            "has_passcode": False,
            "due_at": "2030-01-01T00:00:00Z",
            "outcome": "repaired",
            "pickup_slot": "A-01",
            "estimate": {"lines": []},
            "customer.id": 1,
            "customer.erased_at": "2026-01-01T00:00:00Z",
            "device.id": 1,
            "fault.stage": "collected",
        },
    ),
    "POST /api/v1/jobs/{ref:str}/transitions": Case(
        "tech.valence",
        _job_change("/transitions", {"to": "diagnosing"}),
        {**ANYWHERE, "technician": "tech2.valence", "actor": "manager", "from_stage": "repairing", "by": "manager"},
    ),
    "PUT /api/v1/jobs/{ref:str}/estimate": Case(
        "tech.valence",
        _estimate,
        {**ANYWHERE, "approval": {"approved": True}, "total_cents": 1, "lines.0.total_cents": 1, "lines.0.id": 7},
    ),
    "POST /api/v1/jobs/{ref:str}/approval": Case(
        "desk.valence",
        _job_change("/approval", {"approved": True}, "awaiting_approval", "desk.valence"),
        {**ANYWHERE, "by": "customer", "source": "customer", "at": "2026-01-01T00:00:00Z"},
    ),
    "POST /api/v1/jobs/{ref:str}/assignment": Case(
        "manager.valence",
        _job_change("/assignment", {"technician": "tech.valence"}, user="manager.valence"),
        {**ANYWHERE, "branch": "guilherand", "role": "manager"},
    ),
    "POST /api/v1/jobs/{ref:str}/notes": Case(
        "desk.valence",
        _job_change("/notes", {"note": "called the customer"}, user="desk.valence"),
        {**ANYWHERE, "actor": "manager", "kind": "approval_recorded", "at": "2026-01-01T00:00:00Z"},
    ),
    "POST /api/v1/jobs/{ref:str}/pickup": Case(
        "desk.valence",
        _pickup,
        {**ANYWHERE, "collected_at": "2026-01-01T00:00:00Z", "outcome": "repaired", "pickup_slot": "Z-99"},
    ),
    "POST /api/v1/jobs/{ref:str}/parts": Case(
        "tech.valence",
        _add_lines,
        {
            **ANYWHERE,
            "lines.0.status": "received",
            "lines.0.unit_price_cents": 1,
            "lines.0.supplier_id": 1,
            "lines.0.order_id": 1,
        },
    ),
    "PATCH /api/v1/jobs/{ref:str}/parts/{line_id:int}": Case(
        "tech.valence",
        _change_line,
        {
            **ANYWHERE,
            "received_quantity": 1,
            "shipped_quantity": 1,
            "promised_at": "2026-12-01T10:00:00Z",
            "unit_price_cents": 1,
            "order_id": 1,
            "supplier_id": 1,
        },
    ),
    "POST /api/v1/jobs/{ref:str}/parts/{line_id:int}/order": Case(
        "tech.valence",
        _order_line,
        {**ANYWHERE, "unit_price_cents": 1, "po": "PO-000001", "status": "received", "promised_at": "2026-01-01"},
    ),
    "POST /api/v1/supplier-orders/{order_id:int}/receipts": Case(
        "desk.valence",
        _receipts,
        {**ANYWHERE, "status": "received", "received_at": "2026-01-01T00:00:00Z", "lines.0.status": "fitted"},
    ),
    "POST /api/v1/supplier-orders/{order_id:int}/cancel": Case(
        "tech.valence", _cancel, {**ANYWHERE, "status": "cancelled", "supplier_ref": "theirs"}
    ),
    "POST /api/v1/parts": Case(MANAGER, _new_part, {**ANYWHERE, "updated_at": "2026-01-01T00:00:00Z"}),
    "PUT /api/v1/parts/{sku:str}": Case(MANAGER, _update_part, {**ANYWHERE, "sku": "RENAMED-SKU"}),
    "POST /api/v1/suppliers": Case(
        MANAGER,
        _new_supplier,
        {**ANYWHERE, "has_api_key": True, "webhook_secret_count": 3, "stale_since": "2026-01-01T00:00:00Z"},
    ),
    "PATCH /api/v1/suppliers/{supplier_id:int}": Case(
        MANAGER,
        _update_supplier,
        {**ANYWHERE, "has_api_key": True, "webhook_secret_count": 3, "webhook_secret_ciphertexts": [NEW_SECRET]},
    ),
    "PUT /api/v1/suppliers/{supplier_id:int}/skus/{supplier_sku:str}": Case(
        MANAGER, _map_sku, {**ANYWHERE, "supplier_id": 2, "available": 5, "reviewed_by": "manager"}
    ),
    "PATCH /api/v1/branches/{code:str}": Case(
        "manager.valence",
        _branch,
        {**ANYWHERE, "code": "guilherand", "name": "Renamed", "timezone": "UTC", "hours": {}},
    ),
    "POST /track/{token:str}/approval": Case(
        None,
        _customer_answer,
        {**ANYWHERE, "source": "staff", "by": "manager", "actor": "manager", "at": "2026-01-01T00:00:00Z"},
    ),
}


def _with(body: Any, dotted: str, value: Any) -> Any:
    """`body` with `value` set at `dotted` (a.b.0.c): the extra field, at top level or nested."""
    changed = copy.deepcopy(body)
    *parents, leaf = dotted.split(".")
    target = changed
    for name in parents:
        target = target[int(name)] if name.isdigit() else target[name]
    target[leaf] = value
    return changed


async def test_extra_privileged_fields_are_refused_naming_the_field_and_change_nothing(
    api: Api, sandbox: SandboxServer, settings: Settings
) -> None:
    prepared = {key: await case.prepare(api, sandbox) for key, case in API_CASES.items()}
    before = await dump_tables(settings)

    wrong: list[str] = []
    for key, case in API_CASES.items():
        sent = prepared[key]
        for field, value in case.extras.items():
            body = _with(sent.body, field, value)
            response = await api.client.request(sent.method, sent.path, json=body, headers=sent.headers)
            named = {e.get("field") for e in response.json().get("errors", [])} if response.status_code == 422 else {}
            if response.status_code != 422 or field not in named:
                wrong.append(f"{key} + {field}: {response.status_code} {response.text[:300]}")
    changed = changed_tables(before, await dump_tables(settings))

    # The same bodies without the extra fields are taken: each refusal was the extra field's doing.
    for key, sent in prepared.items():
        response = await api.client.request(sent.method, sent.path, json=sent.body, headers=sent.headers)
        if not 200 <= response.status_code < 300:
            wrong.append(f"{key} without extras: {response.status_code} {response.text[:300]}")
    assert wrong == [], "\n".join(wrong)
    assert changed == []


# --- the pages: forms are read field by field -----------------------------------------------------------

PageCheck = Callable[[Api, StaffSession], Awaitable[None]]


async def _sign_in_as_someone_else(api: Api, _: StaffSession) -> None:
    desk = StaffSession(api, "desk.valence")
    await desk.sign_in(role="manager", branch="guilherand", usr="manager", br="")
    refused = await desk.get("/app/manager")  # a manager's page: the session is the desk's own
    assert refused.status_code == 403, refused.status_code
    board = await desk.get("/app/board")
    assert board.status_code == 200 and "guilherand" not in board.text.lower()


async def _counter_intake(api: Api, desk: StaffSession) -> None:
    form = counter_form(  # with fields that are not the form's: each would be a privilege if applied
        "SN-MASS-1",
        stage="collected",
        technician="tech.valence",
        version="9",
        paid_cents="0",
        id="1",
        outcome="repaired",
        has_passcode="true",
        branch_id="2",
        express_override_reason="",
    )
    response = await desk.post("/app/counter/intake", form)
    assert response.status_code == 303, response.text
    ref = response.headers["location"].split("/")[3]
    job = await get_job(api, "manager", ref)
    assert (job["stage"], job["technician"], job["branch"], job["paid_cents"]) == ("received", None, "valence", None)
    assert (job["outcome"], job["has_passcode"], job["version"]) == (None, False, 1)


async def _job_forms(api: Api, tech: StaffSession) -> None:
    job = await advance_to(api, await create_job(api), "awaiting_approval")
    extras = {"stage": "collected", "technician": "tech2.valence", "outcome": "repaired", "paid_cents": "0"}
    version = str(job["version"])
    noted = await tech.post(f"/app/jobs/{job['ref']}/notes", {"note": "hello", "version": version, **extras})
    assert noted.status_code == 303, noted.text
    after = await get_job(api, "manager", job["ref"])
    assert (after["stage"], after["technician"], after["outcome"]) == ("awaiting_approval", job["technician"], None)

    approval = {"approved": "true", "version": str(after["version"]), "source": "customer", "by": "customer"}
    approved = await tech.post(f"/app/jobs/{job['ref']}/approval", {**approval, **extras})
    assert approved.status_code == 303, approved.text
    after = await get_job(api, "manager", job["ref"])
    assert after["approval"]["source"] == "staff" and after["approval"]["by"] == "tech.valence", after["approval"]
    assert (after["stage"], after["technician"], after["outcome"]) == ("awaiting_approval", job["technician"], None)


async def _move_and_estimate_forms(api: Api, tech: StaffSession) -> None:
    job = await create_job(api)
    extras = {"technician": "tech2.valence", "outcome": "repaired", "held_from": "repairing", "stage": "collected"}
    moved = await tech.post(f"/app/jobs/{job['ref']}/move", {"to": "diagnosing", "version": "1", **extras})
    assert moved.status_code == 303, moved.text
    after = await get_job(api, "manager", job["ref"])
    assert (after["stage"], after["technician"], after["outcome"]) == ("diagnosing", "tech.valence", None)

    rows = {"action": "save", "kind-0": "part", "description-0": "screen", "quantity-0": "1", "price-0": "89"}
    privileged = {"approved": "true", "approval": "true", "total_cents": "1", "total-0": "1", **extras}
    saved = await tech.post(
        f"/app/jobs/{job['ref']}/estimate", {**rows, "version": str(after["version"]), **privileged}
    )
    assert saved.status_code == 303, saved.text
    after = await get_job(api, "manager", job["ref"])
    assert (after["estimate"]["total_cents"], after["approval"], after["stage"]) == (8900, None, "diagnosing")
    assert (after["technician"], after["outcome"]) == ("tech.valence", None)


async def _pickup_form(api: Api, desk: StaffSession) -> None:
    job = await advance_to(api, await create_job(api), "ready_for_pickup")
    # A manager's hand-over without the code gives a reason: a front desk's reason is not read.
    form = {"code": "", "reason": "lost the code", "paid": "89", "id_checked": "on", "stage": "collected"}
    refused = await desk.post(f"/app/pickup/{job['ref']}", form)
    assert refused.status_code == 422, refused.status_code
    assert (await get_job(api, "manager", job["ref"]))["stage"] == "ready_for_pickup"


async def _bench_move(api: Api, tech: StaffSession) -> None:
    job = await create_job(api)
    form = {"to": "diagnosing", "version": str(job["version"]), "technician": "tech2.valence", "outcome": "repaired"}
    moved = await tech.post(f"/app/bench/{job['ref']}/move", form)
    assert moved.status_code == 303, moved.text
    after = await get_job(api, "manager", job["ref"])
    assert (after["stage"], after["technician"], after["outcome"]) == ("diagnosing", "tech.valence", None)


PAGE_CASES: dict[str, tuple[str, PageCheck]] = {
    "POST /app/signin": ("desk.valence", _sign_in_as_someone_else),
    "POST /app/counter/intake": ("desk.valence", _counter_intake),
    "POST /app/jobs/{ref:str}/notes": ("tech.valence", _job_forms),
    "POST /app/jobs/{ref:str}/approval": ("tech.valence", _job_forms),
    "POST /app/jobs/{ref:str}/move": ("tech.valence", _move_and_estimate_forms),
    "POST /app/jobs/{ref:str}/estimate": ("tech.valence", _move_and_estimate_forms),
    "POST /app/pickup/{ref:str}": ("desk.valence", _pickup_form),
    "POST /app/bench/{ref:str}/move": ("tech.valence", _bench_move),
}

READ_BY_NAME = "a form read field by field (SignInForm): other fields are never looked at"
EXEMPT = {
    "POST /api/v1/webhooks/suppliers/{supplier_id:str}": "the supplier's signed event (its schema, not staff's)",
    "POST /app/language": READ_BY_NAME + "; sets only the language",
    "POST /app/counter/check": READ_BY_NAME + "; checks one value, stores nothing",
    "POST /app/jobs/{ref:str}/passcode": READ_BY_NAME + "; reads nothing but the session",
    "POST /app/jobs/{ref:str}/parts": READ_BY_NAME + " (sku, quantity, version)",
    "POST /app/jobs/{ref:str}/parts/{line_id:int}/order": READ_BY_NAME + " (supplier_id)",
}
# Handlers that read the body themselves (no `data` parameter), validated like the others.
RAW_BODY_ROUTES = {"POST /track/{token:str}/approval", "POST /api/v1/webhooks/suppliers/{supplier_id:str}"}


async def test_every_body_route_is_covered(api: Api) -> None:
    reading = body_route_keys(api.client.app) | RAW_BODY_ROUTES
    covered = API_CASES.keys() | PAGE_CASES.keys() | EXEMPT.keys()
    assert reading - covered == set(), "routes reading a body with no mass-assignment case"
    assert covered - reading == set()


async def test_extra_form_fields_are_ignored_by_the_pages(api: Api) -> None:
    sessions: dict[str, StaffSession] = {}
    for user, check in dict.fromkeys(PAGE_CASES.values()):
        if user not in sessions:
            sessions[user] = await signed_in(api, user)
        await check(api, sessions[user])
