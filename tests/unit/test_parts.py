"""Part lines and supplier orders: SKUs and PO numbers, promises and ETAs, lateness, receiving, and the
facts suppliers report (late, twice or out of order)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidValue, RuleConflict
from domain.model import EventKind
from domain.parts import (
    EtaRevision,
    EtaSource,
    FactKind,
    OrderStatus,
    PartLine,
    PartStatus,
    SupplierFact,
    SupplierOrder,
    all_received,
    format_po,
    normalise_sku,
    parse_po,
    parts_eta,
    waiting_without_date,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the order is acknowledged
PROMISE = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # the ETA the supplier gave when we ordered
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

SUPPLIER_ID = 3
ORDER_ID = 11


def make_line(line_id: int = 1, *, sku: str = "IPH13-SCREEN-OLED", quantity: int = 1) -> PartLine:
    return PartLine(line_id, job_id=100, branch_id=1, sku=sku, quantity=quantity, created_at=T0 - DAY)


def ordered_line(
    line_id: int = 1,
    *,
    sku: str = "IPH13-SCREEN-OLED",
    supplier_sku: str | None = None,
    quantity: int = 1,
    eta: datetime | None = PROMISE,
    backordered: bool = False,
    at: datetime = T0,
) -> PartLine:
    line = make_line(line_id, sku=sku, quantity=quantity)
    line.ordered(
        supplier_id=SUPPLIER_ID,
        supplier_sku=supplier_sku or f"S-{sku}",
        order_id=ORDER_ID,
        unit_price_cents=8900,
        eta=eta,
        backordered=backordered,
        at=at,
        actor="theo.tech",
    )
    return line


def make_order(*lines: PartLine) -> SupplierOrder:
    return SupplierOrder(
        ORDER_ID,
        SUPPLIER_ID,
        branch_id=1,
        job_id=100,
        placed_at=T0,
        placed_by="theo.tech",
        choice_reason="standard: cheapest offer that still meets the due date",
        lines=list(lines),
    )


def fact(kind: FactKind, at: datetime, **kwargs: Any) -> SupplierFact:
    return SupplierFact(kind, at, EtaSource.WEBHOOK, **kwargs)


def history(line: PartLine) -> tuple[int, int, int]:
    return line.version, len(line.pending_events), len(line.pending_revisions)


def state(line: PartLine) -> dict[str, Any]:
    """What a line *is* (not the history of how it got there)."""
    return {
        "status": line.status,
        "eta": line.eta,
        "promised_at": line.promised_at,
        "shipped_quantity": line.shipped_quantity,
        "received_quantity": line.received_quantity,
        "fact_at": line.fact_at,
        "status_fact_at": line.status_fact_at,
        "cancelled_by_supplier": line.cancelled_by_supplier,
        "cancel_reason": line.cancel_reason,
    }


def unchanged(line: PartLine, change: Callable[[], object]) -> object:
    """Run `change`, check it left the line and its history exactly as they were; return its result."""
    before, seen = state(line), history(line)
    result = change()
    assert state(line) == before
    assert history(line) == seen
    return result


def refused(line: PartLine, change: Callable[[], object]) -> None:
    """Run `change`, check it raised RuleConflict and left the line and its history as they were."""
    before, seen = state(line), history(line)
    with pytest.raises(RuleConflict):
        change()
    assert state(line) == before
    assert history(line) == seen


# --- SKUs and purchase orders ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "sku"),
    [
        ("iph13-screen-oled", "IPH13-SCREEN-OLED"),
        ("  Bat_S21.v2 ", "BAT_S21.V2"),
        ("0", "0"),
        ("a" * 64, "A" * 64),
    ],
)
def test_normalise_sku_upper_cases_and_strips(raw: str, sku: str) -> None:
    assert normalise_sku(raw) == sku


@pytest.mark.parametrize("raw", ["", "   ", "-screen", ".screen", "iph 13", "écran", "a/b", "a" * 65])
def test_normalise_sku_rejects_what_is_not_a_code(raw: str) -> None:
    with pytest.raises(InvalidValue) as info:
        normalise_sku(raw, field="lines[0].sku")
    assert info.value.field == "lines[0].sku"


@pytest.mark.parametrize(("order_id", "po"), [(1, "PO-000001"), (42, "PO-000042"), (1234567, "PO-1234567")])
def test_format_po_pads_to_six_digits_and_parse_po_reads_it_back(order_id: int, po: str) -> None:
    assert format_po(order_id) == po
    assert parse_po(po) == order_id


def test_parse_po_tolerates_case_and_spaces() -> None:
    assert parse_po("  po-000042 ") == 42


@pytest.mark.parametrize("po", ["", "PO-", "PO-12a", "PX-000042", "000042", "PO--42", "PO-4 2", "AT-000042"])
def test_parse_po_returns_none_for_what_is_not_our_po(po: str) -> None:
    assert parse_po(po) is None


def test_an_order_has_no_po_before_it_is_stored() -> None:
    order = make_order()
    assert order.po == "PO-000011"
    order.id = None
    with pytest.raises(RuleConflict):
        _ = order.po


def test_quantity_is_between_1_and_100() -> None:
    for quantity in (0, 101):
        with pytest.raises(InvalidValue):
            make_line(quantity=quantity)
    assert make_line(quantity=100).quantity == 100


# --- ordering and ETAs -----------------------------------------------------------------------


def test_ordered_makes_the_eta_the_promise_and_records_an_order_revision() -> None:
    line = make_line(7)
    line.ordered(
        supplier_id=SUPPLIER_ID,
        supplier_sku="S-OLED",
        order_id=ORDER_ID,
        unit_price_cents=8900,
        eta=PROMISE,
        backordered=False,
        at=T0,
        actor="theo.tech",
    )
    assert line.status is PartStatus.ORDERED
    assert (line.promised_at, line.eta) == (PROMISE, PROMISE)
    assert (line.supplier_id, line.supplier_sku, line.order_id, line.unit_price_cents) == (
        SUPPLIER_ID,
        "S-OLED",
        ORDER_ID,
        8900,
    )
    # The supplier's first statement counts whatever its time (its clock is not ours).
    assert line.fact_at is None and line.status_fact_at is None
    assert line.pending_revisions == [EtaRevision(7, EtaSource.ORDER, T0, None, PROMISE, SUPPLIER_ID)]
    [event] = line.pending_events
    assert event.kind is EventKind.PART_ORDERED
    assert (event.at, event.actor) == (T0, "theo.tech")
    assert event.data["line_id"] == 7
    assert event.data["order_id"] == ORDER_ID
    assert event.data["status"] == "ordered"
    assert event.data["promised_at"] == PROMISE.isoformat()


def test_ordered_as_backordered_starts_backordered() -> None:
    line = ordered_line(backordered=True)
    assert line.status is PartStatus.BACKORDERED
    assert line.waiting


def test_ordered_without_an_eta_promises_nothing() -> None:
    line = ordered_line(eta=None)
    assert line.promised_at is None
    assert line.eta is None
    assert line.pending_revisions == []
    assert "promised_at" not in line.pending_events[-1].data


def test_a_line_on_one_order_cannot_be_ordered_again_on_another() -> None:
    line = ordered_line()
    with pytest.raises(RuleConflict):
        line.ordered(
            supplier_id=4,
            supplier_sku="X",
            order_id=ORDER_ID + 1,
            unit_price_cents=100,
            eta=PROMISE,
            backordered=False,
            at=T0 + HOUR,
            actor="theo.tech",
        )
    assert (line.order_id, line.supplier_id, line.status) == (ORDER_ID, SUPPLIER_ID, PartStatus.ORDERED)


def test_a_cancelled_line_can_be_ordered_again_elsewhere() -> None:
    line = ordered_line()
    line.cancel(T0 + HOUR, "theo.tech", "too slow")
    new_promise = PROMISE - DAY
    line.ordered(
        supplier_id=4,
        supplier_sku="FAST-OLED",
        order_id=ORDER_ID + 1,
        unit_price_cents=9900,
        eta=new_promise,
        backordered=False,
        at=T0 + 2 * HOUR,
        actor="theo.tech",
    )
    assert line.status is PartStatus.ORDERED
    assert (line.supplier_id, line.order_id, line.promised_at, line.eta) == (4, ORDER_ID + 1, new_promise, new_promise)
    assert line.cancel_reason is None


def test_a_line_put_on_a_new_po_after_a_cancellation_is_needed_again_and_its_po_stays_open() -> None:
    line = ordered_line()
    line.cancel(T0 + HOUR, None, "re-sourced: B can deliver sooner")
    line.put_on_order(ORDER_ID + 1, 9900, T0 + 2 * HOUR)
    assert (line.status, line.order_id, line.unit_price_cents) == (PartStatus.NEEDED, ORDER_ID + 1, 9900)
    assert (line.cancel_reason, line.cancelled_by_supplier) == (None, False)
    new_order = make_order(line)
    new_order.id = ORDER_ID + 1
    # The supplier's first word about the new PO (its answer to us was lost) does not close it.
    new_order.apply(fact(FactKind.CONFIRMED, T0 + 3 * HOUR, eta=PROMISE, supplier_sku=line.supplier_sku), T0)
    assert new_order.status is OrderStatus.CONFIRMED
    assert line.status is PartStatus.NEEDED


def test_only_a_needed_or_cancelled_line_is_put_on_a_po() -> None:
    line = ordered_line()
    refused(line, lambda: line.put_on_order(ORDER_ID + 1, 9900, T0 + HOUR))


def test_a_refused_po_frees_its_line_and_an_ordered_line_keeps_its_order() -> None:
    line = make_line()
    line.put_on_order(ORDER_ID, 9900, T0)
    line.take_off_order(T0 + HOUR)
    assert (line.status, line.order_id) == (PartStatus.NEEDED, None)
    ordered = ordered_line()
    refused(ordered, lambda: ordered.take_off_order(T0 + HOUR))


def test_reordering_a_cancelled_line_without_an_eta_forgets_the_old_suppliers_eta() -> None:
    """The new supplier gave no date: the cancelled order's ETA must not stand in for it."""
    line = ordered_line()
    line.cancel(T0 + HOUR, "theo.tech", "too slow")
    line.ordered(
        supplier_id=4,
        supplier_sku="OTHER-OLED",
        order_id=ORDER_ID + 1,
        unit_price_cents=9900,
        eta=None,
        backordered=False,
        at=T0 + 2 * HOUR,
        actor="theo.tech",
    )
    assert line.promised_at is None
    assert line.eta is None
    assert parts_eta([line]) is None
    assert waiting_without_date([line])


