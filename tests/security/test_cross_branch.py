"""Cross-branch access, route by route: every route the app serves is in ROUTES, either probed with the
resources of another branch (a job, a part line, a supplier order, an alert, a customer, a link, the
branch itself) or exempt with the reason. A route added to the app without a row here fails
`test_every_route_is_classified` until it is probed or its exemption is written down.

A probe sends the same request twice, once naming the other branch's resource and once naming one that
does not exist: the two answers must be alike (status, problem type and title, detail but for the id), so
nothing confirms the resource is there; nothing of it may appear in the answer; and the database must be
byte for byte what it was before the intruder started. For a branch's manager, whose role may do
everything, the answer is the project's 404. Lists are probed for the other branch's rows instead."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx

from service.settings import Settings
from tests.api.helpers import JOBS, PROBLEM_JSON
from tests.api.parts_helpers import SKU, at
from tests.conftest import Api, FakeClock
from tests.sandbox_fixture import SandboxServer
from tests.security.support import (
    Branch,
    StaffSession,
    build_branch,
    changed_tables,
    dump_tables,
    route_keys,
    same_but_ids,
    signed_in,
)

Values = Mapping[str, str]
Body = Callable[[Values], Any]


@dataclass(frozen=True)
class Named:
    """A request naming one of the other branch's resources (placeholders: see `_values`)."""

    method: str
    path: str
    body: Body | None = None  # JSON for the API, a form for a page
    params: Mapping[str, str] = field(default_factory=dict)
    page: bool = False
    expect: int = 404  # what the branch's manager gets (and what a missing resource gets)
    if_match: bool = False  # sends the other branch's job's current ETag


