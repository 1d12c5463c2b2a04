"""Parts: the catalogue, the part lines of a job, supplier orders, and the facts suppliers report.

A part line knows where its part is, when it was promised (`promised_at`, fixed when ordered), the latest
ETA (`eta`) and every revision of it. Suppliers report facts (by webhook or when polled) that may arrive
late, twice or out of order. Shipped quantities and cancellation only move forward, so any order of
arrival ends the same; what can go back and forth (the ETA, backordered or not) is ordered by the time
the supplier stated it: each line keeps the time of the newest such statement applied (`fact_at` for
the ETA, `status_fact_at` for backorders), so an older fact never rolls it back, and the same fact
applied twice changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from domain.errors import InvalidValue, RuleConflict
from domain.model import EventKind, JobEvent

_SKU = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,63}$")
PO_PREFIX = "PO-"


def normalise_sku(raw: str, field: str = "sku") -> str:
    """Our SKUs are upper-case codes (IPH13-SCREEN-OLED); staff may type them in any case."""
    sku = raw.strip().upper()
    if not _SKU.match(sku):
        raise InvalidValue(field, "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return sku


def format_po(order_id: int) -> str:
    """Our purchase-order number, also the idempotency key of the order at the supplier."""
    return f"{PO_PREFIX}{order_id:06d}"


def parse_po(po: str) -> int | None:
    text = po.strip().upper()
    if not text.startswith(PO_PREFIX) or not text[len(PO_PREFIX) :].isdigit():
        return None
    return int(text[len(PO_PREFIX) :])


@dataclass(frozen=True, slots=True)
class Part:
    sku: str
    description: str
    models: tuple[str, ...] = ()


class PartStatus(StrEnum):
    NEEDED = "needed"
    ORDERED = "ordered"
    SHIPPED = "shipped"
    RECEIVED = "received"
    FITTED = "fitted"
    BACKORDERED = "backordered"
    CANCELLED = "cancelled"


# Lines we still wait for: they make a job's parts ETA and can be late.
WAITING: frozenset[PartStatus] = frozenset(
    {PartStatus.NEEDED, PartStatus.ORDERED, PartStatus.SHIPPED, PartStatus.BACKORDERED}
)
# How far along a line is; supplier facts only move it forward (backordered sits beside ordered).
_RANK = {
    PartStatus.NEEDED: 0,
    PartStatus.ORDERED: 1,
    PartStatus.BACKORDERED: 1,
    PartStatus.SHIPPED: 2,
    PartStatus.RECEIVED: 3,
    PartStatus.FITTED: 4,
    PartStatus.CANCELLED: 5,
}


class EtaSource(StrEnum):
    ORDER = "order"
    POLL = "poll"
    WEBHOOK = "webhook"
    STAFF = "staff"


class OrderStatus(StrEnum):
    PLACED = "placed"  # sent (or being sent) to the supplier, not yet acknowledged
    CONFIRMED = "confirmed"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class EtaRevision:
    line_id: int
    source: EtaSource
    learned_at: datetime  # when Atelier learned it
    old_eta: datetime | None
    new_eta: datetime
    supplier_id: int | None = None

    @property
    def slipped(self) -> bool:
        return self.old_eta is not None and self.new_eta > self.old_eta


@dataclass(frozen=True, slots=True)
class _Effect:
    """What one supplier fact does to one line (`PartLine._effect_of`); None: that part is left as it is."""

    cancel: bool = False
    shipped: int | None = None  # the new shipped quantity
    status_fact_at: datetime | None = None  # the time of the newest backordered/confirmed (kept only with a change)
    backorder: PartStatus | None = None  # ordered or backordered, the other way round
    fact_at: datetime | None = None  # the time of the newest ETA (kept only with a change)
    eta: datetime | None = None  # the new ETA

    @property
    def changes(self) -> bool:
        return self.cancel or self.shipped is not None or self.backorder is not None or self.eta is not None


_NO_EFFECT = _Effect()
_CANCEL = _Effect(cancel=True)


@dataclass(slots=True)
class PartLine:
    id: int | None
    job_id: int
    branch_id: int
    sku: str
    quantity: int
    created_at: datetime
    status: PartStatus = PartStatus.NEEDED
    supplier_id: int | None = None
    supplier_sku: str | None = None
    order_id: int | None = None
    unit_price_cents: int | None = None
    promised_at: datetime | None = None
    eta: datetime | None = None
    shipped_quantity: int = 0
    received_quantity: int = 0
    received_at: datetime | None = None
    fact_at: datetime | None = None  # supplier time of the newest ETA applied
    status_fact_at: datetime | None = None  # supplier time of the newest backordered/confirmed applied
    cancel_reason: str | None = None
    cancelled_by_supplier: bool = False
    updated_at: datetime | None = None
    version: int = 1
    pending_revisions: list[EtaRevision] = field(default_factory=list)
    pending_events: list[JobEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.quantity <= 100:
            raise InvalidValue("quantity", "must be between 1 and 100")

    @property
    def waiting(self) -> bool:
        return self.status in WAITING

    def expected_at(self, now: datetime) -> datetime | None:
        """When the part can arrive at the earliest: its ETA, or now if the ETA has passed without it."""
        if self.eta is None:
            return None
        return max(self.eta, now)

    def late_by(self, now: datetime) -> timedelta:
        """How far behind its promise the part is (zero when on time or never promised)."""
        if self.promised_at is None or self.status is PartStatus.CANCELLED:
            return timedelta(0)
        if self.received_at is not None:
            arrival = self.received_at
        else:
            expected = self.expected_at(now)
            if expected is None:
                return timedelta(0)
            arrival = expected
        return max(arrival - self.promised_at, timedelta(0))

    def is_late(self, now: datetime) -> bool:
        return self.waiting and self.late_by(now) > timedelta(0)

    # --- staff changes ---------------------------------------------------------------------

    def ordered(
        self,
        *,
        supplier_id: int,
        supplier_sku: str,
        order_id: int,
        unit_price_cents: int | None,
        eta: datetime | None,
        backordered: bool,
        at: datetime,
        actor: str | None,
    ) -> None:
        """The supplier acknowledged our order: the ETA it gives now is the promise."""
        if self.status not in (PartStatus.NEEDED, PartStatus.CANCELLED, PartStatus.BACKORDERED) or (
            self.order_id is not None and self.order_id != order_id and self.status is not PartStatus.CANCELLED
        ):
            raise RuleConflict(f"part line {self.id} is already {self.status}")
        self.status = PartStatus.BACKORDERED if backordered else PartStatus.ORDERED
        self.supplier_id, self.supplier_sku, self.order_id = supplier_id, supplier_sku, order_id
        self.unit_price_cents = unit_price_cents
        self.promised_at = eta
        self.cancel_reason = None
        self.cancelled_by_supplier = False
        # A new order starts afresh: nothing of a cancelled earlier order (its dates, its shipments) counts.
        # The supplier's first statement about it counts whatever its time: its clock is not ours, and it
        # stamps to the second (a confirmation "before" our order time is a confirmation all the same).
        self.shipped_quantity = self.received_quantity
        self.fact_at = self.status_fact_at = None
        if eta is None:
            self.eta = None
        data: dict[str, Any] = {"order_id": order_id, "supplier_id": supplier_id, "status": self.status.value}
        if eta is not None:
            self._set_eta(eta, EtaSource.ORDER, at)
            data["promised_at"] = eta.isoformat()
        self._event(EventKind.PART_ORDERED, at, actor, data)

    def put_on_order(self, order_id: int, unit_price_cents: int | None, at: datetime) -> None:
        """Our PO for this line is committed, about to reach the supplier; its answer makes the line
        ordered. Until then the line is needed again: a cancellation was the earlier order's, and left
        on the line it would close the new PO (an order follows its lines) at the supplier's first word
        about it, though the supplier holds it."""
        if self.status not in (PartStatus.NEEDED, PartStatus.CANCELLED):
            raise RuleConflict(f"part line {self.id} is already {self.status}")
        self.status = PartStatus.NEEDED
        self.order_id, self.unit_price_cents = order_id, unit_price_cents
        self.cancel_reason, self.cancelled_by_supplier = None, False
        self._touch(at)

    def take_off_order(self, at: datetime) -> None:
        """The supplier refused our PO before ordering anything: the line is free to order elsewhere."""
        if self.status not in (PartStatus.NEEDED, PartStatus.CANCELLED):
            raise RuleConflict(f"part line {self.id} is {self.status}: its order stands")
        self.order_id = None
        self._touch(at)

    def revise_eta(self, eta: datetime, source: EtaSource, at: datetime, actor: str | None, note: str | None) -> bool:
        """Staff learned a new date (a phone call to the supplier): recorded as a revision like any other."""
        if not self.waiting:
            raise RuleConflict(f"a {self.status} part has no ETA to revise")
        if eta == self.eta:
            return False
        old = self.eta
        self._set_eta(eta, source, at)
        self._event(EventKind.ETA_REVISED, at, actor, _eta_data(old, eta, source), note)
        return True

    def receive(self, quantity: int, at: datetime, actor: str) -> int:
        """Goods counted in at the shop; returns how many were taken for this line."""
        if self.status in (PartStatus.NEEDED, PartStatus.CANCELLED, PartStatus.RECEIVED, PartStatus.FITTED):
            raise RuleConflict(f"part line {self.id} is {self.status}: nothing to receive")
        taken = min(quantity, self.quantity - self.received_quantity)
        if taken <= 0:
            return 0
        self.received_quantity += taken
        self.shipped_quantity = max(self.shipped_quantity, self.received_quantity)
        data: dict[str, Any] = {"quantity": taken, "received_quantity": self.received_quantity}
        if self.received_quantity >= self.quantity:
            self.status = PartStatus.RECEIVED
            self.received_at = at
            data["late_by_seconds"] = int(self.late_by(at).total_seconds())
        self._event(EventKind.PART_RECEIVED, at, actor, data)
        return taken

    def fit(self, at: datetime, actor: str) -> None:
        if self.status is not PartStatus.RECEIVED:
            raise RuleConflict(f"only a received part can be fitted (this one is {self.status})")
        self.status = PartStatus.FITTED
        self._event(EventKind.PART_FITTED, at, actor, {})

    def cancel(self, at: datetime, actor: str | None, reason: str, *, by_supplier: bool = False) -> bool:
        if self.status in (PartStatus.CANCELLED, PartStatus.RECEIVED, PartStatus.FITTED):
            if by_supplier:
                return False
            raise RuleConflict(f"a {self.status} part line cannot be cancelled")
        if not by_supplier and self.status is PartStatus.SHIPPED:
            raise RuleConflict("the part is on its way: receive it, then return it")
        self.status = PartStatus.CANCELLED
        self.cancel_reason = reason
        self.cancelled_by_supplier = by_supplier
        self._event(EventKind.PART_CANCELLED, at, actor, {"reason": reason, "by_supplier": by_supplier})
        return True

    # --- supplier facts --------------------------------------------------------------------

    def apply(self, fact: SupplierFact, learned_at: datetime) -> bool:
        """Apply what the supplier reports about this line; returns whether anything changed."""
        effect = self._effect_of(fact)
        if effect.cancel:
            return self.cancel(learned_at, None, fact.reason or "cancelled by the supplier", by_supplier=True)
        if effect.shipped is not None:
            self.shipped_quantity = effect.shipped
            if self.shipped_quantity >= self.quantity:
                self.status = PartStatus.SHIPPED
            data = {
                "source": fact.source.value,
                "shipped_quantity": self.shipped_quantity,
                "tracking_number": fact.tracking_number,
            }
            self._event(EventKind.PART_SHIPPED, learned_at, None, data)
        if effect.status_fact_at is not None:
            self.status_fact_at = effect.status_fact_at
        if effect.backorder is not None:
            self.status = effect.backorder
            self._event(
                EventKind.PART_BACKORDERED,
                learned_at,
                None,
                {"source": fact.source.value, "backordered": effect.backorder is PartStatus.BACKORDERED},
            )
        if effect.fact_at is not None:
            self.fact_at = effect.fact_at
        if effect.eta is not None:
            old = self.eta
            self._set_eta(effect.eta, fact.source, learned_at)
            self._event(EventKind.ETA_REVISED, learned_at, None, _eta_data(old, effect.eta, fact.source))
        return effect.changes

    def would_change(self, fact: SupplierFact) -> bool:
        """Whether `apply(fact)` would change this line (a new status, shipped quantity or ETA, an event),
        without changing anything: the same decision as `apply`, which only carries it out. (A fact that
        changes nothing may still move `fact_at`/`status_fact_at` in memory; nothing is saved for it.)"""
        return self._effect_of(fact).changes

    def _effect_of(self, fact: SupplierFact) -> _Effect:
        """What `fact` does to this line, decided on its current state (pure: the line is left as it is).
        Shipped quantities are cumulative and only grow (the largest reported wins, whenever it comes);
        backordered or not, and the ETA, are the supplier's latest word (by the supplier's time)."""
        if self.status in (PartStatus.NEEDED, PartStatus.RECEIVED, PartStatus.FITTED, PartStatus.CANCELLED):
            return _NO_EFFECT  # not ordered yet, or settled: the supplier's word no longer matters
        if fact.kind is FactKind.CANCELLED:
            return _CANCEL  # ordered, backordered or shipped: the supplier may always cancel it
        status: PartStatus = self.status
        shipped: int | None = None
        if fact.kind is FactKind.DELIVERED:
            reported: int | None = self.quantity
        elif fact.kind is FactKind.SHIPPED:
            reported = fact.shipped.get(self.supplier_sku or self.sku)
        else:
            reported = None
        if reported is not None and min(reported, self.quantity) > self.shipped_quantity:
            shipped = min(reported, self.quantity)
            if shipped >= self.quantity:
                status = PartStatus.SHIPPED
        status_fact_at: datetime | None = None
        backorder: PartStatus | None = None
        if fact.kind in (FactKind.BACKORDERED, FactKind.CONFIRMED) and (
            self.status_fact_at is None or fact.at >= self.status_fact_at
        ):
            status_fact_at = fact.at
            wanted = PartStatus.BACKORDERED if fact.kind is FactKind.BACKORDERED else PartStatus.ORDERED
            if status in (PartStatus.ORDERED, PartStatus.BACKORDERED) and status is not wanted:
                backorder = status = wanted
        fact_at: datetime | None = None
        eta: datetime | None = None
        if fact.eta is not None and (self.fact_at is None or fact.at >= self.fact_at):
            fact_at = fact.at
            if fact.eta != self.eta and status in WAITING:
                eta = fact.eta
        return _Effect(False, shipped, status_fact_at, backorder, fact_at, eta)

    # --- helpers ---------------------------------------------------------------------------

    def _set_eta(self, eta: datetime, source: EtaSource, at: datetime) -> None:
        assert self.id is not None
        self.pending_revisions.append(EtaRevision(self.id, source, at, self.eta, eta, self.supplier_id))
        self.eta = eta
        self.updated_at = at

    def _touch(self, at: datetime) -> None:
        self.updated_at = at
        self.version += 1

    def _event(
        self, kind: EventKind, at: datetime, actor: str | None, data: dict[str, Any], note: str | None = None
    ) -> None:
        self._touch(at)
        payload = {"line_id": self.id, "sku": self.sku, **data}
        self.pending_events.append(JobEvent(kind, at, actor, note=note, data=payload))


def _eta_data(old: datetime | None, new: datetime, source: EtaSource) -> dict[str, Any]:
    return {"old_eta": old.isoformat() if old else None, "new_eta": new.isoformat(), "source": source.value}


class FactKind(StrEnum):
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    ETA_REVISED = "eta_revised"
    BACKORDERED = "backordered"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class SupplierFact:
    """One thing a supplier says about an order, whether pushed (webhook) or pulled (poll).

    `supplier_sku` narrows it to one line; `shipped` gives cumulative shipped quantities per supplier SKU.
    """

    kind: FactKind
    at: datetime  # when it happened at the supplier: orders facts that arrive out of order
    source: EtaSource
    eta: datetime | None = None
    supplier_sku: str | None = None
    shipped: Mapping[str, int] = field(default_factory=dict)
    tracking_number: str | None = None
    reason: str | None = None

    def concerns(self, line: PartLine) -> bool:
        return self.supplier_sku is None or self.supplier_sku == (line.supplier_sku or line.sku)


@dataclass(slots=True)
class SupplierOrder:
    """A purchase order at one supplier for one or more part lines of one job."""

    id: int | None
    supplier_id: int
    branch_id: int
    job_id: int
    placed_at: datetime
    placed_by: str
    choice_reason: str
    status: OrderStatus = OrderStatus.PLACED
    supplier_ref: str | None = None
    tracking_number: str | None = None
    updated_at: datetime | None = None
    lines: list[PartLine] = field(default_factory=list)

    @property
    def po(self) -> str:
        if self.id is None:
            raise RuleConflict("the order has no number before it is stored")
        return format_po(self.id)

    def apply(self, fact: SupplierFact, learned_at: datetime) -> list[PartLine]:
        """Apply a fact to the lines it concerns; returns the lines that changed."""
        changed = [line for line in self.lines if fact.concerns(line) and line.apply(fact, learned_at)]
        if self._new_tracking(fact):
            self.tracking_number = fact.tracking_number
        if self._confirms(fact):
            self.status = OrderStatus.CONFIRMED
        self.refresh_status(learned_at)
        return changed

    def would_change(self, fact: SupplierFact, supplier_ref: str | None = None) -> bool:
        """Whether applying `fact` (with the supplier's id for the order, `supplier_ref`) would change the
        order or one of its lines, decided as `apply` decides, changing nothing. False: applying it is a
        no-op, so a poll re-reading what we know already may skip it."""
        if supplier_ref and self.supplier_ref is None:
            return True
        if any(fact.concerns(line) and line.would_change(fact) for line in self.lines):
            return True
        if self._new_tracking(fact):
            return True
        # Its lines stay as they are: its status moves only by a confirmation, or if it lags its lines.
        status = OrderStatus.CONFIRMED if self._confirms(fact) else self.status
        return _status_of(self.lines, status) is not self.status

    def _new_tracking(self, fact: SupplierFact) -> bool:
        return bool(fact.tracking_number) and fact.tracking_number != self.tracking_number

    def _confirms(self, fact: SupplierFact) -> bool:
        return fact.kind is FactKind.CONFIRMED and self.status is OrderStatus.PLACED

    def refresh_status(self, at: datetime) -> None:
        """The order's status follows its lines."""
        status = _status_of(self.lines, self.status)
        if status is not self.status:
            self.status = status
            self.updated_at = at


def _status_of(lines: Sequence[PartLine], current: OrderStatus) -> OrderStatus:
    live = [line for line in lines if line.status is not PartStatus.CANCELLED]
    if not live:
        return OrderStatus.CANCELLED if lines else current
    if all(line.status in (PartStatus.RECEIVED, PartStatus.FITTED) for line in live):
        return OrderStatus.DELIVERED
    if all(line.shipped_quantity >= line.quantity for line in live):
        return OrderStatus.SHIPPED
    if any(line.shipped_quantity > 0 for line in live):
        return OrderStatus.PARTIALLY_SHIPPED
    if current is OrderStatus.PLACED and any(line.status is not PartStatus.NEEDED for line in live):
        return OrderStatus.CONFIRMED
    return current


def parts_eta(lines: Iterable[PartLine]) -> datetime | None:
    """The latest ETA of the lines still awaited; None when nothing is awaited or a date is unknown."""
    waiting = [line for line in lines if line.waiting]
    if not waiting or any(line.eta is None for line in waiting):
        return None
    return max(line.eta for line in waiting if line.eta is not None)


def waiting_without_date(lines: Iterable[PartLine]) -> bool:
    return any(line.waiting and line.eta is None for line in lines)


def all_received(lines: Sequence[PartLine]) -> bool:
    live = [line for line in lines if line.status is not PartStatus.CANCELLED]
    return bool(live) and all(line.status in (PartStatus.RECEIVED, PartStatus.FITTED) for line in live)


@dataclass(frozen=True, slots=True)
class Supplier:
    """A supplier as the repair world sees it (how to reach it and its secrets stay in the service)."""

    id: int
    name: str
    adapter: str
    base_url: str
    poll_interval_seconds: int
    rate_limit_per_minute: int
    active: bool
    has_api_key: bool
    webhook_secret_count: int
    last_ok_at: datetime | None = None
    stale_since: datetime | None = None