def test_staff_revising_the_eta_records_old_new_and_source_and_an_event() -> None:
    line = ordered_line(7)
    new_eta = PROMISE + 2 * DAY
    assert line.revise_eta(new_eta, EtaSource.STAFF, T0 + HOUR, "dana.desk", "phoned the supplier") is True
    assert line.eta == new_eta
    assert line.promised_at == PROMISE  # the promise stays what it was
    revision = line.pending_revisions[-1]
    assert revision == EtaRevision(7, EtaSource.STAFF, T0 + HOUR, PROMISE, new_eta, SUPPLIER_ID)
    assert revision.slipped
    event = line.pending_events[-1]
    assert event.kind is EventKind.ETA_REVISED
    assert (event.at, event.actor, event.note) == (T0 + HOUR, "dana.desk", "phoned the supplier")
    assert event.data["old_eta"] == PROMISE.isoformat()
    assert event.data["new_eta"] == new_eta.isoformat()
    assert event.data["source"] == "staff"


def test_revising_to_the_same_eta_changes_nothing() -> None:
    line = ordered_line()
    assert unchanged(line, lambda: line.revise_eta(PROMISE, EtaSource.STAFF, T0 + HOUR, "dana.desk", None)) is False


def test_an_earlier_eta_is_not_a_slip() -> None:
    line = ordered_line()
    line.revise_eta(PROMISE - DAY, EtaSource.STAFF, T0 + HOUR, "dana.desk", None)
    assert not line.pending_revisions[-1].slipped
    assert not EtaRevision(1, EtaSource.ORDER, T0, None, PROMISE).slipped


