"""Contract tests: both supplier adapters (and webhook verification) against the real supplier sandbox,
over real HTTP, with every fault knob of the wire spec.

Each test has its own tenant, so its faults, stock and orders are its own. The only fake here is a
recording wrapper around the real transport (it counts the attempts and their statuses, and can lose an
answer in transit after the sandbox processed the request).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from integrations.http import Hooks, HttpSettings
from integrations.resilience import InMemoryBreakerStore, InMemoryRateLimiter
from integrations.suppliers.base import (
    AdapterKind,
    BadSupplierData,
    LineState,
    NotSupported,
    OrderLineRequest,
    OrderState,
    SupplierClient,
    SupplierConfig,
    SupplierRejected,
    SupplierUnavailable,
)
from integrations.suppliers.registry import build_client
from integrations.webhooks import (
    OrderEtaRevised,
    OrderShipped,
    StockChanged,
    WebhookRejected,
    new_secret,
    parse_event,
    verify,
)
from tests.sandbox_fixture import SandboxServer, running_sandbox

FAST = HttpSettings(
    connect_timeout=2.0,
    read_timeout=2.0,
    write_timeout=2.0,
    pool_timeout=2.0,
    deadline=8.0,
    max_attempts=3,
    backoff_base=0.05,
    backoff_cap=0.2,
    retry_after_cap=3.0,
    breaker_failure_threshold=100,  # tests that want the breaker set their own
    breaker_cool_down=0.5,
)


class Recorder(httpx.AsyncBaseTransport):
    """The real HTTP transport, recording each attempt's status (or error name)."""

    def __init__(self, lose_answers: int = 0) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.log: list[int | str] = []
        self.lose_answers = lose_answers

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError as exc:
            self.log.append(type(exc).__name__)
            raise
        self.log.append(response.status_code)
        if self.lose_answers > 0:  # the supplier did the work; its answer never reaches us
            self.lose_answers -= 1
            await response.aclose()
            raise httpx.ReadTimeout("answer lost in transit", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def take(self) -> list[int | str]:
        taken, self.log = self.log, []
        return taken


class Suppliers:
    """Builds clients for the test's tenant, and closes them afterwards."""

    def __init__(self, sandbox: SandboxServer, tenant: str) -> None:
        self.sandbox = sandbox
        self.tenant = tenant
        self.recorder = Recorder()
        self.clients: list[SupplierClient] = []

    def client(
        self,
        adapter: AdapterKind = AdapterKind.REST_JSON,
        *,
        settings: HttpSettings = FAST,
        api_key: str | None = "contract-key",
        base_url: str | None = None,
    ) -> SupplierClient:
        config = SupplierConfig(
            id=len(self.clients) + 1,
            name=f"{self.tenant}-{adapter.value}",
            adapter=adapter,
            base_url=base_url or self.sandbox.tenant_url(self.tenant),
            api_key=api_key,
        )
        client = build_client(
            config,
            allow_private=True,  # the sandbox is on 127.0.0.1
            breakers=InMemoryBreakerStore(),
            limiter=InMemoryRateLimiter(),
            settings=settings,
            hooks=Hooks(transport=self.recorder),
        )
        self.clients.append(client)
        return client

    def faults(self, **knobs: Any) -> None:
        self.sandbox.set_faults(self.tenant, **knobs)

    def orders_for_po(self, po: str) -> list[dict[str, Any]]:
        response = self.sandbox.client.get(
            f"{self.sandbox.tenant_url(self.tenant)}/api/v1/orders",
            params={"po": po},
            headers={"authorization": "Bearer contract-key"},
        )
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@pytest.fixture(scope="session")
def catalogue(sandbox: SandboxServer) -> list[str]:
    """The sandbox's SKUs, read from its feed as any client would."""
    response = sandbox.client.get(f"{sandbox.url}/feed.csv")
    response.raise_for_status()
    return [line.split(",", 1)[0] for line in response.text.splitlines()[1:] if line]


@pytest.fixture
async def suppliers(sandbox: SandboxServer, sandbox_tenant: str) -> AsyncIterator[Suppliers]:
    made = Suppliers(sandbox, sandbox_tenant)
    yield made
    for client in made.clients:
        await client.aclose()


def in_stock(suppliers: Suppliers, sku: str, available: int = 50) -> None:
    suppliers.sandbox.set_stock(sku, available, tenant=suppliers.tenant)


# --- rest_json: the happy paths ---------------------------------------------------------------------


async def test_stock_reports_known_and_unknown_skus(suppliers: Suppliers, catalogue: list[str]) -> None:
    in_stock(suppliers, catalogue[0], 7)
    answer = await suppliers.client().stock([catalogue[0], catalogue[1], "NO-SUCH-PART"])
    assert [item.supplier_sku for item in answer.items] == [catalogue[0], catalogue[1]]
    assert answer.unknown == ["NO-SUCH-PART"]
    first = answer.items[0]
    assert first.available == 7 and first.currency == "EUR" and (first.price_cents or 0) > 0
    assert first.eta is not None and first.eta > datetime.now(UTC) - timedelta(minutes=1)


async def test_stock_of_more_than_100_skus_goes_in_batches(suppliers: Suppliers, catalogue: list[str]) -> None:
    wanted = catalogue + [f"NOPE-{n:03}" for n in range(150 - len(catalogue))]
    answer = await suppliers.client().stock(wanted)
    assert suppliers.recorder.take() == [200, 200]
    assert sorted(item.supplier_sku for item in answer.items) == sorted(catalogue)
    assert len(answer.unknown) == 150 - len(catalogue)


async def test_order_lifecycle_place_status_cancel(suppliers: Suppliers, catalogue: list[str]) -> None:
    in_stock(suppliers, catalogue[2])
    client = suppliers.client()
    placed = await client.place_order("PO-100001", [OrderLineRequest(catalogue[2], 2)])
    assert placed.po == "PO-100001" and placed.state is OrderState.CONFIRMED
    assert placed.lines[0].state is LineState.OPEN and placed.lines[0].quantity == 2
    assert placed.eta is not None and placed.updated_at is not None
    status = await client.order_status(placed.supplier_order_id)
    assert status.supplier_order_id == placed.supplier_order_id and status.state is OrderState.CONFIRMED
    cancelled = await client.cancel_order(placed.supplier_order_id)
    assert cancelled.state is OrderState.CANCELLED
    assert all(line.state is LineState.CANCELLED for line in cancelled.lines)
    again = await client.cancel_order(placed.supplier_order_id)  # cancelling is repeatable
    assert again.state is OrderState.CANCELLED


async def test_placing_the_same_po_twice_gives_one_order(suppliers: Suppliers, catalogue: list[str]) -> None:
    in_stock(suppliers, catalogue[3])
    client = suppliers.client()
    first = await client.place_order("PO-100002", [OrderLineRequest(catalogue[3], 1)])
    second = await client.place_order("PO-100002", [OrderLineRequest(catalogue[3], 1)])
    assert second.supplier_order_id == first.supplier_order_id
    assert suppliers.recorder.take() == [201, 200]
    assert len(suppliers.orders_for_po("PO-100002")) == 1
    with pytest.raises(SupplierRejected, match="already names order") as info:  # a reused PO is no retry
        await client.place_order("PO-100002", [OrderLineRequest(catalogue[3], 5)])
    assert info.value.status_code == 409


async def test_a_lost_answer_is_retried_and_returns_the_same_order(suppliers: Suppliers, catalogue: list[str]) -> None:
    in_stock(suppliers, catalogue[4])
    client = suppliers.client()
    suppliers.recorder.lose_answers = 1
    placed = await client.place_order("PO-100003", [OrderLineRequest(catalogue[4], 1)])
    assert suppliers.recorder.take() == [201, 200]  # created, then the retry found it
    orders = suppliers.orders_for_po("PO-100003")
    assert [order["id"] for order in orders] == [placed.supplier_order_id]


async def test_an_unknown_sku_is_rejected(suppliers: Suppliers) -> None:
    with pytest.raises(SupplierRejected) as info:
        await suppliers.client().place_order("PO-100004", [OrderLineRequest("NO-SUCH-PART", 1)])
    assert info.value.status_code == 422
    with pytest.raises(SupplierRejected) as missing:
        await suppliers.client().order_status("ORD-nope-9999")
    assert missing.value.status_code == 404


async def test_cancelling_a_shipped_order_is_a_409(suppliers: Suppliers, catalogue: list[str]) -> None:
    in_stock(suppliers, catalogue[5])
    client = suppliers.client()
    placed = await client.place_order("PO-100005", [OrderLineRequest(catalogue[5], 1)])
    suppliers.sandbox.advance(placed.supplier_order_id, "ship", tenant=suppliers.tenant)
    with pytest.raises(SupplierRejected) as info:
        await client.cancel_order(placed.supplier_order_id)
    assert info.value.status_code == 409


async def test_a_wrong_api_key_is_a_401_rejection() -> None:
    with running_sandbox("--api-key", "the-right-key") as locked:
        suppliers = Suppliers(locked, "auth")
        for key in ("a-wrong-key", None):
            with pytest.raises(SupplierRejected) as info:
                await suppliers.client(api_key=key).stock(["IPH13-BATTERY"])
            assert info.value.status_code == 401
        answer = await suppliers.client(api_key="the-right-key").stock(["IPH13-BATTERY"])
        assert answer.items
        for client in suppliers.clients:
            await client.aclose()


# --- rest_json: faults ------------------------------------------------------------------------------


async def test_server_errors_are_retried_then_unavailable(suppliers: Suppliers, catalogue: list[str]) -> None:
    suppliers.faults(error_rate=1.0)
    client = suppliers.client()
    attempts_per_call = []
    for _ in range(10):
        with pytest.raises(SupplierUnavailable):
            await client.stock([catalogue[0]])
        statuses = suppliers.recorder.take()
        attempts_per_call.append(len(statuses))
        assert set(statuses) <= {500, 502, 503}
        # 502 and 503 are retried up to 3 attempts; a 500 is not retried.
        for index, status in enumerate(statuses):
            last = index == len(statuses) - 1
            assert (status == 500 or len(statuses) == 3) if last else status in (502, 503)
    assert max(attempts_per_call) > 1  # (1/3)**10 odds that every call met a 500 first


async def test_errors_that_clear_up_are_retried_into_success(suppliers: Suppliers, catalogue: list[str]) -> None:
    suppliers.faults(rate_429=1.0, retry_after_seconds=1)
    client = suppliers.client()
    started = time.monotonic()
    call = asyncio.create_task(client.stock([catalogue[0]]))
    await asyncio.sleep(0.4)
    await asyncio.to_thread(suppliers.faults, rate_429=0.0)
    answer = await call
    assert answer.items and suppliers.recorder.take() == [429, 200]
    assert time.monotonic() - started >= 1.0  # waited the Retry-After


async def test_429_retry_after_is_honoured_then_reported(suppliers: Suppliers, catalogue: list[str]) -> None:
    suppliers.faults(rate_429=1.0, retry_after_seconds=1)
    started = time.monotonic()
    with pytest.raises(SupplierUnavailable) as info:
        await suppliers.client().stock([catalogue[0]])
    elapsed = time.monotonic() - started
    assert suppliers.recorder.take() == [429, 429, 429]
    assert info.value.retry_after == 1.0
    assert 2.0 <= elapsed < 5.0  # two 1 s waits between three attempts


async def test_a_retry_after_beyond_the_cap_fails_fast(suppliers: Suppliers, catalogue: list[str]) -> None:
    suppliers.faults(rate_429=1.0, retry_after_seconds=30)
    started = time.monotonic()
    with pytest.raises(SupplierUnavailable) as info:
        await suppliers.client().stock([catalogue[0]])
    assert time.monotonic() - started < 2.0
    assert info.value.retry_after == 30.0
    assert suppliers.recorder.take() == [429]


async def test_malformed_answers_are_bad_supplier_data(suppliers: Suppliers, catalogue: list[str]) -> None:
    in_stock(suppliers, catalogue[6])
    client = suppliers.client()
    placed = await client.place_order("PO-100006", [OrderLineRequest(catalogue[6], 1)])
    suppliers.faults(malformed_rate=1.0)
    for _ in range(4):  # truncated JSON or wrong types, at random: never trusted, never retried
        with pytest.raises(BadSupplierData):
            await client.stock([catalogue[0], catalogue[1]])
        with pytest.raises(BadSupplierData):
            await client.order_status(placed.supplier_order_id)
    assert suppliers.recorder.take() == [201] + [200] * 8


async def test_latency_beyond_the_deadline_is_unavailable(suppliers: Suppliers, catalogue: list[str]) -> None:
    suppliers.faults(latency_ms=5000)
    client = suppliers.client(settings=HttpSettings(read_timeout=10.0, deadline=0.5))
    started = time.monotonic()
    with pytest.raises(SupplierUnavailable, match="deadline"):
        await client.stock([catalogue[0]])
    assert time.monotonic() - started < 2.0


async def test_latency_beyond_the_read_timeout_is_retried_then_unavailable(
    suppliers: Suppliers, catalogue: list[str]
) -> None:
    suppliers.faults(latency_ms=1000)
    settings = HttpSettings(read_timeout=0.3, deadline=8.0, max_attempts=3, backoff_base=0.01, backoff_cap=0.05)
    with pytest.raises(SupplierUnavailable, match=r"timed out .*after 3 attempts"):
        await suppliers.client(settings=settings).stock([catalogue[0]])
    suppliers.faults(latency_ms=100)
    assert (await suppliers.client(settings=settings).stock([catalogue[0]])).items  # slow but in time


async def test_the_breaker_opens_after_repeated_failures_and_recovers(
    suppliers: Suppliers, catalogue: list[str]
) -> None:
    suppliers.faults(error_rate=1.0)
    settings = HttpSettings(max_attempts=1, breaker_failure_threshold=3, breaker_cool_down=0.5)
    client = suppliers.client(settings=settings)
    for _ in range(3):
        with pytest.raises(SupplierUnavailable, match="answered 50"):
            await client.stock([catalogue[0]])
    with pytest.raises(SupplierUnavailable, match="circuit breaker open") as info:
        await client.stock([catalogue[0]])
    assert info.value.retry_after is not None and 0 < info.value.retry_after <= 0.5
    assert len(suppliers.recorder.take()) == 3  # the fourth call never reached the supplier
    suppliers.faults(error_rate=0.0)
    await asyncio.sleep(0.6)
    assert (await client.stock([catalogue[0]])).items  # the half-open trial succeeds and closes it
    assert (await client.stock([catalogue[0]])).items


async def test_eta_slip_is_visible_in_order_status(suppliers: Suppliers, catalogue: list[str]) -> None:
    in_stock(suppliers, catalogue[7])
    client = suppliers.client()
    placed = await client.place_order("PO-100007", [OrderLineRequest(catalogue[7], 1)])
    assert placed.eta is not None
    suppliers.faults(eta_slip_hours=24)
    first = await client.order_status(placed.supplier_order_id)
    second = await client.order_status(placed.supplier_order_id)
    assert first.eta == placed.eta + timedelta(hours=24)
    assert second.eta == placed.eta + timedelta(hours=48)
    assert second.lines[0].eta == second.eta


async def test_backorders(suppliers: Suppliers, catalogue: list[str]) -> None:
    client = suppliers.client()
    in_stock(suppliers, catalogue[8])
    normal = await client.place_order("PO-100008", [OrderLineRequest(catalogue[8], 1)])
    suppliers.faults(backorder_rate=1.0)
    backordered = await client.place_order("PO-100009", [OrderLineRequest(catalogue[8], 1)])
    assert backordered.state is OrderState.BACKORDERED
    assert backordered.lines[0].state is LineState.BACKORDERED
    assert normal.eta is not None and backordered.eta is not None
    assert backordered.eta - normal.eta >= timedelta(days=13)
    # Out of stock: backordered until the restock, whatever the dice.
    suppliers.faults(backorder_rate=0.0)
    in_stock(suppliers, catalogue[9], 0)
    short = await client.place_order("PO-100010", [OrderLineRequest(catalogue[9], 1)])
    assert short.state is OrderState.BACKORDERED
    # The supplier backorders a confirmed order later on: order_status shows it.
    suppliers.sandbox.advance(normal.supplier_order_id, "backorder", tenant=suppliers.tenant)
    later = await client.order_status(normal.supplier_order_id)
    assert later.state is OrderState.BACKORDERED and later.eta is not None and later.eta > normal.eta


async def test_partial_shipments(suppliers: Suppliers, catalogue: list[str]) -> None:
    in_stock(suppliers, catalogue[10])
    suppliers.faults(partial_ship=True)
    client = suppliers.client()
    placed = await client.place_order("PO-100011", [OrderLineRequest(catalogue[10], 3)])
    suppliers.sandbox.advance(placed.supplier_order_id, "ship", tenant=suppliers.tenant)
    partial = await client.order_status(placed.supplier_order_id)
    assert partial.state is OrderState.PARTIALLY_SHIPPED
    assert (partial.lines[0].shipped_quantity, partial.lines[0].state) == (2, LineState.OPEN)
    assert partial.tracking_number
    suppliers.sandbox.advance(placed.supplier_order_id, "ship", tenant=suppliers.tenant)
    shipped = await client.order_status(placed.supplier_order_id)
    assert shipped.state is OrderState.SHIPPED
    assert (shipped.lines[0].shipped_quantity, shipped.lines[0].state) == (3, LineState.SHIPPED)


# --- csv_feed -----------------------------------------------------------------------------------------


async def test_csv_feed_stock_agrees_with_the_api(suppliers: Suppliers, catalogue: list[str]) -> None:
    in_stock(suppliers, catalogue[0], 11)
    feed = suppliers.client(AdapterKind.CSV_FEED, api_key=None)
    answer = await feed.stock([catalogue[0], catalogue[1], "NO-SUCH-PART"])
    assert [item.supplier_sku for item in answer.items] == [catalogue[0], catalogue[1]]
    assert answer.unknown == ["NO-SUCH-PART"]
    api = await suppliers.client().stock([catalogue[0]])
    assert answer.items[0].available == api.items[0].available == 11
    assert answer.items[0].price_cents == api.items[0].price_cents


async def test_csv_feed_with_a_garbage_row_uses_the_good_rows(suppliers: Suppliers, catalogue: list[str]) -> None:
    suppliers.faults(malformed_rate=1.0)
    answer = await suppliers.client(AdapterKind.CSV_FEED).stock(catalogue)
    trusted = {item.supplier_sku for item in answer.items}
    assert len(trusted) == len(catalogue) - 1  # one row turned to garbage, rejected
    assert answer.unknown == []  # and its SKU is not claimed to be unknown either


async def test_csv_feed_errors_latency_and_429(suppliers: Suppliers, catalogue: list[str]) -> None:
    feed = suppliers.client(AdapterKind.CSV_FEED, settings=HttpSettings(max_attempts=2, backoff_base=0.01, deadline=2))
    suppliers.faults(error_rate=1.0)
    with pytest.raises(SupplierUnavailable):
        await feed.stock(catalogue[:1])
    suppliers.faults(error_rate=0.0, rate_429=1.0, retry_after_seconds=1)
    with pytest.raises(SupplierUnavailable) as info:
        await feed.stock(catalogue[:1])
    assert info.value.retry_after == 1.0
    suppliers.faults(rate_429=0.0, latency_ms=4000)
    with pytest.raises(SupplierUnavailable, match="deadline"):
        await feed.stock(catalogue[:1])


async def test_csv_feed_takes_no_orders(suppliers: Suppliers) -> None:
    feed = suppliers.client(AdapterKind.CSV_FEED)
    for call in (
        feed.place_order("PO-1", [OrderLineRequest("IPH13-BATTERY", 1)]),
        feed.order_status("ORD-1"),
        feed.cancel_order("ORD-1"),
    ):
        with pytest.raises(NotSupported, match="publishes a stock feed only: orders go by email"):
            await call
    assert suppliers.recorder.take() == []


# --- webhooks pushed by the sandbox -----------------------------------------------------------------


class Receiver:
    """A tiny HTTP endpoint that records each push (headers, raw body) and answers 204."""

    def __init__(self) -> None:
        self.pushes: list[tuple[dict[str, str], bytes]] = []
        received = self.pushes

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/webhooks/suppliers/1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


async def wait_for(receiver: Receiver, count: int) -> None:
    for _ in range(100):
        if len(receiver.pushes) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} pushes, got {len(receiver.pushes)}")