@dataclass(frozen=True)
class Listed:
    """A list or a page of the caller's own branch: the other branch's rows never show in it. `shows` is
    what the other branch's own staff see there (the control that proves the probe could see a leak)."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    page: bool = False
    shows: str | None = None


@dataclass(frozen=True)
class Exempt:
    reason: str


Probe = Named | Listed
PUBLIC = "public: no member of staff, and no branch's data"
CHAIN_WIDE_CATALOGUE = "the parts catalogue is chain-wide (README: parts)"
CHAIN_WIDE_SUPPLIERS = "suppliers serve every branch: chain-wide, secrets never shown (README: parts and suppliers)"
NO_RESOURCE = "signs in or out or sets the language: names no branch's resource"
TOKEN_IS_THE_CREDENTIAL = "the customer's link: the 256-bit token is the credential, staff identity plays no part"


def _form(**fields: str) -> Body:
    return lambda v: {key: value.format(**v) for key, value in fields.items()}


def _version_form(**fields: str) -> Body:
    return _form(version="{version}", **fields)


ESTIMATE_FORM = _version_form(**{"action": "save", "kind-0": "part", "description-0": "screen", "price-0": "10"})
INTAKE = {
    "customer": {"name": "Intruder", "phone": "06 11 22 33 44"},
    "device": {"brand": "Apple", "model": "iPhone 13", "serial_number": "SN-INTRUDER"},
    "fault": {"category": "screen", "description": "cracked"},
    "tier": "standard",
}
INTAKE_FORM = {
    "name": "Intruder",
    "phone": "06 11 22 33 44",
    "brand": "Apple",
    "model": "iPhone 13",
    "serial_number": "SN-INTRUDER",
    "category": "screen",
    "description": "cracked",
    "tier": "standard",
    "branch": "{branch}",
}


ROUTES: dict[str, list[Probe] | Exempt] = {
    # --- jobs -------------------------------------------------------------------------------------------
    "POST /api/v1/jobs": [
        # Staff take devices in for their own branch: naming another is refused like naming none that exists.
        Named("POST", JOBS, lambda v: {**INTAKE, "branch": v["branch"]}, expect=422),
    ],
    "GET /api/v1/jobs": [
        Listed("GET", JOBS, {"q": "{marker}"}, shows="marker"),
        Listed("GET", JOBS, {"q": "{ref}"}, shows="ref"),
        Listed("GET", JOBS, {"limit": "100"}, shows="ref"),
    ],
    "GET /api/v1/jobs/{ref:str}": [Named("GET", "/api/v1/jobs/{ref}")],
    "GET /api/v1/jobs/{ref:str}/events": [Named("GET", "/api/v1/jobs/{ref}/events")],
    "GET /api/v1/jobs/{ref:str}/passcode": [Named("GET", "/api/v1/jobs/{ref}/passcode")],
    "POST /api/v1/jobs/{ref:str}/transitions": [
        Named("POST", "/api/v1/jobs/{ref}/transitions", lambda v: {"to": "on_hold"}, if_match=True)
    ],
    "PUT /api/v1/jobs/{ref:str}/estimate": [
        Named(
            "PUT",
            "/api/v1/jobs/{ref}/estimate",
            lambda v: {"lines": [{"kind": "part", "description": "screen", "unit_price_cents": 1}]},
            if_match=True,
        )
    ],
    "POST /api/v1/jobs/{ref:str}/approval": [
        Named("POST", "/api/v1/jobs/{ref}/approval", lambda v: {"approved": True}, if_match=True)
    ],
    "POST /api/v1/jobs/{ref:str}/assignment": [
        Named("POST", "/api/v1/jobs/{ref}/assignment", lambda v: {"technician": v["own_tech"]}, if_match=True),
        # One's own job, assigned to the other branch's technician: refused as an unknown name would be.
        Named(
            "POST",
            "/api/v1/jobs/{own_ref}/assignment",
            lambda v: {"technician": v["tech"]},
            expect=422,
            if_match=True,
        ),
    ],
    "POST /api/v1/jobs/{ref:str}/notes": [
        Named("POST", "/api/v1/jobs/{ref}/notes", lambda v: {"note": "from the other shop"}, if_match=True)
    ],
    "POST /api/v1/jobs/{ref:str}/pickup": [
        Named("POST", "/api/v1/jobs/{ready}/pickup", lambda v: {"reason": "lost the code", "id_checked": True})
    ],
    "GET /api/v1/pickup/lookup": [Named("GET", "/api/v1/pickup/lookup", params={"ref": "{ready}"})],
    "GET /api/v1/jobs/{ref:str}/tracking": [Named("GET", "/api/v1/jobs/{ref}/tracking")],
    "POST /api/v1/jobs/{ref:str}/tracking": [Named("POST", "/api/v1/jobs/{ref}/tracking")],
    "DELETE /api/v1/jobs/{ref:str}/tracking": [Named("DELETE", "/api/v1/jobs/{ref}/tracking")],
    "POST /api/v1/customers/{customer_id:int}/erasure": [Named("POST", "/api/v1/customers/{customer}/erasure")],
    # --- parts ------------------------------------------------------------------------------------------
    "GET /api/v1/jobs/{ref:str}/parts": [Named("GET", "/api/v1/jobs/{parts_ref}/parts")],
    "POST /api/v1/jobs/{ref:str}/parts": [
        Named("POST", "/api/v1/jobs/{parts_ref}/parts", lambda v: {"sku": SKU, "quantity": 1})
    ],
    "PATCH /api/v1/jobs/{ref:str}/parts/{line_id:int}": [
        Named("PATCH", "/api/v1/jobs/{parts_ref}/parts/{line}", lambda v: {"status": "cancelled"}),
        # The other branch's line under one's own job's reference.
        Named("PATCH", "/api/v1/jobs/{own_ref}/parts/{line}", lambda v: {"status": "cancelled"}),
    ],
    "POST /api/v1/jobs/{ref:str}/parts/{line_id:int}/quotes": [
        Named("POST", "/api/v1/jobs/{parts_ref}/parts/{line}/quotes"),
        Named("POST", "/api/v1/jobs/{own_ref}/parts/{line}/quotes"),
    ],
    "POST /api/v1/jobs/{ref:str}/parts/{line_id:int}/order": [
        Named("POST", "/api/v1/jobs/{parts_ref}/parts/{line}/order", lambda v: {"supplier_id": int(v["supplier"])}),
        Named("POST", "/api/v1/jobs/{own_ref}/parts/{line}/order", lambda v: {"supplier_id": int(v["supplier"])}),
    ],
    "GET /api/v1/parts/late": [Listed("GET", "/api/v1/parts/late", shows="parts_ref")],
    "GET /api/v1/supplier-orders": [Listed("GET", "/api/v1/supplier-orders", shows="po")],
    "GET /api/v1/supplier-orders/{order_id:int}": [Named("GET", "/api/v1/supplier-orders/{order}")],
    "POST /api/v1/supplier-orders/{order_id:int}/receipts": [
        Named("POST", "/api/v1/supplier-orders/{order}/receipts"),
        # One's own order, receiving the other branch's line: refused as a line it does not have.
        Named(
            "POST",
            "/api/v1/supplier-orders/{own_order}/receipts",
            lambda v: {"lines": [{"line_id": int(v["line"])}]},
            expect=422,
        ),
    ],
    "POST /api/v1/supplier-orders/{order_id:int}/cancel": [Named("POST", "/api/v1/supplier-orders/{order}/cancel")],
    # --- alerts, branches, queue ------------------------------------------------------------------------
    "GET /api/v1/alerts": [Listed("GET", "/api/v1/alerts", shows="alert_ref")],
    "POST /api/v1/alerts/{alert_id:int}/acknowledge": [Named("POST", "/api/v1/alerts/{alert}/acknowledge")],
    "GET /api/v1/branches/{code:str}": [Named("GET", "/api/v1/branches/{branch}")],
    "PATCH /api/v1/branches/{code:str}": [
        Named("PATCH", "/api/v1/branches/{branch}", lambda v: {"express_capacity": 0})
    ],
    "GET /api/v1/express/capacity": [
        Named("GET", "/api/v1/express/capacity", params={"branch": "{branch}"}),
        Listed("GET", "/api/v1/express/capacity", shows="branch"),
    ],
    "GET /api/v1/queue": [
        Named("GET", "/api/v1/queue", params={"branch": "{branch}"}),
        Listed("GET", "/api/v1/queue", shows="parts_ref"),
    ],
    # --- chain-wide and public --------------------------------------------------------------------------
    "POST /api/v1/auth/token": Exempt(NO_RESOURCE),
    "GET /api/v1/parts": Exempt(CHAIN_WIDE_CATALOGUE),
    "POST /api/v1/parts": Exempt(CHAIN_WIDE_CATALOGUE),
    "GET /api/v1/parts/{sku:str}": Exempt(CHAIN_WIDE_CATALOGUE),
    "PUT /api/v1/parts/{sku:str}": Exempt(CHAIN_WIDE_CATALOGUE),
    "GET /api/v1/suppliers": Exempt(CHAIN_WIDE_SUPPLIERS),
    "POST /api/v1/suppliers": Exempt(CHAIN_WIDE_SUPPLIERS),
    "GET /api/v1/suppliers/{supplier_id:int}": Exempt(CHAIN_WIDE_SUPPLIERS),
    "PATCH /api/v1/suppliers/{supplier_id:int}": Exempt(CHAIN_WIDE_SUPPLIERS),
    "GET /api/v1/suppliers/{supplier_id:int}/scorecard": Exempt(CHAIN_WIDE_SUPPLIERS),
    "GET /api/v1/suppliers/{supplier_id:int}/skus": Exempt(CHAIN_WIDE_SUPPLIERS),
    "PUT /api/v1/suppliers/{supplier_id:int}/skus/{supplier_sku:str}": Exempt(CHAIN_WIDE_SUPPLIERS),
    "POST /api/v1/webhooks/suppliers/{supplier_id:str}": Exempt(
        "the supplier's own signed pushes (tests/api/test_webhooks.py): no staff identity, no branch"
    ),
    "GET /track/{token:str}": Exempt(TOKEN_IS_THE_CREDENTIAL),
    "POST /track/{token:str}/approval": Exempt(TOKEN_IS_THE_CREDENTIAL),
    "GET /metrics": Exempt(
        "monitoring: chain-wide counts for Prometheus (ATELIER_METRICS_TOKEN), no job, customer or staff named"
    ),
    "GET /health/live": Exempt(PUBLIC),
    "GET /health/ready": Exempt(PUBLIC),
    "GET /": Exempt("redirects to the staff pages"),
    "GET /static/{file_path:path}": Exempt(PUBLIC),
    "HEAD /static/{file_path:path}": Exempt(PUBLIC),
    **{
        f"GET /schema{suffix}": Exempt("the OpenAPI schema: public, describes no data")
        for suffix in (
            "",
            "/elements",
            "/oauth2-redirect.html",
            "/openapi.json",
            "/openapi.yaml",
            "/openapi.yml",
            "/rapidoc",
            "/redoc",
            "/swagger",
            "/{path:str}",
        )
    },
    # --- the staff pages --------------------------------------------------------------------------------
    "GET /app": Exempt("redirects to the board"),
    "GET /app/signin": Exempt(NO_RESOURCE),
    "POST /app/signin": Exempt(NO_RESOURCE),
    "POST /app/signout": Exempt(NO_RESOURCE),
    "POST /app/language": Exempt(NO_RESOURCE),
    "POST /app/counter/check": Exempt("checks one typed IMEI or phone number: reads nothing stored"),
    "GET /app/board": [Listed("GET", "/app/board", page=True, shows="ref")],
    "GET /app/board/columns": [Listed("GET", "/app/board/columns", page=True, shows="ref")],
    "GET /app/bench": [
        Listed("GET", "/app/bench", page=True, shows="parts_ref"),
        Named("GET", "/app/bench", params={"branch": "{branch}"}, page=True),
    ],
    "GET /app/bench/rows": [
        Listed("GET", "/app/bench/rows", page=True, shows="parts_ref"),
        Named("GET", "/app/bench/rows", params={"branch": "{branch}"}, page=True),
    ],
    "GET /app/bench/{ref:str}/move": [Named("GET", "/app/bench/{ref}/move", page=True, expect=303)],
    "POST /app/bench/{ref:str}/move": [Named("POST", "/app/bench/{ref}/move", _version_form(to="on_hold"), page=True)],
    "GET /app/late": [Listed("GET", "/app/late", page=True, shows="parts_ref")],
    "GET /app/late/table": [Listed("GET", "/app/late/table", page=True, shows="parts_ref")],
    "GET /app/manager": [
        Listed("GET", "/app/manager", page=True),
        Named("GET", "/app/manager", params={"branch": "{branch}"}, page=True),
    ],
    "GET /app/counter": [Listed("GET", "/app/counter", page=True)],
    "GET /app/counter/express": [Listed("GET", "/app/counter/express", page=True)],
    "GET /app/counter/search": [
        Listed("GET", "/app/counter/search", {"q": "{marker}"}, page=True, shows="marker"),
        Listed("GET", "/app/counter/search", {"q": "{ref}"}, page=True, shows="ref"),
    ],
    "POST /app/counter/intake": [Named("POST", "/app/counter/intake", _form(**INTAKE_FORM), page=True, expect=422)],
    "GET /app/pickup": [Listed("GET", "/app/pickup", page=True)],
    "GET /app/pickup/find": [Named("GET", "/app/pickup/find", params={"ref": "{ready}"}, page=True)],
    "POST /app/pickup/{ref:str}": [
        Named("POST", "/app/pickup/{ready}", _form(reason="lost the code", id_checked="on", paid=""), page=True)
    ],
    "GET /app/jobs/{ref:str}": [Named("GET", "/app/jobs/{ref}", page=True)],
    "GET /app/jobs/{ref:str}/ticket": [Named("GET", "/app/jobs/{ref}/ticket", page=True)],
    **{
        f"GET /app/jobs/{{ref:str}}/{form}": [Named("GET", f"/app/jobs/{{ref}}/{form}", page=True, expect=303)]
        for form in ("move", "estimate", "approval", "notes", "passcode")
    },
    "POST /app/jobs/{ref:str}/move": [Named("POST", "/app/jobs/{ref}/move", _version_form(to="on_hold"), page=True)],
    "POST /app/jobs/{ref:str}/estimate": [Named("POST", "/app/jobs/{ref}/estimate", ESTIMATE_FORM, page=True)],
    "POST /app/jobs/{ref:str}/approval": [
        Named("POST", "/app/jobs/{ref}/approval", _version_form(approved="true"), page=True)
    ],
    "POST /app/jobs/{ref:str}/notes": [
        Named("POST", "/app/jobs/{ref}/notes", _version_form(note="from the other shop"), page=True)
    ],
    "POST /app/jobs/{ref:str}/passcode": [Named("POST", "/app/jobs/{ref}/passcode", _form(), page=True)],
    "GET /app/jobs/{ref:str}/parts": [Named("GET", "/app/jobs/{parts_ref}/parts", page=True, expect=303)],
    "POST /app/jobs/{ref:str}/parts": [
        Named("POST", "/app/jobs/{parts_ref}/parts", _version_form(sku=SKU, quantity="1"), page=True)
    ],
    **{
        f"GET /app/jobs/{{ref:str}}/parts/{{line_id:int}}/{action}": [
            Named("GET", f"/app/jobs/{{parts_ref}}/parts/{{line}}/{action}", page=True, expect=303)
        ]
        for action in ("quotes", "order", "receive")
    },
    "POST /app/jobs/{ref:str}/parts/{line_id:int}/quotes": [
        Named("POST", "/app/jobs/{parts_ref}/parts/{line}/quotes", _form(), page=True),
        Named("POST", "/app/jobs/{own_ref}/parts/{line}/quotes", _form(), page=True),
    ],
    "POST /app/jobs/{ref:str}/parts/{line_id:int}/order": [
        Named("POST", "/app/jobs/{parts_ref}/parts/{line}/order", _form(supplier_id="{supplier}"), page=True),
        Named("POST", "/app/jobs/{own_ref}/parts/{line}/order", _form(supplier_id="{supplier}"), page=True),
    ],
    "POST /app/jobs/{ref:str}/parts/{line_id:int}/receive": [
        Named("POST", "/app/jobs/{parts_ref}/parts/{line}/receive", _form(), page=True),
        Named("POST", "/app/jobs/{own_ref}/parts/{line}/receive", _form(), page=True),
    ],
}


def _values(other: Branch, own: Branch) -> dict[str, str]:
    """What the placeholders name: the other branch's resources, and the intruder's own."""
    return {
        "ref": other.job["ref"],
        "version": str(other.job["version"]),
        "ready": other.ready["ref"],
        "parts_ref": other.parts_job["ref"],
        "line": str(other.line_id),
        "order": str(other.order["id"]),
        "po": other.order["po"],
        "alert": str(other.alert_id),
        "alert_ref": other.alert_ref,
        "customer": str(other.customer_id),
        "branch": other.code,
        "tech": other.tech,
        "marker": other.marker,
        "passcode": other.passcode,
        "supplier": str(other.supplier["id"]),
        "own_ref": own.job["ref"],
        "own_order": str(own.order["id"]),
        "own_tech": own.tech,
    }


# Stand-ins that exist nowhere; the intruder's own resources and the chain-wide supplier stay as they are.
MISSING = {
    "ref": "AT-999999",
    "ready": "AT-999998",
    "parts_ref": "AT-999997",
    "line": "999999",
    "order": "999999",
    "alert": "999999",
    "customer": "999999",
    "branch": "nowhere",
    "tech": "tech.nowhere",
}
# Whatever of the other branch an answer must never hold.
FOREIGN = ("ref", "ready", "parts_ref", "alert_ref", "po", "marker", "passcode")


def _leaks(probe: Probe, real: Values, response: httpx.Response) -> list[str]:
    """What of the other branch the answer holds, beyond what the request itself said (echoed back)."""
    body = probe.body(real) if isinstance(probe, Named) and probe.body else None
    said = f"{probe.path.format(**real)} {[v.format(**real) for v in probe.params.values()]} {body}"
    return [name for name in FOREIGN if real[name] in response.text and real[name] not in said]


def _missing(real: Values) -> dict[str, str]:
    return {**real, **MISSING}


class Visitor:
    """One member of staff on the API (bearer token) and on the pages (cookie session)."""

    def __init__(self, api: Api, username: str, session: StaffSession) -> None:
        self.api, self.username, self.session = api, username, session

    async def send(self, probe: Probe, values: Values) -> httpx.Response:
        path = probe.path.format(**values)
        params = {key: value.format(**values) for key, value in probe.params.items()}
        body = probe.body(values) if isinstance(probe, Named) and probe.body else None
        if probe.page:
            return await self.session.request(probe.method, path, form=body, params=params)
        headers = await self.api.login(self.username)
        if isinstance(probe, Named) and probe.if_match:
            headers = {**headers, "If-Match": f'"v{values["version"]}"'}
        return await self.api.client.request(probe.method, path, json=body, params=params, headers=headers)


def _probes() -> list[tuple[str, Probe]]:
    return [(key, probe) for key, row in ROUTES.items() if not isinstance(row, Exempt) for probe in row]


async def _alike(intruder: Visitor, key: str, probe: Named, real: Values, manager: bool) -> list[str]:
    """What is wrong with the answer to `probe` (nothing: an empty list)."""
    found = await intruder.send(probe, real)
    missing = _missing(real)
    absent = await intruder.send(probe, missing)
    where = f"{intruder.username}: {key} ({probe.path})"
    wrong = []
    if found.status_code != absent.status_code:
        wrong.append(f"{where}: {found.status_code} for the other branch's, {absent.status_code} for none")
    if found.status_code < 300 or (not probe.page and found.status_code < 400):
        wrong.append(f"{where}: answered {found.status_code}: {found.text[:200]}")
    if manager and found.status_code != probe.expect:
        wrong.append(f"{where}: {found.status_code}, expected {probe.expect}: {found.text[:200]}")
    if found.headers.get("content-type", "").startswith(PROBLEM_JSON) and absent.status_code == found.status_code:
        one, other = found.json(), absent.json()
        shown = {k: same_but_ids(str(one.get(k)), real, missing) for k in ("type", "title", "detail")}
        if shown != {k: str(other.get(k)) for k in ("type", "title", "detail")}:
            wrong.append(f"{where}: the problem tells them apart: {one} / {other}")
    if found.status_code in (301, 302, 303, 307, 308):
        location = same_but_ids(found.headers.get("location", ""), real, missing)
        if location != absent.headers.get("location", ""):
            wrong.append(f"{where}: redirects elsewhere than for none: {found.headers.get('location')}")
    wrong += [f"{where}: the answer holds the other branch's {name}" for name in _leaks(probe, real, found)]
    return wrong


async def _listed(intruder: Visitor, key: str, probe: Listed, real: Values) -> list[str]:
    response = await intruder.send(probe, real)
    where = f"{intruder.username}: {key} ({probe.path} {dict(probe.params)})"
    wrong = [f"{where}: holds the other branch's {name}" for name in _leaks(probe, real, response)]
    if response.status_code >= 500:
        wrong.append(f"{where}: answered {response.status_code}")
    return wrong


async def test_every_route_is_classified(api: Api) -> None:
    served = route_keys(api.client.app)
    assert served - ROUTES.keys() == set(), "routes not in ROUTES: probe them or exempt them with the reason"
    assert ROUTES.keys() - served == set(), "ROUTES names routes the app no longer serves"


async def test_another_branchs_resources_are_neither_revealed_nor_changed(
    api: Api, sandbox: SandboxServer, settings: Settings, clock: FakeClock
) -> None:
    other = await build_branch(api, sandbox, "guilherand", desk="desk.guilherand", tech="tech.guilherand")
    own = await build_branch(api, sandbox, "valence", desk="desk.valence", tech="tech.valence")
    real = _values(other, own)
    clock.now = at(other.order["lines"][0]["promised_at"]) + timedelta(days=1)  # the part is late: listed

    # Controls, where it is a read: the chain's manager finds each resource, the other branch's own desk
    # sees its rows in each list. The probes below could see a leak.
    chain = Visitor(api, "manager", await signed_in(api, "manager"))
    desk = Visitor(api, other.desk, await signed_in(api, other.desk))
    blind: list[str] = []
    for key, probe in _probes():
        if probe.method != "GET" or "passcode" in probe.path:
            continue  # reading the passcode is recorded: no control
        if isinstance(probe, Listed):
            response = await desk.send(probe, real)
            if probe.shows is not None and real[probe.shows] not in response.text:
                blind.append(f"{key} {dict(probe.params)}: {other.desk} does not see {probe.shows}")
        elif "own_" not in probe.path:
            response = await chain.send(probe, real)
            if response.status_code >= 400:
                blind.append(f"{key} {dict(probe.params)}: the chain's manager gets {response.status_code}")
    assert blind == [], "\n".join(blind)

    # The intruders: a branch's manager (whose role may do everything), its front desk and its technician.
    for username in ("manager.valence", "desk.valence", "tech.valence"):
        intruder = Visitor(api, username, await signed_in(api, username))
        before = await dump_tables(settings)
        wrong: list[str] = []
        for key, probe in _probes():
            if isinstance(probe, Named):
                wrong += await _alike(intruder, key, probe, real, manager=username == "manager.valence")
            else:
                wrong += await _listed(intruder, key, probe, real)
        assert wrong == [], "\n".join(wrong)
        assert changed_tables(before, await dump_tables(settings)) == [], username