def test_a_part_no_longer_awaited_has_no_eta_to_revise() -> None:
    line = ordered_line()
    line.receive(1, T0 + DAY, "dana.desk")
    with pytest.raises(RuleConflict):
        line.revise_eta(PROMISE + DAY, EtaSource.STAFF, T0 + DAY, "dana.desk", None)
    assert line.eta == PROMISE


# --- lateness --------------------------------------------------------------------------------


def test_a_line_never_promised_is_never_late() -> None:
    needed = make_line()
    assert needed.late_by(PROMISE + 30 * DAY) == timedelta(0)
    undated = ordered_line(eta=None)
    assert undated.late_by(PROMISE + 30 * DAY) == timedelta(0)
    assert not undated.is_late(PROMISE + 30 * DAY)


def test_a_line_on_time_is_not_late() -> None:
    line = ordered_line()
    assert line.late_by(T0) == timedelta(0)
    assert line.late_by(PROMISE) == timedelta(0)
    assert not line.is_late(PROMISE)


def test_a_future_eta_after_the_promise_is_late_by_the_difference() -> None:
    line = ordered_line()
    line.revise_eta(PROMISE + 2 * DAY, EtaSource.POLL, T0 + HOUR, None, None)
    assert line.late_by(T0 + HOUR) == 2 * DAY
    assert line.late_by(PROMISE + DAY) == 2 * DAY  # the ETA is still ahead: the delay is what it says
    assert line.is_late(T0 + HOUR)


def test_a_passed_eta_without_the_part_is_late_by_more_as_time_goes() -> None:
    line = ordered_line()
    assert line.late_by(PROMISE + 5 * HOUR) == 5 * HOUR
    assert line.late_by(PROMISE + 2 * DAY) == 2 * DAY
    assert line.is_late(PROMISE + HOUR)


def test_a_line_received_late_stays_late_by_the_same_amount() -> None:
    line = ordered_line()
    line.receive(1, PROMISE + 30 * HOUR, "dana.desk")
    assert line.late_by(PROMISE + 30 * HOUR) == 30 * HOUR
    assert line.late_by(PROMISE + 30 * DAY) == 30 * HOUR
    line.fit(PROMISE + 40 * HOUR, "theo.tech")
    assert line.late_by(PROMISE + 60 * DAY) == 30 * HOUR
    assert not line.is_late(PROMISE + 60 * DAY)  # late, but no longer awaited


def test_a_line_received_early_is_not_late() -> None:
    line = ordered_line()
    line.receive(1, PROMISE - DAY, "dana.desk")
    assert line.late_by(PROMISE + DAY) == timedelta(0)


def test_a_cancelled_line_is_never_late() -> None:
    line = ordered_line()
    line.cancel(T0 + HOUR, "theo.tech", "customer changed their mind")
    assert line.late_by(PROMISE + 10 * DAY) == timedelta(0)
    assert not line.is_late(PROMISE + 10 * DAY)


def test_expected_at_is_the_eta_or_now_once_it_passed() -> None:
    line = ordered_line()
    assert line.expected_at(T0) == PROMISE
    assert line.expected_at(PROMISE + HOUR) == PROMISE + HOUR
    assert make_line().expected_at(T0) is None


# --- receiving, fitting, cancelling ----------------------------------------------------------


def test_receiving_part_then_all_of_a_line() -> None:
    line = ordered_line(quantity=3)
    assert line.receive(2, PROMISE - HOUR, "dana.desk") == 2
    assert line.status is PartStatus.ORDERED
    assert line.received_quantity == 2
    assert line.received_at is None
    assert line.waiting
    event = line.pending_events[-1]
    assert event.kind is EventKind.PART_RECEIVED
    assert event.data["quantity"] == 2
    assert event.data["received_quantity"] == 2
    assert "late_by_seconds" not in event.data

    assert line.receive(5, PROMISE + HOUR, "dana.desk") == 1  # only one more was ordered
    assert line.status is PartStatus.RECEIVED
    assert line.received_quantity == 3
    assert line.shipped_quantity == 3
    assert line.received_at == PROMISE + HOUR
    assert not line.waiting
    event = line.pending_events[-1]
    assert event.kind is EventKind.PART_RECEIVED
    assert (event.at, event.actor) == (PROMISE + HOUR, "dana.desk")
    assert event.data["quantity"] == 1
    assert event.data["late_by_seconds"] == 3600


def test_a_received_line_takes_nothing_more() -> None:
    line = ordered_line()
    line.receive(1, PROMISE, "dana.desk")
    with pytest.raises(RuleConflict):
        line.receive(1, PROMISE + HOUR, "dana.desk")
    assert line.received_quantity == 1


@pytest.mark.parametrize("status", [PartStatus.NEEDED, PartStatus.CANCELLED])
def test_nothing_is_received_for_a_line_not_on_order(status: PartStatus) -> None:
    line = make_line() if status is PartStatus.NEEDED else ordered_line()
    if status is PartStatus.CANCELLED:
        line.cancel(T0 + HOUR, "theo.tech", "not needed")
    with pytest.raises(RuleConflict):
        line.receive(1, PROMISE, "dana.desk")
    assert line.received_quantity == 0


def test_receiving_a_backordered_or_shipped_line_is_allowed() -> None:
    backordered = ordered_line(backordered=True)
    assert backordered.receive(1, PROMISE, "dana.desk") == 1
    assert backordered.status is PartStatus.RECEIVED
    shipped = ordered_line()
    shipped.apply(fact(FactKind.SHIPPED, T0 + HOUR, shipped={shipped.supplier_sku: 1}), T0 + HOUR)
    assert shipped.status is PartStatus.SHIPPED
    assert shipped.receive(1, PROMISE, "dana.desk") == 1
    assert shipped.status is PartStatus.RECEIVED