async def test_sandbox_pushes_verify_and_parse(suppliers: Suppliers, catalogue: list[str], receiver: Receiver) -> None:
    secret, old = new_secret(), new_secret()
    suppliers.sandbox.configure_webhooks(receiver.url, secret, tenant=suppliers.tenant)
    in_stock(suppliers, catalogue[11], 4)
    client = suppliers.client()
    placed = await client.place_order("PO-100012", [OrderLineRequest(catalogue[11], 2)])
    suppliers.sandbox.advance(placed.supplier_order_id, "ship", tenant=suppliers.tenant)
    await wait_for(receiver, 2)  # stock.changed, order.shipped
    events = []
    for headers, body in receiver.pushes:
        message = verify([old, secret], headers, body, now=datetime.now(UTC))  # rotation: either secret
        assert message.id.startswith("msg_")
        events.append(parse_event(body))
    stock, shipped = events[0], events[1]
    assert isinstance(stock, StockChanged) and stock.data.sku == catalogue[11] and stock.data.available == 4
    assert isinstance(shipped, OrderShipped)
    assert shipped.data.order_id == placed.supplier_order_id and shipped.data.po == "PO-100012"
    assert [(line.sku, line.shipped_quantity) for line in shipped.data.lines] == [(catalogue[11], 2)]
    headers, body = receiver.pushes[1]
    with pytest.raises(WebhookRejected) as info:
        verify([old], headers, body, now=datetime.now(UTC))
    assert info.value.status == 401
    with pytest.raises(WebhookRejected):
        verify([secret], headers, body.replace(b"PO-100012", b"PO-999999"), now=datetime.now(UTC))


