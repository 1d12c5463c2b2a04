"""Signed supplier webhooks (Standard Webhooks 1.0) through the API: authentication on the raw bytes,
exactly-once application, secret rotation, rejections that write nothing, and order events applied to
orders placed through the API (suppliers on supplier-sandbox tenants)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from integrations.webhooks import sign
from service.persistence.db import create_engine
from service.settings import Settings
from service.uow import Database
from tests.api.helpers import PROBLEM_JSON, assert_problem
from tests.api.parts_helpers import (
    MANAGER,
    NEW_SECRET,
    OLD_SECRET,
    ORDERS,
    SKU,
    SUPPLIERS,
    VECTOR_SECRET,
    PlacedOrder,
    add_part,
    add_supplier,
    at,
    event_body,
    events_of,
    get_order,
    good_then_broken,
    iso,
    job_parts,
    job_with_lines,
    line_of,
    msg_id,
    new_tenant,
    order,
    ordered,
    pin_stock,
    place_order,
    push,
    sandbox_orders,
    signed_headers,
    supplier_skus,
)
from tests.conftest import Api, FakeClock
from tests.sandbox_fixture import SandboxServer

VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.fixture(autouse=True)
def real_time(clock: FakeClock) -> FakeClock:
    """Webhook timestamps are checked against the app's clock (±5 minutes)."""
    clock.now = datetime.now(UTC).replace(microsecond=0)
    return clock


def stock_body(when: datetime, available: int, sku: str = SKU, **extra: Any) -> bytes:
    return event_body("stock.changed", when, sku=sku, available=available, **extra)


async def stock_of(api: Api, supplier_id: int, sku: str = SKU) -> int | None:
    item = (await supplier_skus(api, supplier_id)).get(sku)
    return None if item is None else item["available"]


async def supplier_with(api: Api, sandbox: SandboxServer, *secrets: str, name: str | None = None) -> dict[str, Any]:
    return await add_supplier(api, sandbox, new_tenant(), secrets=secrets, name=name)


def accepted(response: httpx.Response, kind: str, outcome: str, webhook_id: str) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {"id": webhook_id, "type": kind, "outcome": outcome}


# --- authentication ----------------------------------------------------------------------------------


async def test_the_standard_webhooks_test_vector_is_authentic(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE
    await add_part(api)
    supplier = await supplier_with(api, sandbox, VECTOR_SECRET)
    clock.now = datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC)
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
        "content-type": "application/json",
    }

    response = await push(api, supplier["id"], VECTOR_BODY, headers)

    # Authentic (not 401), but `{"test": ...}` is no supplier event: the payload is refused, unapplied.
    problem = assert_problem(response, 400)
    assert "type" in problem["detail"]
    # Nothing was recorded under its id: a real event with the same id is applied afterwards.
    body = stock_body(clock.now, 6)
    redelivered = await push(api, supplier["id"], body, signed_headers(VECTOR_SECRET, VECTOR_ID, clock.now, body))
    accepted(redelivered, "stock.changed", "applied", VECTOR_ID)
    assert await stock_of(api, supplier["id"]) == 6


