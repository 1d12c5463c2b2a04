"""The seam between Atelier and a supplier: what any supplier adapter offers, whatever its wire format.

Adapters validate every payload with pydantic at the edge and hand back these plain values, so the rest
of Atelier never sees (nor trusts) a supplier's raw data. SKUs here are the *supplier's* SKUs; mapping
them to ours is the service's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class AdapterKind(StrEnum):
    REST_JSON = "rest_json"
    CSV_FEED = "csv_feed"


@dataclass(frozen=True, slots=True)
class SupplierConfig:
    """What an adapter needs to talk to one supplier (secrets already decrypted)."""

    id: int
    name: str
    adapter: AdapterKind
    base_url: str
    api_key: str | None = field(default=None, repr=False)  # never in a log line by accident
    rate_limit_per_minute: int | None = None


@dataclass(frozen=True, slots=True)
class StockInfo:
    supplier_sku: str
    available: int
    price_cents: int | None
    currency: str
    eta: datetime | None  # when the part would reach us if ordered now; None when unknown


@dataclass(frozen=True, slots=True)
class StockAnswer:
    items: list[StockInfo]
    unknown: list[str] = field(default_factory=list)  # SKUs the supplier does not carry


@dataclass(frozen=True, slots=True)
class OrderLineRequest:
    supplier_sku: str
    quantity: int


class OrderState(StrEnum):
    """A supplier order as the supplier reports it."""

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


@dataclass(frozen=True, slots=True)
class OrderLineInfo:
    supplier_sku: str
    quantity: int
    shipped_quantity: int
    state: LineState
    eta: datetime | None


@dataclass(frozen=True, slots=True)
class OrderInfo:
    supplier_order_id: str
    po: str  # our purchase-order id, sent as the idempotency key
    state: OrderState
    eta: datetime | None
    tracking_number: str | None
    lines: list[OrderLineInfo]
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OrderChanges:
    """The supplier's orders that changed since a time, each once in its newest state, oldest change
    first; `as_of` is the supplier's time of its last answer (everything changed up to then is in)."""

    items: list[OrderInfo]
    as_of: datetime


class SupplierError(Exception):
    """Base of everything an adapter raises; `supplier` names who failed, `reason` says how."""

    def __init__(self, supplier: str, reason: str) -> None:
        super().__init__(f"{supplier}: {reason}")
        self.supplier = supplier
        self.reason = reason


class SupplierUnavailable(SupplierError):
    """Could not get an answer in time (timeouts, 5xx or 429 after retries, breaker open)."""

    def __init__(self, supplier: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(supplier, reason)
        self.retry_after = retry_after


class SupplierRejected(SupplierError):
    """The supplier answered and said no (4xx: unknown order, cannot cancel a shipped order...)."""

    def __init__(self, supplier: str, reason: str, status_code: int | None = None) -> None:
        super().__init__(supplier, reason)
        self.status_code = status_code


class BadSupplierData(SupplierError):
    """The supplier answered with something we refuse to trust (malformed or invalid payload)."""


class NotSupported(SupplierError):
    """The adapter cannot do this at all (a CSV feed cannot take orders)."""


class SupplierClient(Protocol):
    config: SupplierConfig

    async def stock(self, skus: Sequence[str]) -> StockAnswer:
        """Stock, price and ETA for a batch of supplier SKUs (the adapter splits big batches)."""
        ...

    async def place_order(self, po: str, lines: Sequence[OrderLineRequest]) -> OrderInfo:
        """Place an order; `po` is the idempotency key, so a retried call never orders twice."""
        ...

    async def order_status(self, supplier_order_id: str) -> OrderInfo: ...

    async def cancel_order(self, supplier_order_id: str) -> OrderInfo: ...

    async def order_changes(self, since: datetime | None) -> OrderChanges:
        """Every order changed after `since` (None: all orders), following the feed's pages; reading it
        again is harmless (each page is an idempotent call)."""
        ...

    async def aclose(self) -> None: ...