async def test_an_eta_slip_on_read_is_pushed_as_eta_revised(
    suppliers: Suppliers, catalogue: list[str], receiver: Receiver
) -> None:
    secret = new_secret()
    in_stock(suppliers, catalogue[12])
    client = suppliers.client()
    placed = await client.place_order("PO-100013", [OrderLineRequest(catalogue[12], 1)])
    suppliers.sandbox.configure_webhooks(receiver.url, secret, tenant=suppliers.tenant)
    suppliers.faults(eta_slip_hours=12)
    status = await client.order_status(placed.supplier_order_id)
    await wait_for(receiver, 1)
    headers, body = receiver.pushes[0]
    verify([secret], headers, body, now=datetime.now(UTC))
    event = parse_event(body)
    assert isinstance(event, OrderEtaRevised)
    assert event.data.order_id == placed.supplier_order_id and event.data.eta == status.eta
    assert json.loads(body)["type"] == "order.eta_revised"


# --- rest_json: the changes feed ---------------------------------------------------------------------


def bulk(suppliers: Suppliers, sku: str, count: int, prefix: str = "PO-BULK") -> list[str]:
    """`count` orders created on the supplier's side at once (its benchmark route); their ids."""
    response = suppliers.sandbox.client.post(
        f"{suppliers.sandbox.tenant_url(suppliers.tenant)}/_sandbox/orders/bulk",
        json={"orders": [{"po": f"{prefix}-{n:05d}", "lines": [{"sku": sku, "quantity": 1}]} for n in range(count)]},
    )
    assert response.status_code == 201, response.text
    ids: list[str] = response.json()["ids"]
    return ids


