"""The supplier sandbox as its clients meet it: a real process over real HTTP, per the shared wire contract
(auth, stock, orders, CSV feed, every fault knob, signed webhooks with retries)."""

from __future__ import annotations

import csv
import io
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx
import pytest

from integrations.sandbox.catalogue import CATALOGUE, minute_bucket, seeded_stock, terms
from integrations.sandbox.webhooks import sign
from tests.sandbox_fixture import SandboxServer, free_port, running_sandbox

T = TypeVar("T")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SKU, OTHER = "IPH13-BATTERY", "SAM-A54-SCREEN"
SLACK = timedelta(seconds=5)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def near(moment: datetime, expected: datetime) -> bool:
    return abs(moment - expected) <= SLACK


@pytest.fixture
def api() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, trust_env=False, headers={"Authorization": "Bearer any-key"}) as client:
        yield client


@pytest.fixture
def base(sandbox: SandboxServer, sandbox_tenant: str) -> str:
    return sandbox.tenant_url(sandbox_tenant)


@pytest.fixture
def tenant(sandbox_tenant: str) -> str:
    """The tenant `base` points at."""
    return sandbox_tenant


@pytest.fixture(scope="module")
def keyed() -> Iterator[SandboxServer]:
    """A second process, same seed, with an API key and CLI fault defaults."""
    with running_sandbox("--api-key", "s3cret", "--eta-slip-hours", "3", "--partial-ship", "--latency-ms", "20") as s:
        yield s


def order(
    api: httpx.Client, base: str, po: str, lines: list[tuple[str, int]], key: str | None = None
) -> httpx.Response:
    body = {"po": po, "lines": [{"sku": sku, "quantity": qty} for sku, qty in lines]}
    return api.post(f"{base}/api/v1/orders", json=body, headers={"Idempotency-Key": key or po})


def placed(api: httpx.Client, base: str, po: str, lines: list[tuple[str, int]]) -> dict[str, Any]:
    response = order(api, base, po, lines)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def in_one_minute(read: Callable[[], T]) -> tuple[T, int]:
    """Run `read` within a single stock minute (retrying across a minute boundary) and name the minute."""
    while True:
        before = minute_bucket(datetime.now(UTC))
        value = read()
        if minute_bucket(datetime.now(UTC)) == before:
            return value, before


def stock(api: httpx.Client, base: str, skus: list[str]) -> dict[str, Any]:
    response = api.get(f"{base}/api/v1/stock", params={"skus": ",".join(skus)})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


# --- signing ---------------------------------------------------------------------------------------


def test_sign_matches_the_standard_webhooks_test_vector() -> None:
    signature = sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", b'{"test": 2432232314}') == signature
    with pytest.raises(ValueError):
        sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_1", 1, "{}")  # no whsec_ prefix


# --- the process and its CLI options --------------------------------------------------------------------


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_prints_its_url_and_stops_cleanly_on_a_signal(stop: signal.Signals) -> None:
    with running_sandbox() as server:
        assert server.url in server.output()
        server.process.send_signal(stop)
        assert server.process.wait(timeout=15) == 0
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/_sandbox/faults", timeout=2)


def test_api_needs_a_bearer_key_any_key_unless_one_is_set(sandbox: SandboxServer, keyed: SandboxServer) -> None:
    url = f"{sandbox.url}/api/v1/stock?skus={SKU}"
    for headers in ({}, {"Authorization": "Basic eDp5"}, {"Authorization": "Bearer"}):
        refused = httpx.get(url, headers=headers, trust_env=False)
        assert refused.status_code == 401
        assert isinstance(refused.json()["error"], str)
    assert httpx.get(url, headers={"Authorization": "Bearer whatever"}, trust_env=False).status_code == 200
    keyed_url = f"{keyed.url}/api/v1/stock?skus={SKU}"
    assert httpx.get(keyed_url, headers={"Authorization": "Bearer whatever"}, trust_env=False).status_code == 401
    assert httpx.get(keyed_url, headers={"Authorization": "Bearer s3cret"}, trust_env=False).status_code == 200
    assert httpx.get(f"{keyed.url}/feed.csv", trust_env=False).status_code == 200  # the feed needs no auth