def test_only_a_received_part_is_fitted() -> None:
    line = ordered_line(quantity=2)
    with pytest.raises(RuleConflict):
        line.fit(PROMISE, "theo.tech")
    line.receive(1, PROMISE, "dana.desk")
    with pytest.raises(RuleConflict):
        line.fit(PROMISE, "theo.tech")  # half of it is still missing
    assert line.status is PartStatus.ORDERED
    line.receive(1, PROMISE + HOUR, "dana.desk")
    line.fit(PROMISE + 2 * HOUR, "theo.tech")
    assert line.status is PartStatus.FITTED
    event = line.pending_events[-1]
    assert (event.kind, event.at, event.actor) == (EventKind.PART_FITTED, PROMISE + 2 * HOUR, "theo.tech")
    with pytest.raises(RuleConflict):
        line.fit(PROMISE + 3 * HOUR, "theo.tech")


def test_staff_cancel_an_ordered_line_with_a_reason() -> None:
    line = ordered_line()
    assert line.cancel(T0 + HOUR, "theo.tech", "customer declined") is True
    assert line.status is PartStatus.CANCELLED
    assert line.cancel_reason == "customer declined"
    assert not line.cancelled_by_supplier
    event = line.pending_events[-1]
    assert event.kind is EventKind.PART_CANCELLED
    assert event.data["reason"] == "customer declined"
    assert event.data["by_supplier"] is False


def test_staff_cannot_cancel_a_shipped_line() -> None:
    line = ordered_line()
    line.apply(fact(FactKind.SHIPPED, T0 + HOUR, shipped={line.supplier_sku: 1}), T0 + HOUR)
    assert line.status is PartStatus.SHIPPED
    refused(line, lambda: line.cancel(T0 + 2 * HOUR, "theo.tech", "too late"))


@pytest.mark.parametrize("settled", [PartStatus.RECEIVED, PartStatus.FITTED, PartStatus.CANCELLED])
def test_staff_cannot_cancel_a_settled_line(settled: PartStatus) -> None:
    line = ordered_line()
    if settled is PartStatus.CANCELLED:
        line.cancel(T0 + HOUR, "theo.tech", "first")
    else:
        line.receive(1, PROMISE, "dana.desk")
        if settled is PartStatus.FITTED:
            line.fit(PROMISE + HOUR, "theo.tech")
    assert line.status is settled
    refused(line, lambda: line.cancel(PROMISE + 2 * HOUR, "theo.tech", "again"))


def test_the_supplier_may_cancel_a_shipped_line() -> None:
    line = ordered_line()
    line.apply(fact(FactKind.SHIPPED, T0 + HOUR, shipped={line.supplier_sku: 1}), T0 + HOUR)
    assert line.cancel(T0 + 2 * HOUR, None, "lost in transit", by_supplier=True) is True
    assert line.status is PartStatus.CANCELLED
    assert line.cancelled_by_supplier


def test_a_supplier_cancelling_a_received_line_is_a_no_op() -> None:
    line = ordered_line()
    line.receive(1, PROMISE, "dana.desk")
    assert unchanged(line, lambda: line.cancel(PROMISE + HOUR, None, "oops", by_supplier=True)) is False
    assert line.status is PartStatus.RECEIVED


# --- supplier facts on one line --------------------------------------------------------------


def test_a_fact_older_than_the_newest_applied_is_ignored() -> None:
    line = ordered_line()
    newer = PROMISE + DAY
    assert line.apply(fact(FactKind.ETA_REVISED, T0 + 2 * HOUR, eta=newer), T0 + 2 * HOUR)
    older = fact(FactKind.ETA_REVISED, T0 + HOUR, eta=PROMISE + 5 * DAY)
    assert unchanged(line, lambda: line.apply(older, T0 + 3 * HOUR)) is False
    assert line.eta == newer
    assert line.fact_at == T0 + 2 * HOUR


def test_a_fact_stamped_before_our_order_time_still_applies() -> None:
    """The supplier's clock is not ours (and it stamps to the second): its first word on a new order counts."""
    line = ordered_line()
    skewed = fact(FactKind.BACKORDERED, T0 - HOUR, eta=PROMISE + DAY)
    assert line.apply(skewed, T0 + HOUR) is True
    assert (line.status, line.eta) == (PartStatus.BACKORDERED, PROMISE + DAY)


@pytest.mark.parametrize(
    "make_fact",
    [
        lambda line: fact(FactKind.ETA_REVISED, T0 + HOUR, eta=PROMISE + DAY),
        lambda line: fact(FactKind.BACKORDERED, T0 + HOUR, eta=PROMISE + 3 * DAY),
        lambda line: fact(
            FactKind.SHIPPED, T0 + HOUR, eta=PROMISE, shipped={line.supplier_sku: 1}, tracking_number="Z"
        ),
        lambda line: fact(FactKind.SHIPPED, T0 + HOUR, shipped={line.supplier_sku: 2}),
        lambda line: fact(FactKind.DELIVERED, T0 + HOUR),
        lambda line: fact(FactKind.CANCELLED, T0 + HOUR, reason="discontinued"),
    ],
    ids=["eta", "backordered", "shipped-partial", "shipped", "delivered", "cancelled"],
)
def test_the_same_fact_twice_changes_nothing_the_second_time(make_fact: Callable[[PartLine], SupplierFact]) -> None:
    line = ordered_line(quantity=2)
    repeated = make_fact(line)
    assert line.apply(repeated, T0 + HOUR) is True
    assert unchanged(line, lambda: line.apply(repeated, T0 + 2 * HOUR)) is False


def test_confirmed_clears_a_backorder_and_twice_changes_nothing() -> None:
    line = ordered_line()
    assert line.apply(fact(FactKind.BACKORDERED, T0 + HOUR), T0 + HOUR) is True
    assert line.status is PartStatus.BACKORDERED
    assert line.pending_events[-1].kind is EventKind.PART_BACKORDERED
    confirmed = fact(FactKind.CONFIRMED, T0 + 2 * HOUR)
    assert line.apply(confirmed, T0 + 2 * HOUR) is True
    assert line.status is PartStatus.ORDERED
    assert unchanged(line, lambda: line.apply(confirmed, T0 + 3 * HOUR)) is False