async def test_order_changes_follows_the_pages_and_filters_by_since(suppliers: Suppliers, catalogue: list[str]) -> None:
    ids = bulk(suppliers, catalogue[0], 1500)
    client = suppliers.client()

    everything = await client.order_changes(None)

    assert suppliers.recorder.take() == [200, 200]  # 1,000 then 500
    assert sorted(order.supplier_order_id for order in everything.items) == sorted(ids)
    assert abs(everything.as_of - datetime.now(UTC)) < timedelta(seconds=5)
    assert all(order.updated_at is not None and order.lines for order in everything.items)

    await asyncio.sleep(1.1)  # the supplier's clock: a later second than every order above
    since = datetime.now(UTC)
    for order_id, action in ((ids[7], "ship"), (ids[3], "cancel")):
        suppliers.sandbox.advance(order_id, action, tenant=suppliers.tenant)

    newer = await client.order_changes(since)

    assert suppliers.recorder.take() == [200]
    assert [(o.supplier_order_id, o.state) for o in newer.items] == [
        (ids[7], OrderState.SHIPPED),
        (ids[3], OrderState.CANCELLED),
    ]  # oldest change first
    assert newer.items[0].tracking_number and newer.items[0].lines[0].shipped_quantity == 1
    assert (await client.order_changes(newer.as_of + timedelta(seconds=1))).items == []


