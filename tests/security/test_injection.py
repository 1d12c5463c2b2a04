"""SQL and HTML injection through every free-text field: each gets a payload of its own (a script tag naming
the field, quotes, an SQL comment, LIKE's wildcards). Stored verbatim, returned verbatim by the API, found
by the search as text (never as a wildcard), and shown escaped on every staff page and the customer's page:
the raw tag never reaches a page. Values a request sends in its URL (searches, references, a redirect
target) are never reflected raw either."""

from __future__ import annotations

from datetime import timedelta
from html import escape as html_escape
from typing import Any
from urllib.parse import quote

import httpx

from tests.api.helpers import JOBS, act, advance_to, create_job, events, get_job, intake_body, move
from tests.api.parts_helpers import (
    MANAGER,
    ORDERS,
    PARTS,
    SKU,
    SUPPLIERS,
    add_lines,
    add_part,
    at,
    change_line,
    new_tenant,
    order,
    pin_stock,
)
from tests.conftest import Api, FakeClock
from tests.sandbox_fixture import SandboxServer
from tests.security.support import signed_in, track_path


def payload(tag: str) -> str:
    """The field's own payload: a script naming it, both quotes, an SQL comment, LIKE's wildcards."""
    return f"<script>{tag}</script>'\";--%_"


SLOT = "<b>sl</b>';--%_"  # a storage slot name has at most 20 characters
ACCESSORY = payload("wa").replace(";", "")  # the counter splits its accessories field at , and ;


def raw(tag: str) -> str:
    return f"<script>{tag}</script>" if tag != "sl" else "<b>sl</b>"


def escaped(tag: str) -> str:
    """How an escaped payload starts on a page, whichever escaper (Jinja's or html.escape) wrote it."""
    return f"&lt;script&gt;{tag}&lt;/script&gt;&#" if tag != "sl" else "&lt;b&gt;sl&lt;/b&gt;&#"