def test_a_backorder_with_a_new_date_records_the_revision() -> None:
    line = ordered_line()
    later = PROMISE + 7 * DAY
    line.apply(SupplierFact(FactKind.BACKORDERED, T0 + HOUR, EtaSource.POLL, eta=later), T0 + 2 * HOUR)
    assert line.status is PartStatus.BACKORDERED
    assert line.eta == later
    assert line.promised_at == PROMISE
    revision = line.pending_revisions[-1]
    assert (revision.source, revision.learned_at, revision.old_eta, revision.new_eta) == (
        EtaSource.POLL,
        T0 + 2 * HOUR,
        PROMISE,
        later,
    )
    assert [e.kind for e in line.pending_events[-2:]] == [EventKind.PART_BACKORDERED, EventKind.ETA_REVISED]


def test_a_partial_shipment_keeps_the_line_ordered() -> None:
    line = ordered_line(quantity=3)
    assert line.apply(
        fact(FactKind.SHIPPED, T0 + HOUR, shipped={line.supplier_sku: 2}, tracking_number="1Z"), T0 + HOUR
    )
    assert line.status is PartStatus.ORDERED
    assert line.shipped_quantity == 2
    event = line.pending_events[-1]
    assert event.kind is EventKind.PART_SHIPPED
    assert event.data["shipped_quantity"] == 2
    assert event.data["tracking_number"] == "1Z"


def test_a_full_shipment_marks_the_line_shipped_and_caps_the_quantity() -> None:
    line = ordered_line(quantity=2)
    line.apply(fact(FactKind.SHIPPED, T0 + HOUR, shipped={line.supplier_sku: 5}), T0 + HOUR)
    assert line.status is PartStatus.SHIPPED
    assert line.shipped_quantity == 2


def test_a_shipment_of_another_sku_does_not_touch_the_line() -> None:
    line = ordered_line()
    assert line.apply(fact(FactKind.SHIPPED, T0 + HOUR, shipped={"SOMETHING-ELSE": 1}), T0 + HOUR) is False
    assert line.shipped_quantity == 0
    assert line.status is PartStatus.ORDERED


def test_delivered_by_the_supplier_is_shipped_until_counted_in() -> None:
    line = ordered_line(quantity=2)
    line.apply(fact(FactKind.DELIVERED, T0 + HOUR), T0 + HOUR)
    assert line.status is PartStatus.SHIPPED
    assert line.shipped_quantity == 2
    assert line.received_quantity == 0
    assert line.waiting


@pytest.mark.parametrize("kind", [FactKind.CONFIRMED, FactKind.BACKORDERED])
def test_a_later_confirmation_or_backorder_never_moves_a_shipped_line_back(kind: FactKind) -> None:
    line = ordered_line()
    line.apply(fact(FactKind.SHIPPED, T0 + HOUR, shipped={line.supplier_sku: 1}), T0 + HOUR)
    assert line.status is PartStatus.SHIPPED
    line.apply(fact(kind, T0 + 2 * HOUR), T0 + 2 * HOUR)
    assert line.status is PartStatus.SHIPPED
    assert line.shipped_quantity == 1


def test_the_supplier_cancelling_marks_the_line_cancelled_by_the_supplier() -> None:
    line = ordered_line()
    assert line.apply(fact(FactKind.CANCELLED, T0 + HOUR, reason="discontinued"), T0 + 2 * HOUR)
    assert line.status is PartStatus.CANCELLED
    assert line.cancelled_by_supplier
    assert line.cancel_reason == "discontinued"
    event = line.pending_events[-1]
    assert (event.kind, event.at, event.actor) == (EventKind.PART_CANCELLED, T0 + 2 * HOUR, None)
    assert event.data["by_supplier"] is True


def test_the_supplier_cancelling_without_a_reason_gets_one() -> None:
    line = ordered_line()
    line.apply(fact(FactKind.CANCELLED, T0 + HOUR), T0 + HOUR)
    assert line.cancel_reason == "cancelled by the supplier"


@pytest.mark.parametrize("settled", [PartStatus.NEEDED, PartStatus.RECEIVED, PartStatus.CANCELLED])
def test_facts_no_longer_matter_once_staff_settled_the_line(settled: PartStatus) -> None:
    line = make_line() if settled is PartStatus.NEEDED else ordered_line()
    if settled is PartStatus.RECEIVED:
        line.receive(1, PROMISE, "dana.desk")
    elif settled is PartStatus.CANCELLED:
        line.cancel(T0 + HOUR, "theo.tech", "not needed")
    later = fact(FactKind.ETA_REVISED, PROMISE + DAY, eta=PROMISE + 9 * DAY)
    assert unchanged(line, lambda: line.apply(later, PROMISE + DAY)) is False


# --- supplier facts on an order --------------------------------------------------------------


def two_line_order() -> tuple[SupplierOrder, PartLine, PartLine]:
    screen = ordered_line(1, sku="SCREEN", supplier_sku="S-SCREEN", quantity=2)
    battery = ordered_line(2, sku="BATTERY", supplier_sku="S-BATTERY", quantity=1)
    return make_order(screen, battery), screen, battery


def test_an_order_is_confirmed_by_the_supplier() -> None:
    order, _, _ = two_line_order()
    assert order.status is OrderStatus.PLACED
    order.apply(fact(FactKind.CONFIRMED, T0 + HOUR, eta=PROMISE), T0 + HOUR)
    assert order.status is OrderStatus.CONFIRMED


def test_a_partial_shipment_makes_the_order_partially_shipped() -> None:
    order, screen, battery = two_line_order()
    changed = order.apply(fact(FactKind.SHIPPED, T0 + HOUR, shipped={"S-SCREEN": 2}, tracking_number="1Z9"), T0 + HOUR)
    assert changed == [screen]
    assert order.status is OrderStatus.PARTIALLY_SHIPPED
    assert order.tracking_number == "1Z9"
    assert order.updated_at == T0 + HOUR
    assert (screen.status, battery.status) == (PartStatus.SHIPPED, PartStatus.ORDERED)