def test_cli_faults_are_every_tenants_defaults_and_reset_restores_them(keyed: SandboxServer) -> None:
    expected = {"eta_slip_hours": 3, "partial_ship": True, "latency_ms": 20, "error_rate": 0.0}
    for tenant in (None, "acme", "fixit"):
        assert keyed.faults(tenant).items() >= expected.items()
    changed = keyed.set_faults("acme", eta_slip_hours=0, rate_429=0.5)
    assert changed.items() >= {"eta_slip_hours": 0, "rate_429": 0.5, "partial_ship": True, "latency_ms": 20}.items()
    assert keyed.faults("fixit")["eta_slip_hours"] == 3  # another tenant is another supplier
    assert keyed.reset("acme")["faults"] == keyed.faults("fixit")
    bad = keyed.client.put(f"{keyed.tenant_url('acme')}/_sandbox/faults", json={"no_such_knob": 1})
    assert bad.status_code == 400 and "error" in bad.json()


def test_the_same_seed_and_tenant_quote_the_same_in_another_process(
    sandbox: SandboxServer, keyed: SandboxServer, sandbox_tenant: str
) -> None:
    skus = [part.sku for part in CATALOGUE]
    with (
        httpx.Client(headers={"Authorization": "Bearer any"}, trust_env=False) as one,
        httpx.Client(headers={"Authorization": "Bearer s3cret"}, trust_env=False) as other,
    ):
        (first, second), _ = in_one_minute(
            lambda: (
                stock(one, sandbox.tenant_url(sandbox_tenant), skus),
                stock(other, keyed.tenant_url(sandbox_tenant), skus),
            )
        )
    strip = [{k: v for k, v in item.items() if k != "eta"} for item in first["items"]]
    assert strip == [{k: v for k, v in item.items() if k != "eta"} for item in second["items"]]


# --- stock -----------------------------------------------------------------------------------------


def test_stock_lists_known_skus_and_names_unknown_ones(api: httpx.Client, base: str) -> None:
    answer = stock(api, base, [SKU, "NOPE-1", OTHER, SKU])
    assert [item["sku"] for item in answer["items"]] == [SKU, OTHER]
    assert answer["unknown"] == ["NOPE-1"]
    now = datetime.now(UTC)
    for item in answer["items"]:
        assert set(item) == {"sku", "description", "available", "price_cents", "currency", "eta"}
        assert isinstance(item["available"], int) and item["available"] >= 0
        assert isinstance(item["price_cents"], int) and item["price_cents"] > 0
        assert item["currency"] == "EUR" and item["description"]
        assert item["eta"].endswith("Z") and at(item["eta"]) > now
    for bad in ("", ",", ",".join(f"SKU-{n}" for n in range(101))):
        refused = api.get(f"{base}/api/v1/stock", params={"skus": bad})
        assert refused.status_code == 400 and "error" in refused.json()
    assert api.get(f"{base}/api/v1/stock").status_code == 400


def test_stock_follows_seed_tenant_and_minute(sandbox: SandboxServer, api: httpx.Client, sandbox_tenant: str) -> None:
    skus = [part.sku for part in CATALOGUE]
    answer, minute = in_one_minute(lambda: stock(api, sandbox.tenant_url(sandbox_tenant), skus))
    now = datetime.now(UTC)
    for item in answer["items"]:
        deal = terms(sandbox.seed, sandbox_tenant, item["sku"])
        assert item["available"] == seeded_stock(sandbox.seed, sandbox_tenant, item["sku"], minute)
        assert item["price_cents"] == deal.price_cents
        hours = deal.lead_hours if item["available"] else deal.restock_hours
        assert near(at(item["eta"]), now + timedelta(hours=hours))
    other = stock(api, sandbox.tenant_url(sandbox_tenant + "-b"), skus)
    assert [i["price_cents"] for i in other["items"]] != [i["price_cents"] for i in answer["items"]]
    # Over time: the same SKU's level moves from minute to minute, and comes back the same for a minute.
    levels = [seeded_stock(sandbox.seed, sandbox_tenant, SKU, minute + n) for n in range(30)]
    assert len(set(levels)) > 1
    assert levels == [seeded_stock(sandbox.seed, sandbox_tenant, SKU, minute + n) for n in range(30)]


