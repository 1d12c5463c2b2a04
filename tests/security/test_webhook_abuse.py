"""Forged and replayed supplier webhooks, beyond tests/api/test_webhooks.py (which covers tampered bodies,
wrong secrets, missing headers, stale and future timestamps re-signed, unknown suppliers, a redelivered
stock report and two simultaneous deliveries): what an eavesdropper can do with one captured delivery —
send it again later, under a new id, with a fresh timestamp, to another supplier — and authentic pushes
built to break the parser. The captured delivery is applied once; everything else is refused and writes
nothing."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from service.persistence.db import create_engine
from service.settings import Settings
from service.uow import Database
from tests.api.helpers import assert_problem, events
from tests.api.parts_helpers import (
    NEW_SECRET,
    OLD_SECRET,
    SKU,
    add_part,
    add_supplier,
    event_body,
    job_parts,
    line_of,
    msg_id,
    new_tenant,
    place_order,
    push,
    signed_headers,
    supplier_skus,
)
from tests.conftest import Api, FakeClock
from tests.sandbox_fixture import SandboxServer
from tests.security.support import changed_tables, dump_tables


async def _stock(api: Api, supplier_id: int) -> int | None:
    item = (await supplier_skus(api, supplier_id)).get(SKU)
    return None if item is None else item["available"]


async def _captured(api: Api, sandbox: SandboxServer, clock: FakeClock) -> tuple[dict[str, Any], bytes, dict[str, str]]:
    """A supplier, and one authentic stock report of it as applied (and as an eavesdropper kept it)."""
    await add_part(api)
    supplier = await add_supplier(api, sandbox, new_tenant(), secrets=[NEW_SECRET])
    body = event_body("stock.changed", clock.now, sku=SKU, available=7)
    headers = signed_headers(NEW_SECRET, msg_id(), clock.now, body)
    applied = await push(api, supplier["id"], body, headers)
    assert applied.status_code == 200 and applied.json()["outcome"] == "applied", applied.text
    return supplier, body, headers


async def test_a_captured_order_event_replayed_is_applied_once(
    api: Api, sandbox: SandboxServer, clock: FakeClock
) -> None:
    placed = await place_order(api, sandbox, quantity=3, secrets=[NEW_SECRET])
    clock.advance(minutes=1)
    ref = {"order_id": placed.supplier_ref, "po": placed.order["po"]}
    body = event_body(
        "order.shipped", clock.now, **ref, tracking_number="TRK-1", lines=[{"sku": SKU, "shipped_quantity": 1}]
    )
    headers = signed_headers(NEW_SECRET, msg_id(), clock.now, body)

    outcomes = []
    for _ in range(3):
        response = await push(api, placed.supplier["id"], body, headers)
        assert response.status_code == 200, response.text
        outcomes.append(response.json()["outcome"])
        clock.advance(seconds=20)  # within the ±5 minutes: the id, not the clock, stops the replays

    assert outcomes == ["applied", "duplicate", "duplicate"]
    line = line_of(await job_parts(api, placed.job["ref"]), placed.line_id)
    assert line["shipped_quantity"] == 1
    assert [e["kind"] for e in await events(api, "tech.valence", placed.job["ref"])].count("part_shipped") == 1


async def test_a_captured_delivery_replayed_after_the_window_is_refused_even_once_its_id_is_forgotten(
    api: Api, sandbox: SandboxServer, clock: FakeClock, settings: Settings
) -> None:
    supplier, body, headers = await _captured(api, sandbox, clock)
    clock.advance(days=15)  # past the tolerance, and past the retention of webhook ids
    engine = create_engine(settings)
    try:
        async with Database(engine).transaction() as uow:
            assert await uow.suppliers.purge_webhooks(clock.now - timedelta(days=14)) == 1
    finally:
        await engine.dispose()
    before = await dump_tables(settings)

    replayed = await push(api, supplier["id"], body, headers)

    assert_problem(replayed, 401)
    assert changed_tables(before, await dump_tables(settings)) == []


async def test_a_captured_delivery_under_a_new_id_or_a_fresh_timestamp_is_refused(
    api: Api, sandbox: SandboxServer, clock: FakeClock, settings: Settings
) -> None:
    supplier, body, headers = await _captured(api, sandbox, clock)
    clock.advance(minutes=10)
    before = await dump_tables(settings)
    newer = body.replace(b'"available": 7', b'"available": 0')
    forged = {
        # The id dodges the deduplication; the signature covers it.
        "new id": (body, {**headers, "webhook-id": msg_id()}),
        # The timestamp passes the window; the signature covers it.
        "fresh timestamp": (body, {**headers, "webhook-timestamp": str(int(clock.now.timestamp()))}),
        "both": (body, {**headers, "webhook-id": msg_id(), "webhook-timestamp": str(int(clock.now.timestamp()))}),
        # The signature of one message on another body.
        "another body": (newer, {**headers, "webhook-timestamp": str(int(clock.now.timestamp()))}),
    }
    for name, (sent, sent_headers) in forged.items():
        refused = await push(api, supplier["id"], sent, sent_headers)
        assert refused.status_code == 401, (name, refused.status_code, refused.text)

    assert changed_tables(before, await dump_tables(settings)) == []
    assert await _stock(api, supplier["id"]) == 7


async def test_a_captured_delivery_sent_to_another_supplier_is_refused(
    api: Api, sandbox: SandboxServer, clock: FakeClock, settings: Settings
) -> None:
    _, body, headers = await _captured(api, sandbox, clock)
    other = await add_supplier(api, sandbox, new_tenant(), secrets=[OLD_SECRET])
    before = await dump_tables(settings)

    refused = await push(api, other["id"], body, headers)

    assert_problem(refused, 401)
    assert changed_tables(before, await dump_tables(settings)) == []
    assert await _stock(api, other["id"]) is None


async def test_authentic_pushes_built_to_break_the_parser_are_4xx(
    api: Api, sandbox: SandboxServer, clock: FakeClock, settings: Settings
) -> None:
    await add_part(api)
    supplier = await add_supplier(api, sandbox, new_tenant(), secrets=[NEW_SECRET])
    before = await dump_tables(settings)
    bodies = {
        "nested 200,000 deep": b"[" * 200_000 + b"]" * 200_000,
        "a number of 100,000 digits": event_body("stock.changed", clock.now, sku=SKU, available=0).replace(
            b'"available": 0', b'"available": ' + b"9" * 100_000
        ),
        "invalid UTF-8": b'{"type": "stock.changed", "data": {"sku": "\xff"}}',
        "a huge SKU": event_body("stock.changed", clock.now, sku="S" * 500_000, available=1),
    }
    for name, body in bodies.items():
        response = await push(api, supplier["id"], body, signed_headers(NEW_SECRET, msg_id(), clock.now, body))
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:300])
    assert changed_tables(before, await dump_tables(settings)) == []


async def test_a_flood_of_signatures_is_refused_quickly(api: Api, sandbox: SandboxServer, clock: FakeClock) -> None:
    await add_part(api)
    supplier = await add_supplier(api, sandbox, new_tenant(), secrets=[NEW_SECRET])
    body = event_body("stock.changed", clock.now, sku=SKU, available=1)
    headers = signed_headers(OLD_SECRET, msg_id(), clock.now, body)
    # Thousands of well-formed wrong signatures (rotation allows several): each is one HMAC compare at most.
    headers["webhook-signature"] = " ".join([headers["webhook-signature"]] * 2_000)
    started = time.perf_counter()

    refused = await push(api, supplier["id"], body, headers)

    assert refused.status_code in (400, 401), refused.text
    assert time.perf_counter() - started < 2
    assert await _stock(api, supplier["id"]) is None