def test_part_of_one_line_shipped_is_a_partial_shipment() -> None:
    order, screen, _ = two_line_order()
    order.apply(fact(FactKind.SHIPPED, T0 + HOUR, shipped={"S-SCREEN": 1, "S-BATTERY": 1}), T0 + HOUR)
    assert screen.status is PartStatus.ORDERED
    assert order.status is OrderStatus.PARTIALLY_SHIPPED


def test_everything_shipped_makes_the_order_shipped() -> None:
    order, screen, battery = two_line_order()
    order.apply(fact(FactKind.SHIPPED, T0 + HOUR, shipped={"S-SCREEN": 1}), T0 + HOUR)
    changed = order.apply(fact(FactKind.SHIPPED, T0 + 2 * HOUR, shipped={"S-SCREEN": 2, "S-BATTERY": 1}), T0 + 2 * HOUR)
    assert changed == [screen, battery]
    assert order.status is OrderStatus.SHIPPED
    assert (screen.status, battery.status) == (PartStatus.SHIPPED, PartStatus.SHIPPED)


def test_an_order_is_delivered_only_when_every_live_line_is_received() -> None:
    order, screen, battery = two_line_order()
    order.apply(fact(FactKind.DELIVERED, T0 + HOUR), T0 + HOUR)
    assert order.status is OrderStatus.SHIPPED  # the supplier says delivered; nobody counted it in
    screen.receive(2, PROMISE, "dana.desk")
    order.refresh_status(PROMISE)
    assert order.status is OrderStatus.SHIPPED
    battery.receive(1, PROMISE + HOUR, "dana.desk")
    order.refresh_status(PROMISE + HOUR)
    assert order.status is OrderStatus.DELIVERED
    assert order.updated_at == PROMISE + HOUR


def test_a_cancelled_line_does_not_hold_up_delivery() -> None:
    order, screen, battery = two_line_order()
    battery.cancel(T0 + HOUR, "theo.tech", "not needed after all")
    screen.receive(2, PROMISE, "dana.desk")
    order.refresh_status(PROMISE)
    assert order.status is OrderStatus.DELIVERED


def test_an_order_with_every_line_cancelled_is_cancelled() -> None:
    order, screen, battery = two_line_order()
    changed = order.apply(fact(FactKind.CANCELLED, T0 + HOUR, reason="out of business"), T0 + HOUR)
    assert changed == [screen, battery]
    assert screen.cancelled_by_supplier and battery.cancelled_by_supplier
    assert order.status is OrderStatus.CANCELLED


def test_one_line_cancelled_by_the_supplier_leaves_the_order_open() -> None:
    order, screen, battery = two_line_order()
    order.apply(fact(FactKind.CANCELLED, T0 + HOUR, supplier_sku="S-BATTERY"), T0 + HOUR)
    assert battery.status is PartStatus.CANCELLED
    assert screen.status is PartStatus.ORDERED
    assert order.status is OrderStatus.CONFIRMED


def test_an_eta_revised_for_one_sku_touches_only_that_line() -> None:
    order, screen, battery = two_line_order()
    later = PROMISE + 3 * DAY
    changed = order.apply(fact(FactKind.ETA_REVISED, T0 + HOUR, eta=later, supplier_sku="S-BATTERY"), T0 + HOUR)
    assert changed == [battery]
    assert battery.eta == later
    assert screen.eta == PROMISE
    assert screen.fact_at is None  # not even its clock moved
    assert len(screen.pending_revisions) == 1


def test_a_backorder_then_a_confirmation_of_one_line() -> None:
    order, screen, battery = two_line_order()
    order.apply(fact(FactKind.BACKORDERED, T0 + HOUR, supplier_sku="S-SCREEN", eta=PROMISE + 5 * DAY), T0 + HOUR)
    assert (screen.status, battery.status) == (PartStatus.BACKORDERED, PartStatus.ORDERED)
    order.apply(fact(FactKind.CONFIRMED, T0 + 2 * HOUR, supplier_sku="S-SCREEN"), T0 + 2 * HOUR)
    assert screen.status is PartStatus.ORDERED
    assert screen.eta == PROMISE + 5 * DAY


def test_an_older_fact_reaching_the_order_late_never_unships_it() -> None:
    order, screen, battery = two_line_order()
    order.apply(fact(FactKind.SHIPPED, T0 + 2 * HOUR, shipped={"S-SCREEN": 2, "S-BATTERY": 1}), T0 + 2 * HOUR)
    assert order.status is OrderStatus.SHIPPED
    stale = fact(FactKind.BACKORDERED, T0 + HOUR, eta=PROMISE + 9 * DAY)
    order.apply(stale, T0 + 3 * HOUR)
    assert order.status is OrderStatus.SHIPPED
    assert (screen.status, battery.status) == (PartStatus.SHIPPED, PartStatus.SHIPPED)
    assert (screen.shipped_quantity, battery.shipped_quantity) == (2, 1)


def test_an_older_eta_reaching_the_line_late_is_ignored() -> None:
    order, screen, _ = two_line_order()
    order.apply(fact(FactKind.ETA_REVISED, T0 + 2 * HOUR, eta=PROMISE + DAY), T0 + 2 * HOUR)
    stale = fact(FactKind.ETA_REVISED, T0 + HOUR, eta=PROMISE + 9 * DAY)
    assert order.apply(stale, T0 + 3 * HOUR) == []
    assert screen.eta == PROMISE + DAY


def test_the_same_fact_on_an_order_twice_changes_nothing_the_second_time() -> None:
    order, screen, battery = two_line_order()
    shipped = fact(FactKind.SHIPPED, T0 + HOUR, eta=PROMISE - DAY, shipped={"S-SCREEN": 1}, tracking_number="1Z")
    assert order.apply(shipped, T0 + HOUR) == [screen, battery]  # the shipment, and the new ETA on both
    before = (order.status, order.tracking_number, order.updated_at, history(screen), history(battery))
    assert order.apply(shipped, T0 + 2 * HOUR) == []
    assert (order.status, order.tracking_number, order.updated_at, history(screen), history(battery)) == before