def test_orders_take_stock_and_short_stock_backorders(
    sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str
) -> None:
    assert sandbox.set_stock(SKU, 3, tenant)["item"]["available"] == 3
    assert stock(api, base, [SKU])["items"][0]["available"] == 3
    deal = terms(sandbox.seed, tenant, SKU)
    first = placed(api, base, "PO-000001", [(SKU, 2)])
    assert first["state"] == "confirmed" and first["lines"][0]["state"] == "open"
    assert near(at(first["eta"]), datetime.now(UTC) + timedelta(hours=deal.lead_hours))
    assert stock(api, base, [SKU])["items"][0]["available"] == 1
    short = placed(api, base, "PO-000002", [(SKU, 2)])  # one left, two wanted
    assert short["state"] == "backordered" and short["lines"][0]["state"] == "backordered"
    assert near(at(short["eta"]), datetime.now(UTC) + timedelta(hours=deal.restock_hours))
    sandbox.set_stock(SKU, 0, tenant)
    assert placed(api, base, "PO-000003", [(SKU, 1)])["state"] == "backordered"


# --- orders ----------------------------------------------------------------------------------------


def test_placing_an_order_is_idempotent(api: httpx.Client, base: str, sandbox_tenant: str) -> None:
    first = order(api, base, "PO-000001", [(SKU, 1), (OTHER, 2)])
    assert first.status_code == 201
    created = first.json()
    assert created["id"] == f"ORD-{sandbox_tenant}-0001" and created["po"] == "PO-000001"
    assert created["tracking_number"] is None and at(created["updated_at"]) <= datetime.now(UTC)
    assert [(line["sku"], line["quantity"], line["shipped_quantity"]) for line in created["lines"]] == [
        (SKU, 1, 0),
        (OTHER, 2, 0),
    ]
    again = order(api, base, "PO-000001", [(SKU, 1), (OTHER, 2)])
    assert again.status_code == 200 and again.json() == created
    found = api.get(f"{base}/api/v1/orders", params={"po": "PO-000001"}).json()
    assert found == {"items": [created]}
    other = order(api, base, "PO-000002", [(SKU, 1)])
    assert other.status_code == 201 and other.json()["id"] == f"ORD-{sandbox_tenant}-0002"


def test_an_order_needs_a_key_and_known_skus(api: httpx.Client, base: str) -> None:
    body = {"po": "PO-000009", "lines": [{"sku": SKU, "quantity": 1}]}
    missing = api.post(f"{base}/api/v1/orders", json=body)
    assert missing.status_code == 400 and "error" in missing.json()
    unknown = order(api, base, "PO-000009", [(SKU, 1), ("NOT-A-PART", 1)])
    assert unknown.status_code == 422 and "NOT-A-PART" in unknown.json()["error"]
    assert api.get(f"{base}/api/v1/orders", params={"po": "PO-000009"}).json() == {"items": []}
    assert order(api, base, "PO-000009", [(SKU, 0)]).status_code == 400