async def test_stock_changed_is_applied_and_unknown_supplier_skus_are_kept_for_review(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    await add_part(api)
    supplier = await supplier_with(api, sandbox, OLD_SECRET)
    known, unknown = msg_id(), msg_id()
    body = stock_body(clock.now, 7, price_cents=9100, currency="EUR", eta=iso(clock.now + timedelta(days=1)))
    other = stock_body(clock.now, 2, sku="ACME-GADGET-9")

    first = await push(api, supplier["id"], body, signed_headers(OLD_SECRET, known, clock.now, body))
    second = await push(api, supplier["id"], other, signed_headers(OLD_SECRET, unknown, clock.now, other))

    accepted(first, "stock.changed", "applied", known)
    accepted(second, "stock.changed", "applied", unknown)
    skus = await supplier_skus(api, supplier["id"])
    assert skus[SKU]["sku"] == SKU and skus[SKU]["available"] == 7
    assert at(skus[SKU]["observed_at"]) == clock.now
    assert skus["ACME-GADGET-9"]["sku"] is None and skus["ACME-GADGET-9"]["available"] == 2
    review = await api.client.get(
        f"{SUPPLIERS}/{supplier['id']}/skus", params={"unmapped": "true"}, headers=await api.login(MANAGER)
    )
    assert [item["supplier_sku"] for item in review.json()] == ["ACME-GADGET-9"]


async def test_a_redelivery_with_the_same_id_changes_nothing(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    await add_part(api)
    supplier = await supplier_with(api, sandbox, OLD_SECRET)
    webhook_id = msg_id()
    first = stock_body(clock.now, 7)
    accepted(
        await push(api, supplier["id"], first, signed_headers(OLD_SECRET, webhook_id, clock.now, first)),
        "stock.changed",
        "applied",
        webhook_id,
    )

    same = await push(api, supplier["id"], first, signed_headers(OLD_SECRET, webhook_id, clock.now, first))
    clock.advance(seconds=30)
    changed = stock_body(clock.now, 3)  # a newer stock figure, but under the id already applied
    again = await push(api, supplier["id"], changed, signed_headers(OLD_SECRET, webhook_id, clock.now, changed))

    accepted(same, "stock.changed", "duplicate", webhook_id)
    accepted(again, "stock.changed", "duplicate", webhook_id)
    assert await stock_of(api, supplier["id"]) == 7


async def test_rotating_secrets_accepts_both_then_only_the_new(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    await add_part(api)
    supplier = await supplier_with(api, sandbox, OLD_SECRET)
    path = f"{SUPPLIERS}/{supplier['id']}"
    both = await api.client.patch(
        path, json={"webhook_secrets": [NEW_SECRET, OLD_SECRET]}, headers=await api.login(MANAGER)
    )
    assert both.status_code == 200 and both.json()["webhook_secret_count"] == 2, both.text
    assert NEW_SECRET not in both.text and OLD_SECRET not in both.text  # write-only

    for available, secret in ((1, OLD_SECRET), (2, NEW_SECRET)):
        body, webhook_id = stock_body(clock.now, available), msg_id()
        response = await push(api, supplier["id"], body, signed_headers(secret, webhook_id, clock.now, body))
        accepted(response, "stock.changed", "applied", webhook_id)
        assert await stock_of(api, supplier["id"]) == available
        clock.advance(seconds=1)

    only_new = await api.client.patch(path, json={"webhook_secrets": [NEW_SECRET]}, headers=await api.login(MANAGER))
    assert only_new.status_code == 200 and only_new.json()["webhook_secret_count"] == 1, only_new.text

    body, webhook_id = stock_body(clock.now, 3), msg_id()
    stale_secret = await push(api, supplier["id"], body, signed_headers(OLD_SECRET, webhook_id, clock.now, body))
    assert_problem(stale_secret, 401)
    assert await stock_of(api, supplier["id"]) == 2
    fresh = await push(api, supplier["id"], body, signed_headers(NEW_SECRET, webhook_id, clock.now, body))
    accepted(fresh, "stock.changed", "applied", webhook_id)  # the refused push left no trace
    assert await stock_of(api, supplier["id"]) == 3


async def test_any_one_of_several_signatures_may_match(api: Api, sandbox: SandboxServer, clock: FakeClock) -> None:
    await add_part(api)
    supplier = await supplier_with(api, sandbox, NEW_SECRET)
    body, webhook_id = stock_body(clock.now, 4), msg_id()
    seconds = int(clock.now.timestamp())
    good = sign(NEW_SECRET, webhook_id, seconds, body)
    wrong = sign(OLD_SECRET, webhook_id, seconds, body)

    only_wrong = {**signed_headers(OLD_SECRET, webhook_id, seconds, body), "webhook-signature": f"{wrong} v2,abc"}
    refused = await push(api, supplier["id"], body, only_wrong)
    mixed = {**signed_headers(NEW_SECRET, webhook_id, seconds, body), "webhook-signature": f"v2,abc {wrong} {good}"}
    response = await push(api, supplier["id"], body, mixed)

    assert_problem(refused, 401)
    accepted(response, "stock.changed", "applied", webhook_id)
    assert await stock_of(api, supplier["id"]) == 4


def _tampered(headers: dict[str, str], body: bytes) -> tuple[str, dict[str, str], bytes]:
    return "same", headers, body.replace(b'"available": 5', b'"available": 500')


def _wrong_secret(headers: dict[str, str], body: bytes) -> tuple[str, dict[str, str], bytes]:
    signature = sign(OLD_SECRET, headers["webhook-id"], int(headers["webhook-timestamp"]), body)
    return "same", {**headers, "webhook-signature": signature}, body


def _without(name: str) -> Any:
    def drop(headers: dict[str, str], body: bytes) -> tuple[str, dict[str, str], bytes]:
        return "same", {k: v for k, v in headers.items() if k != name}, body

    return drop


def _shifted(seconds: int) -> Any:
    def shift(headers: dict[str, str], body: bytes) -> tuple[str, dict[str, str], bytes]:
        stamp = int(headers["webhook-timestamp"]) + seconds
        return "same", signed_headers(NEW_SECRET, headers["webhook-id"], stamp, body), body

    return shift


def _garbled_timestamp(headers: dict[str, str], body: bytes) -> tuple[str, dict[str, str], bytes]:
    return "same", {**headers, "webhook-timestamp": "yesterday"}, body


def _to_supplier(target: str) -> Any:
    def elsewhere(headers: dict[str, str], body: bytes) -> tuple[str, dict[str, str], bytes]:
        return target, headers, body

    return elsewhere


@pytest.mark.parametrize(
    ("spoil", "status"),
    [
        pytest.param(_tampered, 401, id="tampered-body"),
        pytest.param(_wrong_secret, 401, id="wrong-secret"),
        pytest.param(_without("webhook-id"), 400, id="missing-id"),
        pytest.param(_without("webhook-timestamp"), 400, id="missing-timestamp"),
        pytest.param(_without("webhook-signature"), 400, id="missing-signature"),
        pytest.param(_garbled_timestamp, 400, id="garbled-timestamp"),
        pytest.param(_shifted(-301), 401, id="stale"),
        pytest.param(_shifted(301), 401, id="future"),
        pytest.param(_to_supplier("999999"), 401, id="unknown-supplier"),
        pytest.param(_to_supplier("acme"), 401, id="non-numeric-supplier"),
        pytest.param(_to_supplier("\u00b2"), 401, id="superscript-digit-supplier"),
    ],
)
async def test_a_push_that_is_not_authentic_is_refused_and_writes_nothing(
    api: Api, sandbox: SandboxServer, clock: FakeClock, spoil: Any, status: int
) -> None:
    await add_part(api)
    supplier = await supplier_with(api, sandbox, NEW_SECRET)
    webhook_id = msg_id()
    body = stock_body(clock.now, 5)
    headers = signed_headers(NEW_SECRET, webhook_id, clock.now, body)
    target, bad_headers, bad_body = spoil(headers, body)

    refused = await push(api, supplier["id"] if target == "same" else target, bad_body, bad_headers)

    assert_problem(refused, status)
    assert refused.headers["content-type"].startswith(PROBLEM_JSON)
    assert await stock_of(api, supplier["id"]) is None
    # No webhook event was recorded under that id: the genuine push with the same id is applied.
    genuine = await push(api, supplier["id"], body, headers)
    accepted(genuine, "stock.changed", "applied", webhook_id)
    assert await stock_of(api, supplier["id"]) == 5


async def test_the_same_webhook_id_from_two_suppliers_is_two_events(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    await add_part(api)
    first = await supplier_with(api, sandbox, NEW_SECRET)
    second = await supplier_with(api, sandbox, OLD_SECRET)
    webhook_id = msg_id()

    for supplier, secret, available in ((first, NEW_SECRET, 4), (second, OLD_SECRET, 9)):
        body = stock_body(clock.now, available)
        response = await push(api, supplier["id"], body, signed_headers(secret, webhook_id, clock.now, body))
        accepted(response, "stock.changed", "applied", webhook_id)

    assert await stock_of(api, first["id"]) == 4
    assert await stock_of(api, second["id"]) == 9


async def test_an_older_stock_report_arriving_late_does_not_overwrite_a_newer_one(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    await add_part(api)
    supplier = await supplier_with(api, sandbox, NEW_SECRET)
    newer = stock_body(clock.now, 2)
    older = stock_body(clock.now - timedelta(minutes=2), 11)

    for body in (newer, older):
        webhook_id = msg_id()
        response = await push(api, supplier["id"], body, signed_headers(NEW_SECRET, webhook_id, clock.now, body))
        accepted(response, "stock.changed", "applied", webhook_id)

    assert await stock_of(api, supplier["id"]) == 2


async def test_a_supplier_without_a_secret_or_inactive_is_refused(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    await add_part(api)
    no_secret = await supplier_with(api, sandbox)
    inactive = await supplier_with(api, sandbox, NEW_SECRET)
    off = await api.client.patch(
        f"{SUPPLIERS}/{inactive['id']}", json={"active": False}, headers=await api.login(MANAGER)
    )
    assert off.status_code == 200, off.text
    body, webhook_id = stock_body(clock.now, 5), msg_id()

    for supplier in (no_secret, inactive):
        response = await push(api, supplier["id"], body, signed_headers(NEW_SECRET, webhook_id, clock.now, body))
        assert_problem(response, 401)
        assert await stock_of(api, supplier["id"]) is None


async def test_an_authentic_push_with_an_invalid_event_is_400_and_writes_nothing(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    await add_part(api)
    supplier = await supplier_with(api, sandbox, NEW_SECRET)
    webhook_id = msg_id()
    for bad in (
        event_body("stock.changed", clock.now, sku=SKU, available=-1),
        event_body("order.teleported", clock.now, order_id="x"),
        b"not json at all",
    ):
        response = await push(api, supplier["id"], bad, signed_headers(NEW_SECRET, webhook_id, clock.now, bad))
        assert_problem(response, 400)

    body = stock_body(clock.now, 5)
    genuine = await push(api, supplier["id"], body, signed_headers(NEW_SECRET, webhook_id, clock.now, body))
    accepted(genuine, "stock.changed", "applied", webhook_id)


# --- order events -------------------------------------------------------------------------------------


class Pusher:
    """Signed order events for one placed order, each a minute after the last (the app's clock follows)."""

    def __init__(self, api: Api, clock: FakeClock, placed: PlacedOrder, secret: str = NEW_SECRET) -> None:
        self.api, self.clock, self.placed, self.secret = api, clock, placed, secret

    def body(self, kind: str, when: datetime, **data: Any) -> bytes:
        ref = {"order_id": self.placed.supplier_ref, "po": self.placed.order["po"]}
        return event_body(kind, when, **{**ref, **data})

    async def send(self, kind: str, *, when: datetime | None = None, **data: Any) -> httpx.Response:
        self.clock.advance(minutes=1)
        body = self.body(kind, when or self.clock.now, **data)
        headers = signed_headers(self.secret, msg_id(), self.clock.now, body)
        return await push(self.api, self.placed.supplier["id"], body, headers)

    async def applied(self, kind: str, *, when: datetime | None = None, **data: Any) -> None:
        response = await self.send(kind, when=when, **data)
        assert response.status_code == 200, response.text
        assert response.json()["outcome"] == "applied", response.json()

    async def line(self) -> dict[str, Any]:
        return line_of(await job_parts(self.api, self.placed.job["ref"]), self.placed.line_id)

    async def order(self) -> dict[str, Any]:
        return await get_order(self.api, self.placed.order["id"])


async def placed_with_secret(api: Api, sandbox: SandboxServer, clock: FakeClock, quantity: int = 1) -> Pusher:
    placed = await place_order(api, sandbox, quantity=quantity, secrets=[NEW_SECRET])
    return Pusher(api, clock, placed)


async def test_order_confirmed_with_a_new_eta_is_recorded_as_a_webhook_revision(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    pusher = await placed_with_secret(api, sandbox, clock)
    promised = at(pusher.placed.order["lines"][0]["promised_at"])
    new_eta = promised + timedelta(days=1)

    await pusher.applied("order.confirmed", eta=iso(new_eta))

    line = await pusher.line()
    assert at(line["eta"]) == new_eta and at(line["promised_at"]) == promised
    assert [(r["source"], r["old_eta"] and at(r["old_eta"]), at(r["new_eta"])) for r in line["eta_history"]] == [
        ("order", None, promised),
        ("webhook", promised, new_eta),
    ]
    assert at(line["eta_history"][-1]["learned_at"]) == pusher.clock.now
    assert (await pusher.order())["status"] == "confirmed"
    (revision,) = await events_of(api, pusher.placed.job["ref"], "eta_revised")
    assert revision["data"]["source"] == "webhook" and revision["actor"] is None


async def test_order_shipped_partially_then_fully(api: Api, sandbox: SandboxServer, clock: FakeClock) -> None:
    pusher = await placed_with_secret(api, sandbox, clock, quantity=2)

    await pusher.applied("order.shipped", tracking_number="TRK-1", lines=[{"sku": SKU, "shipped_quantity": 1}])

    order = await pusher.order()
    assert (order["status"], order["tracking_number"]) == ("partially_shipped", "TRK-1")
    assert (order["lines"][0]["shipped_quantity"], order["lines"][0]["status"]) == (1, "ordered")

    await pusher.applied("order.shipped", tracking_number="TRK-1", lines=[{"sku": SKU, "shipped_quantity": 2}])

    order = await pusher.order()
    assert order["status"] == "shipped"
    assert (order["lines"][0]["shipped_quantity"], order["lines"][0]["status"]) == (2, "shipped")
    shipped = await events_of(api, pusher.placed.job["ref"], "part_shipped")
    assert [e["data"]["shipped_quantity"] for e in shipped] == [1, 2]


async def test_order_backordered_moves_the_line_and_its_eta(api: Api, sandbox: SandboxServer, clock: FakeClock) -> None:
    pusher = await placed_with_secret(api, sandbox, clock)
    promised = at(pusher.placed.order["lines"][0]["promised_at"])
    later = promised + timedelta(weeks=2)

    await pusher.applied("order.backordered", eta=iso(later))

    line = await pusher.line()
    assert (line["status"], at(line["eta"])) == ("backordered", later)
    assert line["eta_history"][-1]["source"] == "webhook"
    assert len(await events_of(api, pusher.placed.job["ref"], "part_backordered")) == 1
    late = await api.client.get("/api/v1/parts/late", headers=await api.login("tech.valence"))
    assert [(item["line_id"], item["status"]) for item in late.json()] == [(pusher.placed.line_id, "backordered")]


async def test_order_cancelled_by_the_supplier(api: Api, sandbox: SandboxServer, clock: FakeClock) -> None:
    pusher = await placed_with_secret(api, sandbox, clock)

    await pusher.applied("order.cancelled", reason="discontinued")

    order = await pusher.order()
    assert order["status"] == "cancelled" and order["lines"][0]["status"] == "cancelled"
    (cancelled,) = await events_of(api, pusher.placed.job["ref"], "part_cancelled")
    assert cancelled["data"]["reason"] == "discontinued" and cancelled["data"]["by_supplier"] is True
    listed = await api.client.get(ORDERS, params={"status": "cancelled"}, headers=await api.login("tech.valence"))
    assert [o["id"] for o in listed.json()["items"]] == [pusher.placed.order["id"]]


async def test_an_older_eta_event_arriving_late_does_not_roll_the_eta_back(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    pusher = await placed_with_secret(api, sandbox, clock)
    promised = at(pusher.placed.order["lines"][0]["promised_at"])
    happened_first = pusher.clock.now + timedelta(seconds=10)
    first_eta, second_eta = promised + timedelta(days=1), promised + timedelta(days=3)

    await pusher.applied("order.eta_revised", eta=iso(second_eta))  # the newer fact arrives first
    late_arrival = await pusher.send("order.eta_revised", when=happened_first, eta=iso(first_eta))

    assert late_arrival.status_code == 200, late_arrival.text
    line = await pusher.line()
    assert at(line["eta"]) == second_eta
    assert [(r["source"], at(r["new_eta"])) for r in line["eta_history"]] == [
        ("order", promised),
        ("webhook", second_eta),
    ]
    assert len(await events_of(api, pusher.placed.job["ref"], "eta_revised")) == 1


async def test_an_eta_revision_stamped_in_the_second_of_the_order_is_applied(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    # Suppliers stamp facts to the second (the wire spec's "2026-11-26T12:00:00Z"); the order was placed
    # at .600 of that same second by our clock. The supplier's revision is news, not an older fact.
    clock.now = clock.now.replace(microsecond=600_000)
    pusher = await placed_with_secret(api, sandbox, clock)
    promised = at(pusher.placed.order["lines"][0]["promised_at"])
    same_second = pusher.clock.now.replace(microsecond=0)
    new_eta = promised + timedelta(days=2)

    body, webhook_id = pusher.body("order.eta_revised", same_second, eta=iso(new_eta)), msg_id()

    response = await push(
        api, pusher.placed.supplier["id"], body, signed_headers(NEW_SECRET, webhook_id, clock.now, body)
    )

    accepted(response, "order.eta_revised", "applied", webhook_id)
    line = await pusher.line()
    assert at(line["eta"]) == new_eta
    assert [r["source"] for r in line["eta_history"]] == ["order", "webhook"]


async def test_an_event_about_an_order_that_is_not_ours_is_acknowledged_and_ignored(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    pusher = await placed_with_secret(api, sandbox, clock)
    before = await pusher.order()
    stranger = await supplier_with(api, sandbox, OLD_SECRET, name="Stranger")

    body = event_body("order.cancelled", clock.now, order_id="ORD-nobody-0042", po="PO-999999")
    webhook_id = msg_id()
    unknown = await push(
        api, pusher.placed.supplier["id"], body, signed_headers(NEW_SECRET, webhook_id, clock.now, body)
    )
    # Another supplier naming our order (its id and PO) cannot touch it either.
    theirs = pusher.body("order.cancelled", clock.now)
    other_id = msg_id()
    foreign = await push(api, stranger["id"], theirs, signed_headers(OLD_SECRET, other_id, clock.now, theirs))

    accepted(unknown, "order.cancelled", "unknown_order", webhook_id)
    accepted(foreign, "order.cancelled", "unknown_order", other_id)
    after = await pusher.order()
    assert after["status"] == before["status"] == "confirmed"
    assert after["lines"][0]["status"] == "ordered"


async def test_order_events_name_lines_by_the_suppliers_sku(api: Api, sandbox: SandboxServer, clock: FakeClock) -> None:
    ours = "SCR-IP13"
    offer = pin_stock(sandbox, new_tenant(), SKU, 5)
    await add_part(api, ours, "our iPhone 13 screen")
    supplier = await add_supplier(api, sandbox, offer.tenant, secrets=[NEW_SECRET])
    mapped = await api.client.put(
        f"{SUPPLIERS}/{supplier['id']}/skus/{SKU}", json={"sku": ours}, headers=await api.login(MANAGER)
    )
    assert mapped.status_code == 200, mapped.text
    view = await job_with_lines(api, [(ours, 2)])
    line_id = view["lines"][0]["id"]
    placed = await ordered(api, view["ref"], line_id, supplier["id"])
    pusher = Pusher(api, clock, PlacedOrder(offer.tenant, supplier, view, line_id, placed))
    promised = at(placed["lines"][0]["promised_at"])

    await pusher.applied("order.eta_revised", eta=iso(promised + timedelta(days=9)), sku="SOMETHING-ELSE")
    assert at((await pusher.line())["eta"]) == promised  # another line's news
    await pusher.applied("order.eta_revised", eta=iso(promised + timedelta(days=1)), sku=SKU)
    await pusher.applied("order.shipped", tracking_number="TRK-9", lines=[{"sku": SKU, "shipped_quantity": 2}])

    line = await pusher.line()
    assert (line["sku"], line["status"], line["shipped_quantity"]) == (ours, "shipped", 2)
    assert at(line["eta"]) == promised + timedelta(days=1)


async def test_a_confirmation_pushed_while_the_order_answer_was_lost_does_not_block_the_retry(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    # The order reached the supplier but its answer was garbled (503: "order again to re-send the same
    # PO"); the supplier then confirms the order by webhook, naming our PO, before anyone retries.
    tenant = good_then_broken(sandbox, 0.5)
    pin_stock(sandbox, tenant, SKU, 5)
    await add_part(api)
    supplier = await add_supplier(api, sandbox, tenant, secrets=[NEW_SECRET])
    view = await job_with_lines(api, [(SKU, 1)])
    line_id = view["lines"][0]["id"]
    sandbox.set_faults(tenant=tenant, malformed_rate=0.5)
    assert_problem(await order(api, view["ref"], line_id, supplier["id"]), 503)
    sandbox.set_faults(tenant=tenant, malformed_rate=0)
    (chosen,) = await events_of(api, view["ref"], "supplier_chosen")
    po = chosen["data"]["po"]
    (remote,) = sandbox_orders(sandbox, tenant, po)
    clock.advance(seconds=5)
    body = event_body("order.confirmed", clock.now, order_id=remote["id"], po=po, eta=remote["eta"])
    webhook_id = msg_id()
    confirmed = await push(api, supplier["id"], body, signed_headers(NEW_SECRET, webhook_id, clock.now, body))
    accepted(confirmed, "order.confirmed", "applied", webhook_id)

    retry = await order(api, view["ref"], line_id, supplier["id"])

    assert retry.status_code == 201, retry.text
    placed = retry.json()
    assert (placed["po"], placed["supplier_ref"]) == (po, remote["id"])
    assert placed["lines"][0]["status"] == "ordered"
    assert at(placed["lines"][0]["eta"]) == at(remote["eta"])
    assert [o["id"] for o in sandbox_orders(sandbox, tenant, po)] == [remote["id"]]


async def test_two_simultaneous_deliveries_of_one_event_apply_it_once(
    live_api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    placed = await place_order(live_api, sandbox, quantity=2, secrets=[NEW_SECRET])
    pusher = Pusher(live_api, clock, placed)
    clock.advance(minutes=1)
    body = pusher.body("order.shipped", clock.now, tracking_number="TRK-2", lines=[{"sku": SKU, "shipped_quantity": 1}])
    webhook_id = msg_id()
    headers = signed_headers(NEW_SECRET, webhook_id, clock.now, body)

    responses = await asyncio.gather(*(push(live_api, placed.supplier["id"], body, headers) for _ in range(2)))

    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    assert sorted(r.json()["outcome"] for r in responses) == ["applied", "duplicate"]
    line = await pusher.line()
    assert line["shipped_quantity"] == 1
    assert len(await events_of(live_api, placed.job["ref"], "part_shipped")) == 1


async def test_webhook_ids_are_kept_for_the_retention_period_then_purged(
    api: Api, sandbox: SandboxServer, clock: FakeClock, settings: Settings
) -> None:
    await add_part(api)
    supplier = await supplier_with(api, sandbox, OLD_SECRET)
    webhook_id = msg_id()
    body = stock_body(clock.now, 7)
    received_at = clock.now
    accepted(
        await push(api, supplier["id"], body, signed_headers(OLD_SECRET, webhook_id, clock.now, body)),
        "stock.changed",
        "applied",
        webhook_id,
    )

    engine = create_engine(settings)
    try:
        async with Database(engine).transaction() as uow:
            kept = await uow.suppliers.purge_webhooks(received_at)  # nothing is older than itself
        async with Database(engine).transaction() as uow:
            purged = await uow.suppliers.purge_webhooks(received_at + timedelta(seconds=1))
    finally:
        await engine.dispose()
    assert (kept, purged) == (0, 1)
    # Once forgotten, the same id is a new event again (hence a retention far longer than redeliveries).
    again = await push(api, supplier["id"], body, signed_headers(OLD_SECRET, webhook_id, clock.now, body))
    accepted(again, "stock.changed", "applied", webhook_id)