# --- a job's parts ---------------------------------------------------------------------------


def test_parts_eta_is_the_latest_eta_of_the_awaited_lines() -> None:
    early = ordered_line(1, eta=PROMISE)
    late = ordered_line(2, eta=PROMISE + 2 * DAY)
    received = ordered_line(3, eta=PROMISE + 9 * DAY)
    received.receive(1, T0 + HOUR, "dana.desk")
    cancelled = make_line(4)
    cancelled.cancel(T0, "theo.tech", "not needed")  # no ETA at all, but no longer awaited
    assert parts_eta([early, late, received, cancelled]) == PROMISE + 2 * DAY
    assert not waiting_without_date([early, late, received, cancelled])


def test_parts_eta_is_unknown_when_an_awaited_line_has_no_date() -> None:
    lines = [ordered_line(1), make_line(2)]
    assert parts_eta(lines) is None
    assert waiting_without_date(lines)


def test_parts_eta_is_none_when_nothing_is_awaited() -> None:
    received = ordered_line()
    received.receive(1, PROMISE, "dana.desk")
    assert parts_eta([received]) is None
    assert parts_eta([]) is None
    assert not waiting_without_date([received])


def test_all_received_counts_live_lines_only() -> None:
    received = ordered_line(1)
    received.receive(1, PROMISE, "dana.desk")
    fitted = ordered_line(2)
    fitted.receive(1, PROMISE, "dana.desk")
    fitted.fit(PROMISE + HOUR, "theo.tech")
    cancelled = ordered_line(3)
    cancelled.cancel(T0 + HOUR, "theo.tech", "not needed")
    awaited = ordered_line(4)
    assert all_received([received, fitted, cancelled])
    assert not all_received([received, awaited])
    assert not all_received([cancelled])
    assert not all_received([])


# --- facts in any order ----------------------------------------------------------------------

QUANTITY = 2
SUPPLIER_SKU = "S-IPH13-SCREEN-OLED"
etas = st.integers(1, 20).map(lambda days: PROMISE + timedelta(days=days))


KINDS = [
    FactKind.CONFIRMED,
    FactKind.ETA_REVISED,
    FactKind.BACKORDERED,
    FactKind.SHIPPED,
    FactKind.DELIVERED,
    FactKind.CANCELLED,
]


@st.composite
def fact_stories(draw: st.DrawFn) -> list[SupplierFact]:
    """What one supplier says about one line, in the order it happened, each fact a minute after the last.

    Plausible stories only: shipped quantities are cumulative and go up, and a delivery or a cancellation
    ends the story."""
    steps = draw(st.lists(st.tuples(st.sampled_from(KINDS), st.none() | etas), min_size=1, max_size=6))
    shipped = 0
    story = []
    for minute, (kind, eta) in enumerate(steps, start=1):
        at = T0 + timedelta(minutes=minute)
        if kind is FactKind.SHIPPED and shipped < QUANTITY:
            shipped += 1
            story.append(SupplierFact(kind, at, EtaSource.WEBHOOK, eta=eta, shipped={SUPPLIER_SKU: shipped}))
        elif kind is FactKind.ETA_REVISED and eta is not None:
            story.append(SupplierFact(kind, at, EtaSource.WEBHOOK, eta=eta))
        elif kind in (FactKind.DELIVERED, FactKind.CANCELLED):
            story.append(SupplierFact(kind, at, EtaSource.WEBHOOK))
            break
        else:
            confirmed = FactKind.BACKORDERED if kind is FactKind.BACKORDERED else FactKind.CONFIRMED
            story.append(SupplierFact(confirmed, at, EtaSource.POLL, eta=eta))
    return story


def line_after(facts: list[SupplierFact]) -> PartLine:
    line = ordered_line(supplier_sku=SUPPLIER_SKU, quantity=QUANTITY)
    for number, one in enumerate(facts):
        line.apply(one, PROMISE + number * HOUR)
    return line


@settings(max_examples=300, deadline=None)
@given(story=fact_stories(), data=st.data())
def test_applying_facts_in_any_order_ends_like_applying_them_in_time_order(
    story: list[SupplierFact], data: st.DataObject
) -> None:
    arrival = data.draw(st.permutations(story), label="arrival order")
    in_order, shuffled = line_after(story), line_after(arrival)
    if in_order.status is PartStatus.CANCELLED:
        # A cancelled line is over: what the supplier said of it before (dates) no longer matters.
        assert (shuffled.status, shuffled.cancelled_by_supplier) == (PartStatus.CANCELLED, True)
        return
    assert state(shuffled) == state(in_order)


def test_a_shipment_reported_before_an_eta_change_but_arriving_after_it_is_not_lost() -> None:
    """The minimal case of the property above: webhooks `order.shipped` (10:00) and `order.eta_revised`
    (11:00) are delivered in the wrong order (a retry). The shipment happened; it must not be dropped."""
    line = ordered_line(supplier_sku=SUPPLIER_SKU)
    line.apply(fact(FactKind.ETA_REVISED, T0 + 2 * HOUR, eta=PROMISE - DAY), T0 + 3 * HOUR)
    line.apply(fact(FactKind.SHIPPED, T0 + HOUR, shipped={SUPPLIER_SKU: 1}), T0 + 4 * HOUR)
    assert line.shipped_quantity == 1
    assert line.status is PartStatus.SHIPPED