def test_order_status_follows_the_supplier(sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str) -> None:
    created = placed(api, base, "PO-000001", [(SKU, 1)])
    assert api.get(f"{base}/api/v1/orders/{created['id']}").json() == created
    for action, state in (("confirm", "confirmed"), ("ship", "shipped"), ("deliver", "delivered")):
        assert sandbox.advance(created["id"], action, tenant)["order"]["state"] == state
        assert api.get(f"{base}/api/v1/orders/{created['id']}").json()["state"] == state
    delivered = api.get(f"{base}/api/v1/orders/{created['id']}").json()
    assert delivered["tracking_number"] and delivered["lines"][0]["shipped_quantity"] == 1
    missing = api.get(f"{base}/api/v1/orders/ORD-{tenant}-9999")
    assert missing.status_code == 404 and "error" in missing.json()


def test_cancel_until_shipped_then_409(sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str) -> None:
    first = placed(api, base, "PO-000001", [(SKU, 1), (OTHER, 1)])
    cancelled = api.post(f"{base}/api/v1/orders/{first['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert {line["state"] for line in cancelled.json()["lines"]} == {"cancelled"}
    assert api.post(f"{base}/api/v1/orders/{first['id']}/cancel").json()["state"] == "cancelled"  # repeatable
    second = placed(api, base, "PO-000002", [(SKU, 1)])
    sandbox.advance(second["id"], "ship", tenant)
    refused = api.post(f"{base}/api/v1/orders/{second['id']}/cancel")
    assert refused.status_code == 409 and "error" in refused.json()
    assert api.get(f"{base}/api/v1/orders/{second['id']}").json()["state"] == "shipped"


def test_advance_refuses_what_cannot_happen(sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str) -> None:
    created = placed(api, base, "PO-000001", [(SKU, 1)])
    for action, status in (("deliver", 409), ("teleport", 400)):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            sandbox.advance(created["id"], action, tenant)
        assert refused.value.response.status_code == status
    with pytest.raises(httpx.HTTPStatusError) as missing:
        sandbox.advance(f"ORD-{tenant}-9999", "ship", tenant)
    assert missing.value.response.status_code == 404


# --- CSV feed ----------------------------------------------------------------------------------------


def test_csv_feed_parses_and_agrees_with_the_api(api: httpx.Client, base: str) -> None:
    def read() -> tuple[httpx.Response, dict[str, Any]]:
        feed = httpx.get(f"{base}/feed.csv", trust_env=False)  # no auth needed
        return feed, stock(api, base, [part.sku for part in CATALOGUE])

    (feed, answer), _ = in_one_minute(read)
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(feed.text))
    rows = list(reader)
    assert reader.fieldnames == ["sku", "description", "available", "price_cents", "currency", "eta"]
    assert [row["sku"] for row in rows] == [part.sku for part in CATALOGUE]
    by_sku = {item["sku"]: item for item in answer["items"]}
    for row in rows:
        item = by_sku[row["sku"]]
        assert row["description"] == item["description"]  # commas survive the quoting
        assert int(row["available"]) == item["available"] and int(row["price_cents"]) == item["price_cents"]
        assert row["currency"] == "EUR"
        assert (row["eta"] == "") == (item["available"] == 0)
        if row["eta"]:
            assert at(row["eta"]) > datetime.now(UTC)
    assert httpx.get(f"{base}/feed.csv", headers={"Authorization": "Bearer x"}, trust_env=False).status_code == 200


# --- fault knobs -------------------------------------------------------------------------------------


def test_latency_delays_api_and_feed_answers_not_admin(
    sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str
) -> None:
    sandbox.set_faults(tenant, latency_ms=400)
    for url in (f"{base}/api/v1/stock?skus={SKU}", f"{base}/feed.csv"):
        started = time.monotonic()
        assert api.get(url).status_code == 200
        assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    sandbox.faults(tenant)
    assert time.monotonic() - started < 0.4


