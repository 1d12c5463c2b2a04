"""Every tenant's state, in memory: one server process holds it all (hence one granian worker)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from random import Random
from typing import Any

from integrations.sandbox import orders
from integrations.sandbox.catalogue import BY_SKU, CURRENCY, minute_bucket, seeded, seeded_stock, terms
from integrations.sandbox.config import SandboxConfig
from integrations.sandbox.faults import Faults, hit
from integrations.sandbox.orders import Event, Line, LineState, Order, OrderState, SandboxError

DEFAULT_TENANT = "default"
TENANT_NAME = re.compile(r"^[a-z0-9-]{1,40}$")


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class Quote:
    """One row of the stock answer."""

    sku: str
    description: str
    available: int
    price_cents: int
    currency: str
    eta: datetime


@dataclass
class Tenant:
    """One simulated supplier. Its generator is seeded from (seed, name), so its fault dice repeat too."""

    name: str
    seed: int
    faults: Faults
    webhook: WebhookTarget | None
    rng: Random = field(init=False)
    orders: dict[str, Order] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> order id
    by_po: dict[str, str] = field(default_factory=dict)
    pinned: dict[str, int] = field(default_factory=dict)  # stock set by the admin route, until reset
    taken: dict[str, int] = field(default_factory=dict)  # units ordered since the stock was last set
    log: list[dict[str, Any]] = field(default_factory=list)  # webhook attempts
    requests: Counter[str] = field(default_factory=Counter)  # API/feed requests received, per operation
    issued: int = 0  # order numbers survive a reset, so an id never names two orders

    def __post_init__(self) -> None:
        self.rng = seeded(self.seed, self.name, "faults")

    def reset(self, defaults: Faults) -> None:
        """Forget orders and stock changes; faults back to the CLI defaults. Webhook settings stay."""
        self.faults, self.rng = defaults, seeded(self.seed, self.name, "faults")
        for book in (self.orders, self.by_key, self.by_po, self.pinned, self.taken, self.requests):
            book.clear()

    # --- stock -------------------------------------------------------------------------------------

    def available(self, sku: str, now: datetime) -> int:
        shelf = self.pinned.get(sku)
        if shelf is None:
            shelf = seeded_stock(self.seed, self.name, sku, minute_bucket(now))
        return max(0, shelf - self.taken.get(sku, 0))

    def quote(self, sku: str, now: datetime) -> Quote:
        part, deal, available = BY_SKU[sku], terms(self.seed, self.name, sku), self.available(sku, now)
        hours = deal.lead_hours if available else deal.restock_hours
        return Quote(sku, part.description, available, deal.price_cents, CURRENCY, now + timedelta(hours=hours))

    def set_stock(self, sku: str, available: int, now: datetime) -> tuple[Quote, Event]:
        if sku not in BY_SKU:
            raise SandboxError(404, f"unknown SKU {sku}")
        self.pinned[sku], self.taken[sku] = available, 0
        quote = self.quote(sku, now)
        data = {"sku": sku, "available": quote.available, "price_cents": quote.price_cents}
        return quote, Event("stock.changed", now, {**data, "currency": quote.currency, "eta": quote.eta})

    # --- orders ------------------------------------------------------------------------------------

    def place(self, key: str, po: str, wanted: Sequence[tuple[str, int]], now: datetime) -> tuple[Order, bool]:
        """The order for this key (or PO) if there is one, else a new one; and whether it is new."""
        known = self.by_key.get(key) or self.by_po.get(po)
        if known:
            return self.orders[known], False
        unknown = sorted({sku for sku, _ in wanted if sku not in BY_SKU})
        if unknown:
            raise SandboxError(422, f"unknown SKU: {', '.join(unknown)}")
        all_backordered = hit(self.rng, self.faults.backorder_rate)
        lines = [self._new_line(sku, quantity, now, all_backordered) for sku, quantity in wanted]
        self.issued += 1
        order = Order(f"ORD-{self.name}-{self.issued:04d}", po, OrderState.CONFIRMED, lines, now)
        if any(line.state is LineState.BACKORDERED for line in lines):
            order.state = OrderState.BACKORDERED
        self.orders[order.id], self.by_key[key], self.by_po[po] = order, order.id, order.id
        return order, True

    def _new_line(self, sku: str, quantity: int, now: datetime, backordered: bool) -> Line:
        deal = terms(self.seed, self.name, sku)
        lead = now + timedelta(hours=deal.lead_hours)
        if backordered:  # the backorder dice: on the supplier's books, two more weeks away
            return Line(sku, quantity, lead + orders.BACKORDER_DELAY, LineState.BACKORDERED)
        if self.available(sku, now) < quantity:  # short: it comes with the restock
            return Line(sku, quantity, now + timedelta(hours=deal.restock_hours), LineState.BACKORDERED)
        self.taken[sku] = self.taken.get(sku, 0) + quantity
        return Line(sku, quantity, lead)

    def order(self, order_id: str) -> Order:
        found = self.orders.get(order_id)
        if found is None:
            raise SandboxError(404, f"no order {order_id}")
        return found

    def read(self, order: Order, now: datetime) -> Event | None:
        """A GET of the order: with eta_slip_hours set, an open order's eta moves later on every read."""
        hours = self.faults.eta_slip_hours
        if not hours or order.state not in orders.OPEN_ORDERS:
            return None
        if not any(line.state in orders.OPEN_LINES for line in order.lines):
            return None
        return orders.slip(order, now, hours=hours)

    def changes(self, since: datetime | None, cursor: str | None, limit: int) -> tuple[list[Order], str | None]:
        """The orders changed after `since` (strictly), oldest change first, `limit` at a time.

        Ordered by (updated_at, id), and the cursor is the position of the last item sent, so the pages
        are stable while orders change: an order that changes meanwhile moves behind the cursor and is
        sent again on a later page. Reading the feed changes nothing (no eta slip: that is a GET's).
        """
        after = decode_cursor(cursor) if cursor else None
        changed = [
            order
            for order in self.orders.values()
            if (since is None or order.updated_at > since) and (after is None or (order.updated_at, order.id) > after)
        ]
        changed.sort(key=lambda order: (order.updated_at, order.id))
        page = changed[:limit]
        more = len(changed) > limit
        return page, encode_cursor(page[-1].updated_at, page[-1].id) if more else None

    def bulk_place(self, wanted: Sequence[tuple[str, Sequence[tuple[str, int]]]], now: datetime) -> list[str]:
        """Many orders at once (benchmarks): each as `place` with its PO as the key, no webhook."""
        unknown = sorted({sku for _, lines in wanted for sku, _ in lines if sku not in BY_SKU})
        if unknown:
            raise SandboxError(422, f"unknown SKU: {', '.join(unknown)}")
        return [self.place(po, po, lines, now)[0].id for po, lines in wanted]

    def cancel(self, order_id: str, now: datetime) -> Order:
        """Atelier cancels: repeatable, refused (409) once anything shipped."""
        order = self.order(order_id)
        if order.state is not OrderState.CANCELLED:
            orders.cancel(order, now)
        return order

    def advance(self, order_id: str, action: str, now: datetime, **options: Any) -> tuple[Order, Event]:
        """What the supplier does on its side, driven by a test: returns the fact to push."""
        order = self.order(order_id)
        hours: int | None = options.get("hours")
        sku: str | None = options.get("sku")
        match action:
            case "confirm":
                event = orders.confirm(order, now)
            case "ship":
                event = orders.ship(
                    order,
                    now,
                    quantity=options.get("quantity"),
                    partial=self.faults.partial_ship,
                    tracking_number=self._tracking_number(order),
                )
            case "deliver":
                event = orders.deliver(order, now)
            case "slip":
                event = orders.slip(order, now, hours=24 if hours is None else hours, sku=sku)
            case "backorder":
                event = orders.backorder(order, now, hours=hours, sku=sku)
            case "cancel":
                event = orders.cancel(order, now, reason=options.get("reason"))
            case _:
                raise SandboxError(400, f"unknown action {action!r}")
        return order, event

    def _tracking_number(self, order: Order) -> str:
        digest = hashlib.sha256(f"{self.seed}|{self.name}|{order.id}".encode()).hexdigest()
        return "SBX" + digest[:12].upper()


def encode_cursor(updated_at: datetime, order_id: str) -> str:
    return base64.urlsafe_b64encode(f"{updated_at.isoformat()}|{order_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, order_id = text.split("|", 1)
        updated_at = datetime.fromisoformat(moment)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise SandboxError(400, "cursor: not a cursor this feed gave") from exc
    if updated_at.tzinfo is None:
        raise SandboxError(400, "cursor: not a cursor this feed gave")
    return updated_at, order_id


class Sandbox:
    """The tenants of one sandbox process, created on first use."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.tenants: dict[str, Tenant] = {}

    def tenant(self, name: str) -> Tenant:
        found = self.tenants.get(name)
        if found is None:
            if not TENANT_NAME.match(name):
                raise SandboxError(404, "a tenant name is 1 to 40 of a-z, 0-9 and '-'")
            url, secret = self.config.webhook_url, self.config.webhook_secret
            target = WebhookTarget(url, secret) if url and secret else None
            found = self.tenants[name] = Tenant(name, self.config.seed, self.config.faults, target)
        return found