@settings(max_examples=200, deadline=None)
@given(
    minutes=st.lists(st.integers(1, 20_000), min_size=1, max_size=8, unique=True),
    dates=st.lists(etas, min_size=8, max_size=8),
    data=st.data(),
)
def test_eta_revisions_in_any_order_end_on_the_newest(
    minutes: list[int], dates: list[datetime], data: st.DataObject
) -> None:
    story = [fact(FactKind.ETA_REVISED, T0 + timedelta(minutes=m), eta=d) for m, d in zip(minutes, dates, strict=False)]
    newest = max(story, key=lambda f: f.at)
    line = line_after(data.draw(st.permutations(story), label="arrival order"))
    assert line.eta == newest.eta
    assert line.fact_at == newest.at
    assert line.promised_at == PROMISE


@settings(max_examples=200, deadline=None)
@given(story=fact_stories(), data=st.data())
def test_every_fact_delivered_twice_changes_nothing_the_second_time(
    story: list[SupplierFact], data: st.DataObject
) -> None:
    line = ordered_line(supplier_sku=SUPPLIER_SKU, quantity=QUANTITY)
    for number, one in enumerate(data.draw(st.permutations(story), label="arrival order")):
        learned_at = PROMISE + number * HOUR
        line.apply(one, learned_at)
        assert apply_again(line, one, learned_at + HOUR) is False


def apply_again(line: PartLine, repeated: SupplierFact, learned_at: datetime) -> object:
    return unchanged(line, lambda: line.apply(repeated, learned_at))


# --- would_change: the decision apply makes, without making it -------------------------------

minutes = st.none() | st.integers(0, 6).map(lambda m: T0 + timedelta(minutes=m))
skus = st.sampled_from([SUPPLIER_SKU, "S-OTHER"])


@st.composite
def stored_lines(draw: st.DrawFn, line_id: int = 1) -> PartLine:
    """A line in any state a supplier fact may find it in (consistent or not: the check must not care)."""
    quantity = draw(st.integers(1, 3))
    line = make_line(line_id, quantity=quantity)
    line.status = draw(st.sampled_from(list(PartStatus)))
    line.supplier_id, line.order_id = SUPPLIER_ID, ORDER_ID
    line.supplier_sku = draw(st.none() | skus)
    line.shipped_quantity = draw(st.integers(0, quantity))
    line.eta = draw(st.none() | etas)
    line.fact_at, line.status_fact_at = draw(minutes), draw(minutes)
    return line


@st.composite
def any_facts(draw: st.DrawFn) -> SupplierFact:
    kind = draw(st.sampled_from(list(FactKind)))
    shipped = draw(st.dictionaries(st.sampled_from([SUPPLIER_SKU, "S-OTHER", "IPH13-SCREEN-OLED"]), st.integers(0, 4)))
    return SupplierFact(
        kind,
        T0 + timedelta(minutes=draw(st.integers(0, 6))),
        draw(st.sampled_from([EtaSource.POLL, EtaSource.WEBHOOK])),
        eta=draw(st.none() | etas),
        supplier_sku=draw(st.none() | skus),
        shipped=shipped,
        tracking_number=draw(st.sampled_from([None, "TRK1", "TRK2"])),
        reason=draw(st.sampled_from([None, "discontinued"])),
    )


@settings(max_examples=1000, deadline=None)
@given(line=stored_lines(), one=any_facts())
def test_would_change_says_exactly_whether_apply_changes_the_line(line: PartLine, one: SupplierFact) -> None:
    before = copy.deepcopy(line)
    predicted = unchanged(line, lambda: line.would_change(one))  # changes nothing itself
    assert state(line) == state(before)
    changed = line.apply(one, T0 + DAY)
    assert predicted is changed
    if not changed:  # nothing to save: no event, no revision, the same status, quantities and ETA
        assert history(line) == history(before)
        ignore = {"fact_at", "status_fact_at"}  # moved in memory only, never saved without a change
        assert {k: v for k, v in state(line).items() if k not in ignore} == {
            k: v for k, v in state(before).items() if k not in ignore
        }


@settings(max_examples=1000, deadline=None)
@given(
    lines=st.lists(st.integers(1, 3), min_size=0, max_size=2, unique=True).flatmap(
        lambda ids: st.tuples(*(stored_lines(i) for i in ids))
    ),
    status=st.sampled_from(list(OrderStatus)),
    ref=st.sampled_from([None, "R1"]),
    tracking=st.sampled_from([None, "TRK1"]),
    learned_ref=st.sampled_from([None, "R1", "R2"]),
    one=any_facts(),
)
def test_an_order_would_change_exactly_when_apply_fact_would_save_something(
    lines: tuple[PartLine, ...],
    status: OrderStatus,
    ref: str | None,
    tracking: str | None,
    learned_ref: str | None,
    one: SupplierFact,
) -> None:
    order = make_order(*lines)
    order.status, order.supplier_ref, order.tracking_number = status, ref, tracking
    predicted = order.would_change(one, learned_ref)
    # What `apply_fact` does with the order it read, and whether it then writes anything.
    if order.supplier_ref is None and learned_ref:
        order.supplier_ref = learned_ref
    changed = order.apply(one, T0 + DAY)
    saves = bool(changed) or (order.status, order.tracking_number, order.supplier_ref) != (status, tracking, ref)
    assert predicted is saves
    if not saves:
        assert all(not line.pending_events and not line.pending_revisions for line in order.lines)


def test_an_order_found_as_the_supplier_describes_it_would_not_change() -> None:
    line = ordered_line(supplier_sku=SUPPLIER_SKU)
    order = make_order(line)
    order.status, order.supplier_ref = OrderStatus.CONFIRMED, "R1"
    same = SupplierFact(FactKind.CONFIRMED, T0 + HOUR, EtaSource.POLL, eta=PROMISE, supplier_sku=SUPPLIER_SKU)
    assert order.would_change(same, "R1") is False
    assert order.would_change(same, None) is False
    slipped = SupplierFact(FactKind.CONFIRMED, T0 + HOUR, EtaSource.POLL, eta=PROMISE + DAY, supplier_sku=SUPPLIER_SKU)
    assert order.would_change(slipped, "R1") is True
    order.supplier_ref = None
    assert order.would_change(same, "R1") is True  # its id, learned at last, is worth a write
    assert not line.pending_revisions[1:] and len(line.pending_events) == 1  # only the order's own event