def half_escaped(tag: str) -> str:
    """The tag escaped but a quote left raw: an attribute could be broken out of."""
    return f"{tag}&lt;/script&gt;'" if tag != "sl" else "sl&lt;/b&gt;'"


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_free_text_is_stored_and_returned_verbatim_and_shown_escaped(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    manager = await api.login("manager.valence")
    own = {"storage_slots": [SLOT], "express_capacity": 0}  # no express slot: taking one needs a reason
    slots = await api.client.patch("/api/v1/branches/valence", json=own, headers=manager)
    assert _ok(slots)["storage_slots"] == [SLOT]

    # Chain-wide data: a part of the catalogue and a supplier.
    part = await add_part(api, SKU, payload("pd"))
    described = {"description": payload("pd"), "models": [payload("pm")]}
    models = await api.client.put(f"{PARTS}/{SKU}", json=described, headers=await api.login(MANAGER))
    assert _ok(models)["models"] == [payload("pm")] and part["description"] == payload("pd")
    tenant = new_tenant()
    pin_stock(sandbox, tenant, SKU, 50)
    created = await api.client.post(
        SUPPLIERS,
        json={"name": payload("sn"), "adapter": "rest_json", "base_url": sandbox.tenant_url(tenant), "api_key": "k"},
        headers=await api.login(MANAGER),
    )
    supplier = _ok(created, 201)
    assert supplier["name"] == payload("sn")

    # A job whose customer and device fields all carry a payload, taken through the API.
    customer = {"name": payload("nm"), "phone": "06 12 34 56 78", "email": f"{payload('em')}@example.org"}
    device = {
        **intake_body()["device"],
        "brand": payload("br"),
        "model": payload("md"),
        "colour": payload("co"),
        "condition": payload("cd"),
        "accessories": [payload("ac")],
    }
    fault = {"category": "screen", "description": payload("fd")}
    job = await create_job(api, customer=customer, device=device, fault=fault, passcode=payload("pc"))
    token = track_path(job["tracking_url"])
    job = await move(api, "tech.valence", job, "diagnosing", note=payload("mv"))
    status, job = await act(
        api,
        "tech.valence",
        job,
        "PUT",
        "/estimate",
        {"lines": [{"kind": "part", "description": payload("el"), "unit_price_cents": 8900}], "note": payload("en")},
    )
    assert status == 200, job
    job = await move(api, "tech.valence", job, "awaiting_approval")
    status, job = await act(api, "desk.valence", job, "POST", "/approval", {"approved": True, "note": payload("ap")})
    assert status == 200, job
    status, job = await act(api, "tech.valence", job, "POST", "/notes", {"note": payload("nt")})
    assert status == 200, job
    for to in ("repairing", "quality_check", "ready_for_pickup"):
        job = await move(api, "tech.valence", job, to)

    # The API gives every value back as it was sent.
    job = await get_job(api, "manager.valence", job["ref"])
    assert (job["customer"]["name"], job["customer"]["email"]) == (customer["name"], customer["email"])
    assert {k: job["device"][k] for k in device} == device
    assert job["fault"] == fault and job["pickup_slot"] == SLOT
    assert job["estimate"]["lines"][0]["description"] == payload("el") and job["approval"]["note"] == payload("ap")
    notes = [e["note"] for e in await events(api, "manager.valence", job["ref"])]
    assert {payload("mv"), payload("en"), payload("nt")} <= set(notes), notes
    revealed = await api.client.get(f"{JOBS}/{job['ref']}/passcode", headers=await api.login("tech.valence"))
    assert _ok(revealed)["passcode"] == payload("pc")

    # A job with a part ordered from the supplier, its ETA changed with a note, then late.
    parts_job = await create_job(api)
    added = await add_lines(api, parts_job["ref"], {"sku": SKU})
    line_id = _ok(added, 201)["lines"][0]["id"]
    placed = _ok(await order(api, parts_job["ref"], line_id, supplier["id"]), 201)
    promised = at(placed["lines"][0]["promised_at"])
    eta = (promised + timedelta(days=2)).isoformat()
    changed = await change_line(api, parts_job["ref"], line_id, {"eta": eta, "note": payload("ln")})
    _ok(changed)
    cancelled_job = await create_job(api)
    added = await add_lines(api, cancelled_job["ref"], {"sku": SKU})
    other_line = _ok(added, 201)["lines"][0]["id"]
    other_order = _ok(await order(api, cancelled_job["ref"], other_line, supplier["id"]), 201)
    cancel = await api.client.post(
        f"{ORDERS}/{other_order['id']}/cancel", json={"reason": payload("cr")}, headers=await api.login("tech.valence")
    )
    _ok(cancel)

    # A hand-over without the code, with a manager's reason; the customer's own answer with a note.
    handed = await advance_to(api, await create_job(api), "ready_for_pickup")
    pickup = await api.client.post(
        f"{JOBS}/{handed['ref']}/pickup", json={"reason": payload("pr"), "id_checked": True}, headers=manager
    )
    assert _ok(pickup)["stage"] == "collected"
    answering = await create_job(api)
    answer_link = track_path(answering["tracking_url"])
    await advance_to(api, answering, "awaiting_approval")
    answered = await api.client.post(f"{answer_link}/approval", json={"approved": True, "note": payload("ca")})
    _ok(answered)
    assert (await get_job(api, "manager.valence", answering["ref"]))["approval"]["note"] == payload("ca")

    # An express intake beyond the day's capacity, with the manager's reason.
    overridden = intake_body(tier="express", express_override_reason=payload("xo"))
    beyond = _ok(await api.client.post(JOBS, json=overridden, headers=manager), 201)
    (created,) = [e for e in await events(api, "manager.valence", beyond["ref"]) if e["kind"] == "created"]
    assert created["data"]["express_override"]["reason"] == payload("xo")

    # The same fields typed at the counter.
    desk = await signed_in(api, "desk.valence")
    form = {
        "name": payload("wn"),
        "phone": "06 12 34 56 78",
        "brand": "Apple",
        "model": "iPhone 13",
        "serial_number": "SN-INJ-1",
        "condition": payload("wc"),
        "accessories": ACCESSORY,
        "category": "screen",
        "description": payload("wd"),
        "tier": "standard",
    }
    taken = await desk.post("/app/counter/intake", form)
    assert taken.status_code == 303, taken.text
    counter_ref = taken.headers["location"].split("/")[3]
    counter_job = await get_job(api, "manager.valence", counter_ref)
    assert counter_job["customer"]["name"] == payload("wn") and counter_job["fault"]["description"] == payload("wd")
    assert counter_job["device"]["condition"] == payload("wc")
    assert counter_job["device"]["accessories"] == [ACCESSORY]

    # The search takes the payload as text: LIKE's wildcards match themselves, not everything.
    # (Only the two customers named with a payload have a % or a _ in their name.)
    named = {job["ref"], counter_ref}
    for q, found in ((payload("nm"), {job["ref"]}), ("%", named), ("_", named), ("'", named), ("--", named)):
        listed = await api.client.get(JOBS, params={"q": q}, headers=manager)
        assert {j["ref"] for j in _ok(listed)["items"]} == found, q

    # Every page that shows them, for staff and for the customer.
    clock.now = promised + timedelta(days=3)  # the part is late: on the late-parts page
    staff = await signed_in(api, "manager.valence")
    pages = {
        name: await staff.get(path, **params)
        for name, path, params in (
            ("job", f"/app/jobs/{job['ref']}", {}),
            ("ticket", f"/app/jobs/{job['ref']}/ticket", {}),
            ("parts job", f"/app/jobs/{parts_job['ref']}", {}),
            ("cancelled order's job", f"/app/jobs/{cancelled_job['ref']}", {}),
            ("handed-over job", f"/app/jobs/{handed['ref']}", {}),
            ("answered job", f"/app/jobs/{answering['ref']}", {}),
            ("express job", f"/app/jobs/{beyond['ref']}", {}),
            ("counter's ticket", f"/app/jobs/{counter_ref}/ticket", {}),
            ("search", "/app/counter/search", {"q": payload("nm")}),
            ("board", "/app/board", {}),
            ("bench", "/app/bench", {}),
            ("pickup", "/app/pickup/find", {"ref": job["ref"]}),
            ("late", "/app/late", {}),
            ("manager", "/app/manager", {}),
        )
    }
    pages["tracking"] = await api.client.get(token)
    pages["answered tracking"] = await api.client.get(answer_link)
    for name, page in pages.items():
        assert page.status_code == 200, (name, page.status_code)
        assert page.headers["content-type"].startswith("text/html"), name

    wrong = [
        f"{name}: {what} {tag}"
        for name, page in pages.items()
        for tag in TAGS
        for what, text in (("raw", raw(tag)), ("half-escaped", half_escaped(tag)))
        if text in page.text
    ]
    # Where each value is on show (so the checks above did see it, escaped).
    wrong += [
        f"{tag} not shown escaped on {name}"
        for tag, names in SHOWN.items()
        for name in names
        if escaped(tag) not in pages[name].text
    ]
    assert wrong == [], "\n".join(wrong)


# Where each field is on show; the email, the passcode, a part's models and the reason for an express
# intake beyond capacity are on no page (checked raw-free on all of them all the same).
SHOWN: dict[str, tuple[str, ...]] = {
    "nm": ("job", "ticket", "search", "pickup"),
    "br": ("job", "ticket", "search", "board", "pickup", "tracking"),
    "md": ("job", "ticket", "search", "board", "pickup", "tracking"),
    "co": ("job", "ticket"),
    "cd": ("ticket",),
    "ac": ("ticket",),
    "fd": ("job", "ticket"),
    "mv": ("job",),
    "el": ("job", "tracking"),
    "en": ("job",),
    "ap": ("job",),
    "nt": ("job",),
    "pd": ("job", "parts job"),
    "sn": ("parts job", "cancelled order's job", "late", "manager"),
    "ln": ("parts job",),
    "cr": ("cancelled order's job",),
    "pr": ("handed-over job",),
    "ca": ("answered job",),
    "wn": ("counter's ticket",),
    "wc": ("counter's ticket",),
    "wa": ("counter's ticket",),
    "wd": ("counter's ticket",),
    "sl": ("job", "pickup"),
}
TAGS = (*SHOWN, "em", "pc", "pm", "xo")


def image(tag: str) -> str:
    """A payload with no slash, for a path segment (an encoded slash would not reach the page's route)."""
    return f"<img src=x onerror={tag}>'\";--%_"


# (what must never come back raw, what is sent, page, query): a payload in the URL.
REFLECTED = (
    (raw("rq"), "/app/counter/search", {"q": payload("rq")}),
    (raw("rc"), "/app/pickup/find", {"code": payload("rc")}),
    (raw("rr"), "/app/pickup/find", {"ref": payload("rr")}),
    ("<img src=x onerror=rj>", f"/app/jobs/{quote(image('rj'), safe='')}", {}),
    ("<img src=x onerror=rt>", f"/app/jobs/{quote(image('rt'), safe='')}/ticket", {}),
    ("<img src=x onerror=rg>", f"/app/bench/{quote(image('rg'), safe='')}/move", {}),
    (raw("rn"), "/app/signin", {"next": "/app/" + payload("rn")}),
    (raw("rb"), "/app/board/columns", {"tier": payload("rb")}),
    (raw("rh"), "/app/bench", {"branch": payload("rh")}),
    (raw("rm"), "/app/manager", {"branch": payload("rm")}),
    ("<img src=x onerror=rk>", f"/track/{quote(image('rk'), safe='')}", {}),
)


async def test_values_in_the_url_are_never_reflected_raw(api: Api) -> None:
    staff = await signed_in(api, "manager.valence")
    wrong, echoed = [], []
    for marker, path, params in REFLECTED:
        page = await api.client.get(path) if path.startswith("/track/") else await staff.get(path, **params)
        kind = page.headers.get("content-type", "")
        html = kind.startswith("text/html")
        if html and html_escape(marker, quote=False) in page.text:
            echoed.append(marker)
        if 300 <= page.status_code < 400:
            continue  # a redirect, with no body
        # A JSON answer may quote the request (a problem's `instance`): a browser does not render it.
        if page.status_code >= 500 or not (html or "json" in kind) or (html and marker in page.text):
            wrong.append(f"{path} {params}: {page.status_code} {kind}")
        if html and html_escape(marker, quote=False) + "'" in page.text:
            wrong.append(f"{path} {params}: a quote left raw after the escaped tag")
    assert wrong == [], "\n".join(wrong)
    # The pages that do show what was typed (a search box, a reference, the sign-in's next page) showed it
    # escaped: the checks above saw the value.
    assert set(echoed) == {raw("rq"), raw("rc"), raw("rr"), raw("rn"), raw("rh"), REFLECTED[3][0], REFLECTED[4][0]}


SQL = "' OR '1'='1' --"
# (path, query, the status, whether a 200 must list nothing): SQL in a filter finds nothing, in an id no row.
SQL_PROBES = (
    (JOBS, {"q": SQL}, 200, True),
    (JOBS, {"technician": SQL}, 200, True),
    (JOBS, {"stage": f"received{SQL}"}, 422, False),
    (f"{JOBS}/{quote('AT-000001' + SQL, safe='')}", {}, 404, False),
    (PARTS, {"q": SQL}, 200, True),
    (PARTS, {"model": SQL}, 200, True),
    (f"{PARTS}/{quote(SQL, safe='')}", {}, 422, False),  # not an SKU
    (ORDERS, {"status": f"ordered{SQL}"}, 422, False),
    ("/api/v1/pickup/lookup", {"code": SQL}, 422, False),  # not a pickup code
    ("/api/v1/alerts", {"unacknowledged": SQL}, 422, False),
)


async def test_sql_in_filters_and_ids_finds_nothing(api: Api) -> None:
    await add_part(api, SKU, "screen")
    for _ in range(3):
        await create_job(api)
    headers = await api.login("manager.valence")
    for path, params, status, empty in SQL_PROBES:
        response = await api.client.get(path, params=params, headers=headers)
        assert response.status_code == status, (path, params, response.status_code, response.text[:200])
        if empty:
            body = response.json()
            assert (body["items"] if isinstance(body, dict) else body) == [], (path, params)
    assert len((await api.client.get(JOBS, headers=headers)).json()["items"]) == 3  # the tables are intact