def test_error_rate_one_answers_5xx_and_changes_nothing(
    sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str
) -> None:
    sandbox.set_faults(tenant, error_rate=1.0)
    answers = [api.get(f"{base}/api/v1/stock", params={"skus": SKU}) for _ in range(6)]
    answers += [order(api, base, "PO-000001", [(SKU, 1)]), api.get(f"{base}/feed.csv")]
    for answer in answers:
        assert answer.status_code in {500, 502, 503}
        assert "error" in answer.json()
    sandbox.set_faults(tenant, error_rate=0.0)
    assert api.get(f"{base}/api/v1/orders", params={"po": "PO-000001"}).json() == {"items": []}


def test_rate_429_one_answers_429_with_retry_after(
    sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str
) -> None:
    sandbox.set_faults(tenant, rate_429=1.0, retry_after_seconds=7)
    for answer in (api.get(f"{base}/api/v1/stock", params={"skus": SKU}), order(api, base, "PO-1", [(SKU, 1)])):
        assert answer.status_code == 429
        assert answer.headers["retry-after"] == "7"


def _valid_stock(text: str) -> bool:
    try:
        payload = json.loads(text)
    except ValueError:
        return False
    items, unknown = payload.get("items"), payload.get("unknown")
    if not isinstance(items, list) or not isinstance(unknown, list):
        return False
    return all(isinstance(i.get("available"), int) and isinstance(i.get("price_cents"), int) for i in items)


def _valid_feed(text: str) -> bool:
    try:
        for row in csv.DictReader(io.StringIO(text)):
            int(row["available"]), int(row["price_cents"])
            if row["eta"]:
                at(row["eta"])
    except (ValueError, TypeError, KeyError):
        return False
    return True


def test_malformed_rate_one_breaks_every_body(
    sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str
) -> None:
    assert _valid_stock(api.get(f"{base}/api/v1/stock", params={"skus": SKU}).text)
    assert _valid_feed(api.get(f"{base}/feed.csv").text)
    sandbox.set_faults(tenant, malformed_rate=1.0)
    for _ in range(8):
        answer = api.get(f"{base}/api/v1/stock", params={"skus": f"{SKU},{OTHER}"})
        assert answer.status_code == 200 and not _valid_stock(answer.text), answer.text
        feed = api.get(f"{base}/feed.csv")
        assert feed.status_code == 200 and not _valid_feed(feed.text)
    broken = order(api, base, "PO-000001", [(SKU, 1)])
    assert broken.status_code == 201
    sandbox.set_faults(tenant, malformed_rate=0.0)
    retried = order(api, base, "PO-000001", [(SKU, 1)])  # the order was placed despite the broken answer
    assert retried.status_code == 200 and retried.json()["id"].endswith("-0001")


def test_eta_slip_moves_open_orders_on_every_get(
    sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str
) -> None:
    sandbox.set_stock(SKU, 10, tenant)
    created = placed(api, base, "PO-000001", [(SKU, 2)])
    eta = at(created["eta"])
    sandbox.set_faults(tenant, eta_slip_hours=5)
    first = api.get(f"{base}/api/v1/orders/{created['id']}").json()
    assert at(first["eta"]) == eta + timedelta(hours=5) == at(first["lines"][0]["eta"])
    second = api.get(f"{base}/api/v1/orders", params={"po": "PO-000001"}).json()["items"][0]
    assert at(second["eta"]) == eta + timedelta(hours=10)
    shipped = sandbox.advance(created["id"], "ship", tenant)["order"]
    assert api.get(f"{base}/api/v1/orders/{created['id']}").json()["eta"] == shipped["eta"]  # shipped: not open


def test_backorder_rate_one_backorders_new_orders(
    sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str
) -> None:
    sandbox.set_stock(SKU, 10, tenant)
    sandbox.set_faults(tenant, backorder_rate=1.0)
    created = placed(api, base, "PO-000001", [(SKU, 1)])
    assert created["state"] == "backordered" and created["lines"][0]["state"] == "backordered"
    lead = timedelta(hours=terms(sandbox.seed, tenant, SKU).lead_hours)
    assert near(at(created["eta"]), datetime.now(UTC) + lead + timedelta(weeks=2))


