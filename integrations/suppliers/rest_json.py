"""The `rest_json` adapter: a supplier's REST API as described in the supplier wire spec.

Every answer is validated with the strict pydantic models below before anything is handed back (a body
that is not JSON, has wrong types or contradicts the request is `BadSupplierData`); extra fields are
ignored so that a supplier may add some. All four operations may be retried: reads are safe, an order
carries our PO as its `Idempotency-Key` (a repeat returns the same order) and cancelling twice cancels
once. The changes feed (`order_changes`) is followed page by page, each page an idempotent GET.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Literal, TypeVar
from urllib.parse import quote

import structlog
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from integrations.http import SupplierHttp, SupplierResponse
from integrations.suppliers.base import (
    BadSupplierData,
    LineState,
    OrderChanges,
    OrderInfo,
    OrderLineInfo,
    OrderLineRequest,
    OrderState,
    StockAnswer,
    StockInfo,
    SupplierConfig,
    SupplierRejected,
)

log = structlog.get_logger("integrations.suppliers")

MAX_SKUS_PER_REQUEST = 100
CHANGES_PAGE = 1000  # orders per page of the changes feed (its maximum)
MAX_CHANGES_PAGES = 10_000  # a feed that never ends is refused rather than followed forever

Sku = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Count = Annotated[int, Field(ge=0)]


class _Wire(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class StockItemWire(_Wire):
    sku: Sku
    description: Annotated[str, StringConstraints(max_length=1000)] = ""
    available: Count
    price_cents: Count | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    eta: AwareDatetime | None = None


class StockWire(_Wire):
    items: list[StockItemWire]
    unknown: list[Sku] = []


class OrderLineWire(_Wire):
    sku: Sku
    quantity: Annotated[int, Field(ge=1)]
    shipped_quantity: Count
    state: Literal["open", "backordered", "shipped", "cancelled"]
    eta: AwareDatetime | None = None


class OrderWire(_Wire):
    id: Id
    po: Id
    state: Literal["placed", "confirmed", "backordered", "partially_shipped", "shipped", "delivered", "cancelled"]
    eta: AwareDatetime | None = None
    tracking_number: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    updated_at: AwareDatetime | None = None
    lines: list[OrderLineWire]


class OrderChangesWire(_Wire):
    items: list[OrderWire]
    next_cursor: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None
    as_of: AwareDatetime


W = TypeVar("W", bound=_Wire)


class RestJsonClient:
    """`SupplierClient` over the REST JSON API; one instance per supplier, reused for the process."""

    def __init__(self, config: SupplierConfig, http: SupplierHttp) -> None:
        self.config = config
        self._http = http

    async def aclose(self) -> None:
        await self._http.aclose()

    async def stock(self, skus: Sequence[str]) -> StockAnswer:
        """Stock for `skus`, asked in batches of at most 100.

        Every SKU asked for lands in `items` (a valid answer) or `unknown` (the supplier says it does not
        carry it), except those the supplier left out of its answer: no information, in neither list.
        """
        wanted = _unique_skus(skus)
        items: list[StockInfo] = []
        unknown: list[str] = []
        for start in range(0, len(wanted), MAX_SKUS_PER_REQUEST):
            batch = wanted[start : start + MAX_SKUS_PER_REQUEST]
            response = await self._http.request(
                "GET", "/api/v1/stock", operation="stock", idempotent=True, params={"skus": ",".join(batch)}
            )
            answer = self._parse(response, StockWire, "stock")
            batch_items, batch_unknown = self._check_stock(batch, answer)
            items.extend(batch_items)
            unknown.extend(batch_unknown)
        return StockAnswer(items=items, unknown=unknown)

    async def place_order(self, po: str, lines: Sequence[OrderLineRequest]) -> OrderInfo:
        if not po or not lines:
            raise ValueError("an order needs a PO and at least one line")
        if any(line.quantity < 1 for line in lines):
            raise ValueError("order quantities are at least 1")
        body = {"po": po, "lines": [{"sku": line.supplier_sku, "quantity": line.quantity} for line in lines]}
        response = await self._http.request(
            "POST",
            "/api/v1/orders",
            operation="place_order",
            idempotent=True,  # the Idempotency-Key makes a repeat return the same order
            json=body,
            headers={"Idempotency-Key": po},
        )
        order = self._order(response, "place_order")
        if order.po != po:
            raise self._bad("place_order", f"answered with the order of another PO ({order.po!r})")
        if _quantities(order.lines) != _quantities(lines):
            # The supplier already had an order under this PO, with other lines: a reused PO, not a retry.
            raise SupplierRejected(
                self.config.name,
                f"place_order: PO {po!r} already names order {order.supplier_order_id} with other lines",
                status_code=409,
            )
        return order

    async def order_status(self, supplier_order_id: str) -> OrderInfo:
        response = await self._http.request(
            "GET", f"/api/v1/orders/{_segment(supplier_order_id)}", operation="order_status", idempotent=True
        )
        return self._same_order(self._order(response, "order_status"), supplier_order_id, "order_status")

    async def cancel_order(self, supplier_order_id: str) -> OrderInfo:
        response = await self._http.request(
            "POST",
            f"/api/v1/orders/{_segment(supplier_order_id)}/cancel",
            operation="cancel_order",
            idempotent=True,  # cancelling a cancelled order answers the same cancelled order
        )
        return self._same_order(self._order(response, "cancel_order"), supplier_order_id, "cancel_order")

    async def order_changes(self, since: datetime | None) -> OrderChanges:
        """Every order changed after `since` (None: all), each once in the newest state the pages gave
        (an order that changes while the pages are read comes again on a later page); `as_of` is the
        supplier's time of its last page."""
        params = {"limit": str(CHANGES_PAGE)}
        if since is not None:
            if since.tzinfo is None:
                raise ValueError("since must be timezone-aware")
            params["since"] = since.astimezone(UTC).isoformat().replace("+00:00", "Z")
        found: dict[str, OrderInfo] = {}
        seen_cursors: set[str] = set()
        for _ in range(MAX_CHANGES_PAGES):
            response = await self._http.request(
                "GET", "/api/v1/orders/changes", operation="order_changes", idempotent=True, params=params
            )
            page = self._parse(response, OrderChangesWire, "order_changes")
            for wire in page.items:
                order = self._info(wire, "order_changes")
                found.pop(order.supplier_order_id, None)  # its newer state goes last, as the feed orders it
                found[order.supplier_order_id] = order
            if page.next_cursor is None:
                return OrderChanges(items=list(found.values()), as_of=page.as_of)
            if page.next_cursor in seen_cursors or not page.items:
                raise self._bad("order_changes", "the feed's cursor goes round in circles")
            seen_cursors.add(page.next_cursor)
            params["cursor"] = page.next_cursor
        raise self._bad("order_changes", f"the feed did not end within {MAX_CHANGES_PAGES} pages")

    # --- validation ---------------------------------------------------------------------------

    def _parse(self, response: SupplierResponse, model: type[W], operation: str) -> W:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            errors = [
                {"loc": ".".join(str(part) for part in error["loc"]), "type": error["type"], "msg": error["msg"]}
                for error in exc.errors(include_url=False, include_input=False)[:10]
            ]
            log.warning(
                "supplier.bad_data",
                supplier=self.config.name,
                operation=operation,
                status=response.status_code,
                bytes=len(response.content),
                errors=errors,
            )
            first = errors[0]
            where = first["loc"] or "body"
            raise self._bad(operation, f"invalid answer ({where}: {first['msg']})") from None

    def _check_stock(self, asked: list[str], answer: StockWire) -> tuple[list[StockInfo], list[str]]:
        asked_set = set(asked)
        seen: set[str] = set()
        items: list[StockInfo] = []
        for item in answer.items:
            if item.sku not in asked_set:
                raise self._bad("stock", f"answered for SKU {item.sku!r}, which was not asked for")
            if item.sku in seen:
                raise self._bad("stock", f"answered twice for SKU {item.sku!r}")
            seen.add(item.sku)
            items.append(
                StockInfo(
                    supplier_sku=item.sku,
                    available=item.available,
                    price_cents=item.price_cents,
                    currency=item.currency,
                    eta=item.eta,
                )
            )
        unknown: list[str] = []
        for sku in answer.unknown:
            if sku not in asked_set or sku in seen:
                raise self._bad("stock", f"lists SKU {sku!r} as unknown, which was not asked for or was answered")
            seen.add(sku)
            unknown.append(sku)
        missing = [sku for sku in asked if sku not in seen]
        if missing:
            log.warning("supplier.stock_incomplete", supplier=self.config.name, missing=len(missing))
        return items, unknown

    def _order(self, response: SupplierResponse, operation: str) -> OrderInfo:
        return self._info(self._parse(response, OrderWire, operation), operation)

    def _info(self, order: OrderWire, operation: str) -> OrderInfo:
        if not order.lines:
            raise self._bad(operation, "answered an order without lines")
        for line in order.lines:
            if line.shipped_quantity > line.quantity:
                raise self._bad(operation, f"line {line.sku!r} shipped more than ordered")
        return OrderInfo(
            supplier_order_id=order.id,
            po=order.po,
            state=OrderState(order.state),
            eta=order.eta,
            tracking_number=order.tracking_number,
            updated_at=order.updated_at,
            lines=[
                OrderLineInfo(
                    supplier_sku=line.sku,
                    quantity=line.quantity,
                    shipped_quantity=line.shipped_quantity,
                    state=LineState(line.state),
                    eta=line.eta,
                )
                for line in order.lines
            ],
        )

    def _same_order(self, order: OrderInfo, asked: str, operation: str) -> OrderInfo:
        if order.supplier_order_id != asked:
            raise self._bad(operation, f"answered with another order ({order.supplier_order_id!r})")
        return order

    def _bad(self, operation: str, reason: str) -> BadSupplierData:
        return BadSupplierData(self.config.name, f"{operation}: {reason}")


def _unique_skus(skus: Sequence[str]) -> list[str]:
    if isinstance(skus, str):
        raise TypeError("skus is a sequence of SKUs, not one string")
    unique: list[str] = []
    seen: set[str] = set()
    for sku in skus:
        if not sku or "," in sku or sku != sku.strip():
            raise ValueError(f"invalid supplier SKU {sku!r}: empty, padded or containing a comma")
        if sku not in seen:
            seen.add(sku)
            unique.append(sku)
    return unique


def _quantities(lines: Sequence[OrderLineRequest] | Sequence[OrderLineInfo]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.supplier_sku] = totals.get(line.supplier_sku, 0) + line.quantity
    return totals


def _segment(value: str) -> str:
    """One URL path segment: an order id can never walk the path (`..`, `/`) of the supplier's API."""
    if not value or value in {".", ".."}:
        raise ValueError(f"invalid supplier order id {value!r}")
    return quote(value, safe="")
