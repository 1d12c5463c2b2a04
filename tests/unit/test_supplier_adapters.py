"""The two supplier adapters against a scripted fake supplier: what they send, what they accept, what
they refuse; and the registry that keeps one client per supplier."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from structlog.testing import capture_logs

from integrations.http import Hooks, HttpSettings
from integrations.resilience import InMemoryBreakerStore, InMemoryRateLimiter
from integrations.suppliers.base import (
    AdapterKind,
    BadSupplierData,
    LineState,
    NotSupported,
    OrderLineRequest,
    OrderState,
    SupplierConfig,
    SupplierRejected,
)
from integrations.suppliers.csv_feed import CsvFeedClient
from integrations.suppliers.registry import SupplierClients, build_client
from integrations.suppliers.rest_json import RestJsonClient
from integrations.urlguard import UnsafeURL
from tests.unit.supplier_fakes import Answer, FakeTime, ScriptedSupplier

ETA = "2026-11-28T09:00:00Z"
REST = SupplierConfig(1, "Acme Parts", AdapterKind.REST_JSON, "http://127.0.0.1:9100/t/acme", api_key="sk-acme")
CSV = SupplierConfig(2, "Feedy", AdapterKind.CSV_FEED, "http://127.0.0.1:9100/t/feedy")


def build(config: SupplierConfig, supplier: ScriptedSupplier, **settings: Any) -> Any:
    time = FakeTime()
    return build_client(
        config,
        allow_private=True,
        breakers=InMemoryBreakerStore(),
        limiter=InMemoryRateLimiter(),
        settings=HttpSettings(**settings),
        hooks=Hooks(sleep=time.sleep, monotonic=time.monotonic, wall=time.wall_clock, transport=supplier.transport),
    )


def order(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "ORD-acme-0001",
        "po": "PO-000001",
        "state": "confirmed",
        "eta": ETA,
        "tracking_number": None,
        "updated_at": "2026-11-26T12:00:00Z",
        "lines": [{"sku": "A1", "quantity": 2, "shipped_quantity": 0, "state": "open", "eta": ETA}],
    }
    body.update(overrides)
    return body


def stock_answer(request: httpx.Request) -> httpx.Response:
    """A fake stock API: every asked SKU in stock, except those starting with 'X' (unknown)."""
    skus = parse_qs(request.url.query.decode())["skus"][0].split(",")
    items = [
        {"sku": s, "description": f"part {s}", "available": 3, "price_cents": 4500, "currency": "EUR", "eta": ETA}
        for s in skus
        if not s.startswith("X")
    ]
    return httpx.Response(200, json={"items": items, "unknown": [s for s in skus if s.startswith("X")]})


# --- rest_json: stock -------------------------------------------------------------------------------


async def test_stock_is_asked_in_batches_of_100_with_the_bearer_key() -> None:
    supplier = ScriptedSupplier(stock_answer)
    client = build(REST, supplier)
    skus = [f"S{n:03}" for n in range(250)] + ["X1", "S000"]  # a duplicate is asked once
    answer = await client.stock(skus)
    batches = [parse_qs(r.url.query.decode())["skus"][0].split(",") for r in supplier.requests]
    assert [len(b) for b in batches] == [100, 100, 51]
    assert all(r.url.path == "/t/acme/api/v1/stock" for r in supplier.requests)
    assert all(r.headers["authorization"] == "Bearer sk-acme" for r in supplier.requests)
    assert len(answer.items) == 250 and answer.unknown == ["X1"]
    first = answer.items[0]
    assert (first.supplier_sku, first.available, first.price_cents, first.currency) == ("S000", 3, 4500, "EUR")
    assert first.eta == datetime(2026, 11, 28, 9, tzinfo=UTC)


async def test_no_skus_no_request() -> None:
    supplier = ScriptedSupplier(stock_answer)
    assert (await build(REST, supplier).stock([])).items == []
    assert supplier.requests == []


@pytest.mark.parametrize("sku", ["", "A,B", " A"])
async def test_skus_that_would_corrupt_the_query_are_refused(sku: str) -> None:
    with pytest.raises(ValueError, match="invalid supplier SKU"):
        await build(REST, ScriptedSupplier(stock_answer)).stock([sku])


async def test_a_sku_the_supplier_left_out_is_in_neither_list() -> None:
    supplier = ScriptedSupplier(Answer(200, {"items": [], "unknown": ["B"]}))
    with capture_logs() as logs:
        answer = await build(REST, supplier).stock(["A", "B"])
    assert answer.items == [] and answer.unknown == ["B"]
    assert any(entry["event"] == "supplier.stock_incomplete" and entry["missing"] == 1 for entry in logs)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"items": [{"sku": "A", "avail', "body"),  # truncated JSON
        (b"<html>oops</html>", "body"),
        (b'{"items": [{"sku": "A", "available": "3", "currency": "EUR"}]}', "items.0.available"),
        (b'{"items": [{"sku": "A", "available": 3.0, "currency": "EUR"}]}', "items.0.available"),
        (b'{"items": [{"sku": "A", "available": -2, "currency": "EUR"}]}', "items.0.available"),
        (b'{"items": [{"sku": "A", "available": 3, "currency": "EUR", "eta": "2026-11-28T09:00:00"}]}', "eta"),
        (b'{"items": [{"sku": "A", "available": 3, "currency": "EUR", "price_cents": true}]}', "price_cents"),
        (b'{"items": "A"}', "items"),
        (b'{"unknown": []}', "items"),
    ],
)
async def test_malformed_stock_answers_are_bad_supplier_data(body: bytes, where: str) -> None:
    supplier = ScriptedSupplier(Answer(200, content=body))
    with capture_logs() as logs, pytest.raises(BadSupplierData, match=where) as info:
        await build(REST, supplier).stock(["A"])
    assert info.value.supplier == "Acme Parts"
    bad = next(entry for entry in logs if entry["event"] == "supplier.bad_data")
    assert bad["errors"] and bad["bytes"] == len(body)
    assert body.decode(errors="replace") not in repr(logs)  # the body itself is not logged


async def test_extra_fields_are_ignored() -> None:
    body = {"items": [{"sku": "A", "available": 1, "currency": "EUR", "warehouse": "north"}], "unknown": [], "v": 2}
    answer = await build(REST, ScriptedSupplier(Answer(200, body))).stock(["A"])
    assert answer.items[0].price_cents is None and answer.items[0].eta is None


async def test_an_answer_about_skus_not_asked_for_is_refused() -> None:
    body = {"items": [{"sku": "Z", "available": 1, "currency": "EUR"}], "unknown": []}
    with pytest.raises(BadSupplierData, match="not asked for"):
        await build(REST, ScriptedSupplier(Answer(200, body))).stock(["A"])


# --- rest_json: orders ------------------------------------------------------------------------------


async def test_place_order_sends_the_po_as_idempotency_key_and_is_retried() -> None:
    supplier = ScriptedSupplier(Answer(503), Answer(201, order()))
    client = build(REST, supplier)
    placed = await client.place_order("PO-000001", [OrderLineRequest("A1", 2)])
    assert len(supplier.requests) == 2
    for request in supplier.requests:
        assert request.method == "POST" and request.url.path == "/t/acme/api/v1/orders"
        assert request.headers["idempotency-key"] == "PO-000001"
        assert json.loads(request.content) == {"po": "PO-000001", "lines": [{"sku": "A1", "quantity": 2}]}
    assert placed.supplier_order_id == "ORD-acme-0001" and placed.state is OrderState.CONFIRMED
    assert placed.lines[0].state is LineState.OPEN and placed.lines[0].quantity == 2


async def test_place_order_refuses_an_order_for_another_po() -> None:
    with pytest.raises(BadSupplierData, match="another PO"):
        await build(REST, ScriptedSupplier(Answer(201, order(po="PO-999")))).place_order(
            "PO-000001", [OrderLineRequest("A1", 1)]
        )


async def test_a_po_already_used_for_other_lines_is_a_rejection_not_a_retry() -> None:
    supplier = ScriptedSupplier(Answer(200, order()))  # the supplier's order under PO-000001: 2 x A1
    with pytest.raises(SupplierRejected, match="already names order ORD-acme-0001") as info:
        await build(REST, supplier).place_order("PO-000001", [OrderLineRequest("A1", 1)])
    assert info.value.status_code == 409
    same = await build(REST, supplier).place_order("PO-000001", [OrderLineRequest("A1", 1), OrderLineRequest("A1", 1)])
    assert same.supplier_order_id == "ORD-acme-0001"  # the same lines, however split: a retry


async def test_an_unknown_sku_in_an_order_is_a_rejection() -> None:
    supplier = ScriptedSupplier(Answer(422, {"error": "unknown SKU Q"}))
    with pytest.raises(SupplierRejected, match="unknown SKU Q") as info:
        await build(REST, supplier).place_order("PO-2", [OrderLineRequest("Q", 1)])
    assert info.value.status_code == 422


@pytest.mark.parametrize("lines", [[], [OrderLineRequest("A", 0)]])
async def test_place_order_refuses_empty_orders_before_calling(lines: list[OrderLineRequest]) -> None:
    supplier = ScriptedSupplier(Answer(201, order()))
    with pytest.raises(ValueError):
        await build(REST, supplier).place_order("PO-1", lines)
    assert supplier.requests == []


async def test_order_status_escapes_the_id_and_checks_the_answer_is_that_order() -> None:
    supplier = ScriptedSupplier(Answer(200, order(id="../admin")))
    status = await build(REST, supplier).order_status("../admin")
    assert supplier.requests[0].url.raw_path == b"/t/acme/api/v1/orders/..%2Fadmin"
    assert status.supplier_order_id == "../admin"
    with pytest.raises(BadSupplierData, match="another order"):
        await build(REST, ScriptedSupplier(Answer(200, order()))).order_status("ORD-acme-0002")


async def test_order_with_inconsistent_lines_is_refused() -> None:
    bad = order(lines=[{"sku": "A1", "quantity": 1, "shipped_quantity": 2, "state": "shipped"}])
    with pytest.raises(BadSupplierData, match="shipped more than ordered"):
        await build(REST, ScriptedSupplier(Answer(200, bad))).order_status("ORD-acme-0001")
    with pytest.raises(BadSupplierData, match="state"):
        await build(REST, ScriptedSupplier(Answer(200, order(state="lost")))).order_status("ORD-acme-0001")


async def test_cancel_is_retried_and_a_shipped_order_is_a_409_rejection() -> None:
    supplier = ScriptedSupplier(httpx.ConnectError, Answer(200, order(state="cancelled")))
    cancelled = await build(REST, supplier).cancel_order("ORD-acme-0001")
    assert cancelled.state is OrderState.CANCELLED
    assert [r.url.path for r in supplier.requests] == ["/t/acme/api/v1/orders/ORD-acme-0001/cancel"] * 2
    with pytest.raises(SupplierRejected) as info:
        await build(REST, ScriptedSupplier(Answer(409, {"error": "shipped"}))).cancel_order("ORD-acme-0001")
    assert info.value.status_code == 409


# --- csv_feed -------------------------------------------------------------------------------------

HEADER = "sku,description,available,price_cents,currency,eta\r\n"


def feed(*rows: str, header: str = HEADER) -> Answer:
    return Answer(
        200, content=(header + "".join(row + "\r\n" for row in rows)).encode(), headers={"content-type": "text/csv"}
    )


async def test_csv_stock_reads_the_feed() -> None:
    supplier = ScriptedSupplier(feed("A1,Screen,3,4500,EUR," + ETA, 'B2,"Battery, 3000mAh",0,1900,EUR,'))
    client = build(CSV, supplier)
    assert isinstance(client, CsvFeedClient)
    answer = await client.stock(["A1", "B2", "C3"])
    assert supplier.requests[0].url.path == "/t/feedy/feed.csv"
    assert "authorization" not in supplier.requests[0].headers  # no key configured
    assert [(i.supplier_sku, i.available, i.price_cents, i.eta) for i in answer.items] == [
        ("A1", 3, 4500, datetime(2026, 11, 28, 9, tzinfo=UTC)),
        ("B2", 0, 1900, None),
    ]
    assert answer.unknown == ["C3"]


@pytest.mark.parametrize(
    "header",
    [
        "sku,description,available,price_cents,currency\r\n",  # eta missing
        "sku,description,available,price,currency,eta\r\n",
        "sku,sku,description,available,price_cents,currency,eta\r\n",
        "",
    ],
)
async def test_a_feed_with_a_wrong_header_is_refused_whole(header: str) -> None:
    supplier = ScriptedSupplier(feed("A1,Screen,3,4500,EUR,", header=header) if header else Answer(200, content=b""))
    with pytest.raises(BadSupplierData):
        await build(CSV, supplier).stock(["A1"])


async def test_a_header_in_another_order_with_extra_columns_is_fine() -> None:
    header = "currency,sku,available,eta,price_cents,description,warehouse\r\n"
    answer = await build(CSV, ScriptedSupplier(feed("EUR,A1,3,,4500,Screen,north", header=header))).stock(["A1"])
    assert answer.items[0].available == 3 and answer.items[0].currency == "EUR"


async def test_bad_rows_are_rejected_and_logged_while_good_rows_are_used() -> None:
    rows = (
        "A1,Screen,3,4500,EUR,",
        "B2,Battery,three,1900,EUR,",  # not a number
        "C3,Cable,1_000,100,EUR,",  # int() would take it; the feed may not
        "D4,Port,-1,100,EUR,",
        "E5,Glass,2,100,eur,",
        "F6,Frame,2,100,EUR,2026-11-28T09:00:00",  # naive eta
        "G7,Lens,2,100,EUR,1795000000",  # not ISO 8601
        "H8,Too,many,fields,EUR,,x",
        "\x00\xff garbage",
        "I9,Hinge,5,,EUR,",  # no price: fine
    )
    supplier = ScriptedSupplier(feed(*rows))
    with capture_logs() as logs:
        answer = await build(CSV, supplier).stock(["A1", "B2", "C3", "D4", "E5", "F6", "G7", "H8", "I9", "Z0"])
    assert [i.supplier_sku for i in answer.items] == ["A1", "I9"]
    assert answer.items[1].price_cents is None
    # Rejected rows gave no trustworthy answer: not "unknown" either.
    assert answer.unknown == ["Z0"]
    entry = next(e for e in logs if e["event"] == "supplier.feed_rows_rejected")
    assert entry["rejected"] == 8 and entry["accepted"] == 2
    assert "Battery" not in repr(logs) and "garbage" not in repr(logs)


async def test_conflicting_duplicate_rows_make_a_sku_untrusted() -> None:
    rows = ("A1,Screen,3,4500,EUR,", "A1,Screen,9,4500,EUR,", "B2,Cable,1,100,EUR,", "B2,Cable,1,100,EUR,")
    answer = await build(CSV, ScriptedSupplier(feed(*rows))).stock(["A1", "B2"])
    assert [i.supplier_sku for i in answer.items] == ["B2"]
    assert answer.unknown == []


async def test_a_feed_that_is_not_utf8_is_refused() -> None:
    supplier = ScriptedSupplier(Answer(200, content=HEADER.encode() + b"A1,\xe9cran,3,4500,EUR,\r\n"))
    with pytest.raises(BadSupplierData, match="UTF-8"):
        await build(CSV, supplier).stock(["A1"])


async def test_a_csv_supplier_with_a_key_gets_it_as_a_bearer() -> None:
    supplier = ScriptedSupplier(feed("A1,Screen,3,4500,EUR,"))
    config = SupplierConfig(3, "Keyed", AdapterKind.CSV_FEED, "http://127.0.0.1:9100", api_key="k3")
    await build(config, supplier).stock(["A1"])
    assert supplier.requests[0].headers["authorization"] == "Bearer k3"


async def test_csv_suppliers_take_no_orders() -> None:
    supplier = ScriptedSupplier(feed())
    client = build(CSV, supplier)
    reason = "Feedy publishes a stock feed only: orders go by email, which Atelier does not send"
    with pytest.raises(NotSupported) as info:
        await client.place_order("PO-1", [OrderLineRequest("A1", 1)])
    assert info.value.reason == reason and info.value.supplier == "Feedy"
    with pytest.raises(NotSupported, match="stock feed only"):
        await client.order_status("X")
    with pytest.raises(NotSupported, match="stock feed only"):
        await client.cancel_order("X")
    assert supplier.requests == []


# --- building and keeping clients -------------------------------------------------------------------


def test_build_client_picks_the_adapter_and_checks_the_url() -> None:
    supplier = ScriptedSupplier()
    assert isinstance(build(REST, supplier), RestJsonClient)
    assert isinstance(build(CSV, supplier), CsvFeedClient)
    with pytest.raises(UnsafeURL, match="loopback"):
        build_client(REST, allow_private=False, breakers=InMemoryBreakerStore(), limiter=InMemoryRateLimiter())
    with pytest.raises(UnsafeURL, match="credentials"):
        bad = SupplierConfig(4, "Bad", AdapterKind.REST_JSON, "https://u:p@supplier.example")
        build_client(bad, allow_private=True, breakers=InMemoryBreakerStore(), limiter=InMemoryRateLimiter())


def clients(supplier: ScriptedSupplier, **kwargs: Any) -> SupplierClients:
    return SupplierClients(
        allow_private=True,
        breakers=InMemoryBreakerStore(),
        limiter=InMemoryRateLimiter(),
        hooks=Hooks(transport=supplier.transport),
        **kwargs,
    )


async def test_one_client_per_supplier_rebuilt_when_its_config_changes() -> None:
    supplier = ScriptedSupplier(stock_answer)
    registry = clients(supplier, retire_grace=0.0)
    first = registry.get(REST)
    assert registry.get(SupplierConfig(1, "Acme Parts", AdapterKind.REST_JSON, REST.base_url, "sk-acme")) is first
    rotated = registry.get(SupplierConfig(1, "Acme Parts", AdapterKind.REST_JSON, REST.base_url, "sk-new"))
    assert rotated is not first and len(registry) == 1
    await rotated.stock(["A"])
    assert supplier.requests[-1].headers["authorization"] == "Bearer sk-new"
    await registry.aclose()
    with pytest.raises(RuntimeError):  # closed with the registry
        await rotated.stock(["A"])
    with pytest.raises(RuntimeError):
        await first.stock(["A"])
    with pytest.raises(RuntimeError, match="closed"):
        registry.get(REST)


async def test_a_replaced_client_keeps_serving_until_its_grace_period_ends() -> None:
    import asyncio

    supplier = ScriptedSupplier(stock_answer)
    registry = clients(supplier, retire_grace=0.05)
    old = registry.get(REST)
    registry.get(SupplierConfig(1, "Acme Parts", AdapterKind.REST_JSON, "http://127.0.0.1:9101"))
    await old.stock(["A"])  # a call that started before the change still works
    await asyncio.sleep(0.2)
    with pytest.raises(RuntimeError):
        await old.stock(["A"])
    await registry.aclose()


async def test_forget_closes_a_removed_supplier() -> None:
    supplier = ScriptedSupplier(stock_answer)
    registry = clients(supplier, retire_grace=0.0)
    client = registry.get(CSV)
    registry.forget(CSV.id)
    assert len(registry) == 0
    await registry.aclose()
    with pytest.raises(RuntimeError):
        await client.stock(["A"])


async def test_suppliers_share_nothing_but_the_stores() -> None:
    supplier = ScriptedSupplier(Answer(500))
    registry = clients(supplier, settings=HttpSettings(breaker_failure_threshold=1))
    other = SupplierConfig(9, "Other", AdapterKind.REST_JSON, "http://127.0.0.1:9100/t/other", api_key="k")
    from integrations.suppliers.base import SupplierUnavailable

    with pytest.raises(SupplierUnavailable, match="answered 500"):
        await registry.get(REST).stock(["A"])
    with pytest.raises(SupplierUnavailable, match="circuit breaker open"):
        await registry.get(REST).stock(["A"])
    with pytest.raises(SupplierUnavailable, match="answered 500"):  # its own breaker, still closed
        await registry.get(other).stock(["A"])
    await registry.aclose()