def test_partial_ship_ships_half_of_each_line(
    sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str
) -> None:
    for sku in (SKU, OTHER):
        sandbox.set_stock(sku, 20, tenant)
    sandbox.set_faults(tenant, partial_ship=True)
    created = placed(api, base, "PO-000001", [(SKU, 5), (OTHER, 1)])
    half = sandbox.advance(created["id"], "ship", tenant)["order"]
    assert half["state"] == "partially_shipped"
    assert [(line["shipped_quantity"], line["state"]) for line in half["lines"]] == [(3, "open"), (1, "shipped")]
    rest = sandbox.advance(created["id"], "ship", tenant)["order"]
    assert rest["state"] == "shipped" and [line["shipped_quantity"] for line in rest["lines"]] == [5, 1]
    sandbox.set_faults(tenant, partial_ship=False)
    other = placed(api, base, "PO-000002", [(SKU, 3)])
    one = sandbox.advance(other["id"], "ship", tenant, quantity=1)["order"]
    assert one["state"] == "partially_shipped" and one["lines"][0]["shipped_quantity"] == 1


# --- webhooks ------------------------------------------------------------------------------------------


class Receiver:
    """A webhook endpoint in a thread: records each POST, answers the queued statuses first, then 204."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 204
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/v1/webhooks/suppliers/7"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 10) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.05)
        pytest.fail(f"{count} pushes expected, {len(self.requests)} arrived")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


def verified(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """Check a push as Atelier's endpoint will, and return its JSON body."""
    assert headers["webhook-id"].startswith("msg_")
    timestamp = int(headers["webhook-timestamp"])
    assert abs(timestamp - time.time()) < 60
    assert headers["webhook-signature"] == sign(SECRET, headers["webhook-id"], timestamp, body)
    assert headers["content-type"] == "application/json"
    payload: dict[str, Any] = json.loads(body)
    assert set(payload) == {"type", "timestamp", "data"} and payload["timestamp"].endswith("Z")
    at(payload["timestamp"])
    return payload


