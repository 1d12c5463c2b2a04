"""What supplier polling reads and writes: which suppliers are due (and claiming a poll slot), the SKUs
awaited on open part lines, the open orders to ask about, and how far a supplier's changes feed was read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.parts import OrderStatus, PartStatus
from service.persistence.tables import line_t, order_t, supplier_sku_t, supplier_t

T = TypeVar("T")
CHUNK = 1000  # ids or SKUs per IN (...): far below any driver's parameter limit

# Lines whose stock and ETA a supplier is asked about: not yet ordered (any supplier may get them),
# or awaited from it.
AWAITED = (PartStatus.ORDERED, PartStatus.BACKORDERED, PartStatus.SHIPPED)
CLOSED_ORDERS = (OrderStatus.DELIVERED.value, OrderStatus.CANCELLED.value)


@dataclass(frozen=True, slots=True)
class PollSchedule:
    supplier_id: int
    poll_interval_seconds: int
    last_polled_at: datetime | None

    def due(self, now: datetime) -> bool:
        return self.last_polled_at is None or now - self.last_polled_at >= timedelta(seconds=self.poll_interval_seconds)


class PollingRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def schedules(self) -> list[PollSchedule]:
        """Every active supplier's interval and last poll."""
        query = (
            select(supplier_t.c.id, supplier_t.c.poll_interval_seconds, supplier_t.c.last_polled_at)
            .where(supplier_t.c.active.is_(True))
            .order_by(supplier_t.c.id)
        )
        return [PollSchedule(row[0], row[1], row[2]) for row in await self._conn.execute(query)]

    async def claim(self, schedule: PollSchedule, now: datetime) -> bool:
        """Take this poll for the caller: True for exactly one of several callers at once (the update
        re-checks that the supplier is still due, under the row's lock)."""
        due_before = now - timedelta(seconds=schedule.poll_interval_seconds)
        result = await self._conn.execute(
            update(supplier_t)
            .where(
                supplier_t.c.id == schedule.supplier_id,
                supplier_t.c.active.is_(True),
                or_(supplier_t.c.last_polled_at.is_(None), supplier_t.c.last_polled_at <= due_before),
            )
            .values(last_polled_at=now)
        )
        return bool(result.rowcount == 1)

    async def release(self, supplier_id: int, claimed_at: datetime, previous: datetime | None) -> None:
        """Undo a claim whose poll could not be handed to the workers (the next cron run retries)."""
        await self._conn.execute(
            update(supplier_t)
            .where(supplier_t.c.id == supplier_id, supplier_t.c.last_polled_at == claimed_at)
            .values(last_polled_at=previous)
        )

    async def awaited_skus(self, supplier_id: int) -> list[str]:
        """The supplier SKUs to ask `supplier_id` about: for every SKU of ours on a line still to order
        (any supplier) or awaited from it, the supplier's name for it (its mapping, else ours), plus the
        supplier SKU each awaited line was ordered under."""
        lines = (
            select(line_t.c.sku, line_t.c.supplier_sku, line_t.c.supplier_id)
            .where(
                or_(
                    line_t.c.status == PartStatus.NEEDED.value,
                    and_(
                        line_t.c.status.in_([s.value for s in AWAITED]),
                        line_t.c.supplier_id == supplier_id,
                    ),
                )
            )
            .distinct()
        )
        ours: set[str] = set()
        theirs: set[str] = set()
        for sku, supplier_sku, line_supplier in await self._conn.execute(lines):
            ours.add(sku)
            if supplier_sku and line_supplier == supplier_id:
                theirs.add(supplier_sku)
        mapped: dict[str, set[str]] = {}
        for chunk in _chunks(sorted(ours)):
            rows = await self._conn.execute(
                select(supplier_sku_t.c.sku, supplier_sku_t.c.supplier_sku).where(
                    supplier_sku_t.c.supplier_id == supplier_id, supplier_sku_t.c.sku.in_(chunk)
                )
            )
            for sku, supplier_sku in rows:
                mapped.setdefault(sku, set()).add(supplier_sku)
        for sku in ours:
            theirs.update(mapped.get(sku, {sku}))
        return sorted(theirs)

    async def supplier_refs(self, order_ids: Sequence[int]) -> dict[int, str | None]:
        """The supplier's own id of each order (None: its answer to the order was never recorded)."""
        refs: dict[int, str | None] = {}
        for chunk in _chunks(list(order_ids)):
            rows = await self._conn.execute(select(order_t.c.id, order_t.c.supplier_ref).where(order_t.c.id.in_(chunk)))
            refs.update({row[0]: row[1] for row in rows})
        return refs

    async def feed_watermark(self, supplier_id: int) -> datetime | None:
        """Where the next read of the supplier's changes feed starts (None: from the beginning)."""
        found: datetime | None = await self._conn.scalar(
            select(supplier_t.c.feed_watermark).where(supplier_t.c.id == supplier_id)
        )
        return found

    async def set_feed_watermark(self, supplier_id: int, watermark: datetime | None) -> None:
        await self._conn.execute(
            update(supplier_t).where(supplier_t.c.id == supplier_id).values(feed_watermark=watermark)
        )

    async def open_without_ref(self, supplier_id: int) -> int:
        """How many of the supplier's open orders it never told us its id for."""
        count = await self._conn.scalar(
            select(func.count())
            .select_from(order_t)
            .where(
                order_t.c.supplier_id == supplier_id,
                order_t.c.status.not_in(CLOSED_ORDERS),
                order_t.c.supplier_ref.is_(None),
            )
        )
        return int(count or 0)

    async def open_orders_named(
        self, supplier_id: int, refs: Sequence[str], po_ids: Sequence[int]
    ) -> tuple[dict[str, int], dict[int, int]]:
        """Which of the supplier's open orders a page of its feed names: by its id for them (`refs` →
        our order id), and, for the orders whose id it never told us, by our PO (`po_ids`, our order ids,
        → themselves). One query per thousand names, not one per order."""
        by_ref: dict[str, int] = {}
        for chunk in _chunks(sorted(set(refs))):
            rows = await self._conn.execute(
                select(order_t.c.supplier_ref, order_t.c.id).where(
                    order_t.c.supplier_id == supplier_id,
                    order_t.c.supplier_ref.in_(chunk),
                    order_t.c.status.not_in(CLOSED_ORDERS),
                )
            )
            by_ref.update({row[0]: row[1] for row in rows})
        by_po: dict[int, int] = {}
        for ids in _chunks(sorted(set(po_ids))):
            rows = await self._conn.execute(
                select(order_t.c.id).where(
                    order_t.c.id.in_(ids),
                    order_t.c.supplier_id == supplier_id,
                    order_t.c.supplier_ref.is_(None),
                    order_t.c.status.not_in(CLOSED_ORDERS),
                )
            )
            by_po.update({row[0]: row[0] for row in rows})
        return by_ref, by_po


def _chunks(items: list[T]) -> list[list[T]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
