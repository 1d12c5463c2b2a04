"""A supplier order and what can happen to it; each change returns the fact the supplier would push."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

TRANSIT = timedelta(hours=24)  # a shipped line reaches the shop a day after it leaves
BACKORDER_DELAY = timedelta(weeks=2)


class SandboxError(Exception):
    """A request the sandbox refuses, with the HTTP status a real supplier would answer."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class OrderState(StrEnum):
    PLACED = "placed"
    CONFIRMED = "confirmed"
    BACKORDERED = "backordered"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class LineState(StrEnum):
    OPEN = "open"
    BACKORDERED = "backordered"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


OPEN_ORDERS = frozenset({OrderState.PLACED, OrderState.CONFIRMED, OrderState.BACKORDERED, OrderState.PARTIALLY_SHIPPED})
OPEN_LINES = frozenset({LineState.OPEN, LineState.BACKORDERED})


@dataclass(slots=True)
class Line:
    sku: str
    quantity: int
    eta: datetime  # of the units not yet shipped; of the shipment once all are
    state: LineState = LineState.OPEN
    shipped_quantity: int = 0


@dataclass(slots=True)
class Order:
    id: str
    po: str
    state: OrderState
    lines: list[Line]
    updated_at: datetime
    tracking_number: str | None = None
    eta: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.refresh_eta()

    def refresh_eta(self) -> None:
        """The order arrives with its last line (cancelled lines aside)."""
        live = [line.eta for line in self.lines if line.state is not LineState.CANCELLED]
        self.eta = max(live or [line.eta for line in self.lines])


@dataclass(frozen=True, slots=True)
class Event:
    """A fact to push as a webhook: `data` may hold datetimes, rendered at the edge."""

    type: str
    occurred_at: datetime
    data: dict[str, Any]


def _ref(order: Order) -> dict[str, Any]:
    return {"order_id": order.id, "po": order.po}


def _targets(order: Order, sku: str | None) -> list[Line]:
    lines = [line for line in order.lines if line.state in OPEN_LINES and (sku is None or line.sku == sku)]
    if not lines:
        raise SandboxError(409, f"order {order.id} has no open line" + (f" for {sku}" if sku else ""))
    return lines


def _require(order: Order, allowed: frozenset[OrderState], action: str) -> None:
    if order.state not in allowed:
        raise SandboxError(409, f"cannot {action} order {order.id}: it is {order.state.value}")


def _touched(order: Order, now: datetime) -> None:
    order.refresh_eta()
    order.updated_at = now


def confirm(order: Order, now: datetime) -> Event:
    _require(order, frozenset({OrderState.PLACED, OrderState.CONFIRMED, OrderState.BACKORDERED}), "confirm")
    for line in order.lines:
        if line.state is LineState.BACKORDERED:
            line.state = LineState.OPEN
    order.state = OrderState.CONFIRMED
    _touched(order, now)
    return Event("order.confirmed", now, {**_ref(order), "eta": order.eta})


def ship(order: Order, now: datetime, *, quantity: int | None, partial: bool, tracking_number: str) -> Event:
    """Ship each open line: `quantity` units, or half the line (rounded up) when partial, else the rest."""
    _require(order, OPEN_ORDERS, "ship")
    for line in _targets(order, None):
        remaining = line.quantity - line.shipped_quantity
        wanted = quantity if quantity is not None else (-(-line.quantity // 2) if partial else remaining)
        line.shipped_quantity += min(remaining, wanted)
        if line.shipped_quantity == line.quantity:
            line.state, line.eta = LineState.SHIPPED, now + TRANSIT
        else:
            line.state = LineState.OPEN
    live = [line for line in order.lines if line.state is not LineState.CANCELLED]
    done = all(line.state is LineState.SHIPPED for line in live)
    order.state = OrderState.SHIPPED if done else OrderState.PARTIALLY_SHIPPED
    order.tracking_number = order.tracking_number or tracking_number
    _touched(order, now)
    shipped = [{"sku": line.sku, "shipped_quantity": line.shipped_quantity} for line in live]
    return Event(
        "order.shipped",
        now,
        {**_ref(order), "tracking_number": order.tracking_number, "lines": shipped, "eta": order.eta},
    )


def deliver(order: Order, now: datetime) -> Event:
    _require(order, frozenset({OrderState.SHIPPED}), "deliver")
    order.state = OrderState.DELIVERED
    _touched(order, now)
    return Event("order.delivered", now, _ref(order))


def slip(order: Order, now: datetime, *, hours: int, sku: str | None = None) -> Event:
    """Move the eta of the open lines (or of one SKU's) later."""
    _require(order, OPEN_ORDERS, "slip")
    lines = _targets(order, sku)
    for line in lines:
        line.eta += timedelta(hours=hours)
    _touched(order, now)
    data = {**_ref(order), "eta": lines[0].eta if sku else order.eta}
    return Event("order.eta_revised", now, {**data, "sku": sku} if sku else data)


def backorder(order: Order, now: datetime, *, hours: int | None, sku: str | None = None) -> Event:
    """The supplier runs out: open lines (or one SKU's) wait `hours` more (two weeks by default)."""
    _require(order, OPEN_ORDERS, "backorder")
    lines = _targets(order, sku)
    delay = BACKORDER_DELAY if hours is None else timedelta(hours=hours)
    for line in lines:
        line.state, line.eta = LineState.BACKORDERED, line.eta + delay
    if not any(line.shipped_quantity for line in order.lines):
        order.state = OrderState.BACKORDERED
    _touched(order, now)
    data = {**_ref(order), "eta": lines[0].eta if sku else order.eta}
    return Event("order.backordered", now, {**data, "sku": sku} if sku else data)


def cancel(order: Order, now: datetime, *, reason: str | None = None) -> Event:
    """Nothing shipped yet: every line is cancelled. Once anything shipped, too late (409)."""
    _require(order, frozenset({OrderState.PLACED, OrderState.CONFIRMED, OrderState.BACKORDERED}), "cancel")
    for line in order.lines:
        line.state = LineState.CANCELLED
    order.state = OrderState.CANCELLED
    _touched(order, now)
    return Event("order.cancelled", now, {**_ref(order), "reason": reason} if reason else _ref(order))