def log_of(sandbox: SandboxServer, tenant: str, count: int) -> list[dict[str, Any]]:
    """The tenant's webhook log once it holds `count` attempts (an attempt is logged after its answer)."""
    deadline = time.monotonic() + 10
    while len(log := sandbox.webhook_log(tenant)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return log


def test_pushes_are_signed_and_follow_the_contract(
    sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str, receiver: Receiver
) -> None:
    sandbox.configure_webhooks(receiver.url, SECRET, tenant)
    stocked = sandbox.set_stock(SKU, 9, tenant)
    assert stocked["webhook"]["status"] == 204 and stocked["webhook"]["type"] == "stock.changed"
    pushed = verified(*receiver.wait_for(1)[0])
    assert pushed["type"] == "stock.changed"
    assert pushed["data"] == {k: stocked["item"][k] for k in ("sku", "available", "price_cents", "currency", "eta")}

    created = placed(api, base, "PO-000001", [(SKU, 2), (OTHER, 1)])
    ref = {"order_id": created["id"], "po": "PO-000001"}
    answers = [sandbox.advance(created["id"], action, tenant) for action in ("confirm", "slip", "ship", "deliver")]
    assert all(answer["webhook"]["status"] == 204 for answer in answers)
    confirmed, slipped, shipped, delivered = (verified(*r)["data"] for r in receiver.wait_for(5)[1:5])
    assert confirmed == {**ref, "eta": created["eta"]}
    assert slipped == {**ref, "eta": answers[1]["order"]["eta"]}
    assert at(slipped["eta"]) == at(created["eta"]) + timedelta(hours=24)
    after_ship = answers[2]["order"]
    assert shipped == {
        **ref,
        "tracking_number": after_ship["tracking_number"],
        "lines": [{"sku": SKU, "shipped_quantity": 2}, {"sku": OTHER, "shipped_quantity": 1}],
        "eta": after_ship["eta"],
    }
    assert delivered == ref

    second = placed(api, base, "PO-000002", [(SKU, 1)])
    again = {"order_id": second["id"], "po": "PO-000002"}
    backordered = sandbox.advance(second["id"], "backorder", tenant, hours=48)["order"]
    sandbox.set_faults(tenant, eta_slip_hours=6)
    read = api.get(f"{base}/api/v1/orders/{second['id']}").json()  # pushes order.eta_revised in the background
    receiver.wait_for(7)
    sandbox.advance(second["id"], "cancel", tenant, reason="discontinued")
    late, revised, cancelled = (verified(*r) for r in receiver.wait_for(8)[5:8])
    assert late == {**late, "type": "order.backordered", "data": {**again, "eta": backordered["eta"]}}
    assert at(backordered["eta"]) == at(second["eta"]) + timedelta(hours=48)
    assert revised == {**revised, "type": "order.eta_revised", "data": {**again, "eta": read["eta"]}}
    assert cancelled == {**cancelled, "type": "order.cancelled", "data": {**again, "reason": "discontinued"}}

    log = log_of(sandbox, tenant, 8)
    assert [entry["id"] for entry in log] == [headers["webhook-id"] for headers, _ in receiver.requests]
    assert {entry["status"] for entry in log} == {204}


def test_a_failed_push_is_retried_with_the_same_id(
    sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    sandbox.configure_webhooks(receiver.url, SECRET, tenant)
    created = placed(api, base, "PO-000001", [(SKU, 1)])
    first = sandbox.advance(created["id"], "confirm", tenant)["webhook"]
    assert first["status"] == 500 and first["attempt"] == 1
    attempts = receiver.wait_for(3)
    assert {headers["webhook-id"] for headers, _ in attempts} == {first["id"]}
    assert len({body for _, body in attempts}) == 1
    for headers, body in attempts:
        assert verified(headers, body)["type"] == "order.confirmed"
    log = log_of(sandbox, tenant, 3)
    assert [(e["id"], e["attempt"], e["status"]) for e in log] == [
        (first["id"], n, s) for n, s in ((1, 500), (2, 503), (3, 204))
    ]


def test_an_unreachable_webhook_is_tried_four_times(
    sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str
) -> None:
    sandbox.configure_webhooks(f"http://127.0.0.1:{free_port()}/hook", SECRET, tenant)
    created = placed(api, base, "PO-000001", [(SKU, 1)])
    first = sandbox.advance(created["id"], "confirm", tenant)["webhook"]
    assert first["status"] is None and first["error"]
    log_of(sandbox, tenant, 4)
    time.sleep(1)  # and nothing after the third retry
    log = sandbox.webhook_log(tenant)
    assert [(e["id"], e["attempt"], e["status"]) for e in log] == [(first["id"], n, None) for n in (1, 2, 3, 4)]
    assert all(entry["error"] for entry in log)


# --- the changes feed, the bulk route, the request counts ------------------------------------------------


def bulk(api: httpx.Client, base: str, count: int, sku: str = SKU) -> httpx.Response:
    orders = [{"po": f"PO-B{n:05d}", "lines": [{"sku": sku, "quantity": 1}]} for n in range(count)]
    return api.post(f"{base}/_sandbox/orders/bulk", json={"orders": orders})


def changes(api: httpx.Client, base: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"{base}/api/v1/orders/changes", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def _valid_changes(text: str) -> bool:
    try:
        page = json.loads(text)
    except ValueError:
        return False
    return isinstance(page.get("items"), list) and all(
        isinstance(line["quantity"], int) for order in page["items"] for line in order["lines"]
    )


def test_bulk_creates_orders_without_webhooks_and_checks_its_body(
    sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str
) -> None:
    sandbox.set_stock(SKU, 3, tenant)  # not this minute's seeded level: enough for every order, exactly
    created = bulk(api, base, 3)
    assert created.status_code == 201, created.text
    ids = created.json()["ids"]
    assert len(set(ids)) == 3
    for n, order_id in enumerate(ids):
        found = api.get(f"{base}/api/v1/orders/{order_id}").json()
        assert (found["po"], found["state"]) == (f"PO-B{n:05d}", "confirmed")
    assert bulk(api, base, 1).json()["ids"] == ids[:1]  # an existing PO gives its order
    assert sandbox.webhook_log(tenant) == []
    assert bulk(api, base, 10_001).status_code == 400
    assert api.post(f"{base}/_sandbox/orders/bulk", json={"orders": []}).status_code == 400
    assert bulk(api, base, 1, sku="NO-SUCH-PART").status_code == 422


def test_changes_feed_pages_oldest_first_and_stays_stable_while_orders_change(
    sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str
) -> None:
    sandbox.set_stock(SKU, 5, tenant)  # not this minute's seeded level: every order confirmed, none short
    ids = bulk(api, base, 5).json()["ids"]
    first = changes(api, base, limit=2)
    assert [o["id"] for o in first["items"]] == ids[:2] and first["next_cursor"]
    assert near(at(first["as_of"]), datetime.now(UTC))
    time.sleep(1.1)  # the feed speaks in whole seconds: the changes below are after `mark`
    mark = datetime.now(UTC).replace(microsecond=0).isoformat()
    sandbox.advance(ids[0], "ship", tenant=tenant)  # already read: comes again, behind the cursor
    sandbox.advance(ids[3], "slip", tenant=tenant, hours=4)  # not read yet: moves behind the others
    seen = [o["id"] for o in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = changes(api, base, limit=2, cursor=cursor)
        seen += [o["id"] for o in page["items"]]
        cursor = page["next_cursor"]
    assert seen == [ids[0], ids[1], ids[2], ids[4], ids[0], ids[3]]

    newer = changes(api, base, since=mark)
    assert [(o["id"], o["state"]) for o in newer["items"]] == [(ids[0], "shipped"), (ids[3], "confirmed")]
    assert newer["next_cursor"] is None
    later = (at(newer["as_of"]) + timedelta(seconds=1)).isoformat()
    assert changes(api, base, since=later, limit=1000)["items"] == []


def test_changes_feed_refuses_bad_parameters_and_needs_auth(api: httpx.Client, base: str) -> None:
    for params in ({"since": "yesterday"}, {"since": "2026-11-26T12:00:00"}, {"limit": "0"}, {"limit": "1001"}):
        assert api.get(f"{base}/api/v1/orders/changes", params=params).status_code == 400, params
    assert api.get(f"{base}/api/v1/orders/changes", params={"cursor": "not-ours"}).status_code == 400
    assert httpx.get(f"{base}/api/v1/orders/changes", trust_env=False).status_code == 401


def test_changes_feed_faults_apply_and_stats_count_every_request(
    sandbox: SandboxServer, api: httpx.Client, base: str, tenant: str
) -> None:
    bulk(api, base, 2)
    sandbox.set_faults(tenant, error_rate=1.0)
    assert api.get(f"{base}/api/v1/orders/changes").status_code in (500, 502, 503)
    sandbox.set_faults(tenant, error_rate=0.0, rate_429=1.0)
    assert api.get(f"{base}/api/v1/orders/changes").status_code == 429
    sandbox.set_faults(tenant, rate_429=0.0, malformed_rate=1.0)
    broken = api.get(f"{base}/api/v1/orders/changes")
    assert broken.status_code == 200 and not _valid_changes(broken.text)
    sandbox.set_faults(tenant, malformed_rate=0.0)
    assert len(changes(api, base)["items"]) == 2
    stats = api.get(f"{base}/_sandbox/stats").json()
    assert stats == {"orders": 2, "requests": {"order_changes": 4}}
    sandbox.reset(tenant)
    assert api.get(f"{base}/_sandbox/stats").json() == {"orders": 0, "requests": {}}