async def test_reading_the_feed_slips_nothing(suppliers: Suppliers, catalogue: list[str]) -> None:
    (order_id,) = bulk(suppliers, catalogue[1], 1)
    suppliers.faults(eta_slip_hours=5)
    client = suppliers.client()
    first, second = await client.order_changes(None), await client.order_changes(None)
    assert first.items[0].eta == second.items[0].eta  # eta_slip_hours acts on a single order's GET only
    slipped = await client.order_status(order_id)
    assert slipped.eta == (first.items[0].eta or datetime.min) + timedelta(hours=5)


async def test_order_changes_errors_are_retried_then_unavailable(suppliers: Suppliers, catalogue: list[str]) -> None:
    bulk(suppliers, catalogue[0], 3)
    suppliers.faults(error_rate=1.0)
    client = suppliers.client()
    retried = False
    for _ in range(6):
        with pytest.raises(SupplierUnavailable):
            await client.order_changes(None)
        statuses = suppliers.recorder.take()
        assert set(statuses) <= {500, 502, 503} and (statuses[-1] == 500 or len(statuses) == 3)
        retried = retried or len(statuses) > 1
    assert retried  # (1/3)**6 odds that every call met a 500 first

    suppliers.faults(error_rate=0.0, rate_429=1.0, retry_after_seconds=1)
    with pytest.raises(SupplierUnavailable) as info:
        await client.order_changes(None)
    assert suppliers.recorder.take() == [429, 429, 429] and info.value.retry_after == 1.0


async def test_malformed_feed_pages_are_bad_supplier_data(suppliers: Suppliers, catalogue: list[str]) -> None:
    bulk(suppliers, catalogue[0], 3)
    suppliers.faults(malformed_rate=1.0)
    client = suppliers.client()
    for _ in range(4):  # truncated JSON or wrong types: never trusted, never retried
        with pytest.raises(BadSupplierData, match="order_changes"):
            await client.order_changes(None)
    assert suppliers.recorder.take() == [200] * 4


async def test_csv_feed_has_no_order_changes(suppliers: Suppliers) -> None:
    with pytest.raises(NotSupported):
        await suppliers.client(AdapterKind.CSV_FEED).order_changes(None)
    assert suppliers.recorder.take() == []
