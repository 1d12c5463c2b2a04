"""Parts in storage: the catalogue, part lines and their ETA history, and supplier orders.

Lines and orders carry the branch of their job, and every listing here is scoped by it: a line of
another branch's job does not exist for the caller.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Text, and_, cast, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from domain.errors import NotFound, RuleConflict, VersionConflict
from domain.model import Actor, Tier
from domain.parts import (
    WAITING,
    EtaRevision,
    EtaSource,
    OrderStatus,
    Part,
    PartLine,
    PartStatus,
    SupplierOrder,
)
from domain.sourcing import LineRecord
from domain.stages import Stage
from service.persistence.statements import Runner
from service.persistence.tables import MAX_ROW_ID, job_t, line_t, order_t, part_t, revision_t, supplier_t


class CatalogueRepository:
    def __init__(self, runner: Runner) -> None:
        self._conn = runner.conn

    async def get(self, sku: str) -> Part | None:
        row = (await self._conn.execute(select(part_t).where(part_t.c.sku == sku))).mappings().first()
        return _to_part(row) if row else None

    async def existing(self, skus: Iterable[str]) -> set[str]:
        rows = await self._conn.execute(select(part_t.c.sku).where(part_t.c.sku.in_(set(skus))))
        return {row[0] for row in rows}

    async def list(self, q: str | None, model: str | None, limit: int) -> list[Part]:
        query = select(part_t).order_by(part_t.c.sku).limit(limit)
        if q:
            pattern = f"%{_escape_like(q.lower())}%"
            query = query.where(
                or_(
                    func.lower(part_t.c.sku).like(pattern, escape="\\"),
                    func.lower(part_t.c.description).like(pattern, escape="\\"),
                )
            )
        if model:
            # One of the part's models, whole and in any case: its JSON text holds it as "<model>".
            element = f"%{_escape_like(json.dumps(model.strip().lower()))}%"
            query = query.where(func.lower(cast(part_t.c.models, Text)).like(element, escape="\\"))
        return [_to_part(row) for row in (await self._conn.execute(query)).mappings()]

    async def add(self, part: Part, now: datetime) -> None:
        values = {"sku": part.sku, "description": part.description, "models": list(part.models)}
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(part_t.insert().values(**values, created_at=now, updated_at=now))
        except IntegrityError as exc:
            raise RuleConflict(f"part {part.sku} is already in the catalogue") from exc

    async def update(self, part: Part, now: datetime) -> None:
        result = await self._conn.execute(
            update(part_t)
            .where(part_t.c.sku == part.sku)
            .values(description=part.description, models=list(part.models), updated_at=now)
        )
        if result.rowcount == 0:
            raise NotFound(f"no part {part.sku} in the catalogue")


@dataclass(frozen=True, slots=True)
class LateLine:
    line: PartLine
    ref_id: int
    stage: Stage
    tier: Tier
    due_at: datetime
    supplier_name: str | None
    supplier_stale_since: datetime | None


class LineRepository:
    def __init__(self, runner: Runner) -> None:
        self._conn = runner.conn

    async def add(self, lines: Sequence[PartLine]) -> None:
        for line in lines:
            values = {k: v for k, v in _line_values(line).items() if k != "version"}
            values.update(job_id=line.job_id, branch_id=line.branch_id, sku=line.sku, quantity=line.quantity)
            values.update(version=line.version, created_at=line.created_at, updated_at=line.created_at)
            line.id = (await self._conn.execute(line_t.insert().values(**values).returning(line_t.c.id))).scalar_one()

    async def for_job(self, job_id: int, *, lock: bool = False) -> list[PartLine]:
        query = select(line_t).where(line_t.c.job_id == job_id).order_by(line_t.c.id)
        if lock:
            query = query.with_for_update()
        return [_to_line(row) for row in (await self._conn.execute(query)).mappings()]

    async def for_jobs(self, job_ids: Sequence[int]) -> dict[int, list[PartLine]]:
        """Every line of these jobs in one query (not one per job), by job."""
        lines: dict[int, list[PartLine]] = {job_id: [] for job_id in job_ids}
        if job_ids:
            query = select(line_t).where(line_t.c.job_id.in_(job_ids)).order_by(line_t.c.id)
            for row in (await self._conn.execute(query)).mappings():
                lines[row["job_id"]].append(_to_line(row))
        return lines

    async def for_order(self, order_id: int, *, lock: bool = False) -> list[PartLine]:
        query = select(line_t).where(line_t.c.order_id == order_id).order_by(line_t.c.id)
        if lock:
            query = query.with_for_update()
        return [_to_line(row) for row in (await self._conn.execute(query)).mappings()]

    async def save(self, lines: Iterable[PartLine], expected: Mapping[int, int]) -> None:
        """Write changed lines, each guarded by the version it was read at."""
        for line in lines:
            assert line.id is not None
            result = await self._conn.execute(
                update(line_t)
                .where(line_t.c.id == line.id, line_t.c.version == expected[line.id])
                .values(**_line_values(line))
            )
            if result.rowcount != 1:
                raise VersionConflict(f"part line {line.id} changed meanwhile")
            await self.add_revisions(line.pending_revisions)
            line.pending_revisions.clear()

    async def add_revisions(self, revisions: Sequence[EtaRevision]) -> None:
        if revisions:
            await self._conn.execute(
                revision_t.insert(),
                [
                    {
                        "line_id": r.line_id,
                        "supplier_id": r.supplier_id,
                        "source": r.source.value,
                        "learned_at": r.learned_at,
                        "old_eta": r.old_eta,
                        "new_eta": r.new_eta,
                    }
                    for r in revisions
                ],
            )

    async def history(self, line_ids: Sequence[int]) -> dict[int, list[EtaRevision]]:
        if not line_ids:
            return {}
        rows = await self._conn.execute(
            select(revision_t).where(revision_t.c.line_id.in_(line_ids)).order_by(revision_t.c.id)
        )
        history: dict[int, list[EtaRevision]] = {line_id: [] for line_id in line_ids}
        for row in rows.mappings():
            history[row["line_id"]].append(
                EtaRevision(
                    row["line_id"],
                    EtaSource(row["source"]),
                    row["learned_at"],
                    row["old_eta"],
                    row["new_eta"],
                    row["supplier_id"],
                )
            )
        return history

    async def late(self, actor: Actor, now: datetime, limit: int) -> list[LateLine]:
        """Awaited lines past their promise, or whose ETA slipped past it (worst first is sorted by the
        caller, who knows `late_by`)."""
        query = (
            select(
                line_t,
                job_t.c.stage.label("job_stage"),
                job_t.c.tier.label("job_tier"),
                job_t.c.due_at.label("job_due_at"),
                supplier_t.c.name.label("supplier_name"),
                supplier_t.c.stale_since.label("supplier_stale_since"),
            )
            .select_from(line_t.join(job_t, job_t.c.id == line_t.c.job_id).outerjoin(supplier_t))
            .where(
                line_t.c.status.in_([s.value for s in WAITING]),
                line_t.c.promised_at.is_not(None),
                or_(line_t.c.promised_at < now, line_t.c.eta > line_t.c.promised_at, line_t.c.eta < now),
            )
            .order_by(line_t.c.promised_at, line_t.c.id)
            .limit(limit)
        )
        if actor.branch_id is not None:
            query = query.where(line_t.c.branch_id == actor.branch_id)
        rows = (await self._conn.execute(query)).mappings().all()
        return [
            LateLine(
                _to_line(row),
                row["job_id"],
                Stage(row["job_stage"]),
                Tier(row["job_tier"]),
                row["job_due_at"],
                row["supplier_name"],
                row["supplier_stale_since"],
            )
            for row in rows
        ]

    async def records(self, supplier_id: int, since: datetime) -> list[LineRecord]:
        """What the scorecard reads: lines ordered from the supplier with a promise in the window."""
        return (await self.records_by_supplier(since, supplier_id)).get(supplier_id, [])

    async def records_by_supplier(self, since: datetime, supplier_id: int | None = None) -> dict[int, list[LineRecord]]:
        """The scorecard's lines of one supplier, or of every supplier at once (one query), by supplier."""
        slipped = (
            select(revision_t.c.line_id)
            .where(
                revision_t.c.source != EtaSource.ORDER.value,
                revision_t.c.old_eta.is_not(None),
                revision_t.c.new_eta > revision_t.c.old_eta,
            )
            .distinct()
            .subquery()
        )
        supplier = line_t.c.supplier_id.is_not(None) if supplier_id is None else line_t.c.supplier_id == supplier_id
        query = (
            select(line_t, slipped.c.line_id.is_not(None).label("slipped"))
            .select_from(line_t.outerjoin(slipped, slipped.c.line_id == line_t.c.id))
            .where(supplier, line_t.c.promised_at >= since)
        )
        found: dict[int, list[LineRecord]] = {}
        for row in (await self._conn.execute(query)).mappings().all():
            found.setdefault(row["supplier_id"], []).append(
                LineRecord(
                    quantity=row["quantity"],
                    received_quantity=row["received_quantity"],
                    promised_at=row["promised_at"],
                    received_at=row["received_at"],
                    eta=row["eta"],
                    slipped=bool(row["slipped"]),
                    cancelled_by_us=row["status"] == PartStatus.CANCELLED.value and not row["cancelled_by_supplier"],
                )
            )
        return found


class OrderRepository:
    def __init__(self, runner: Runner, lines: LineRepository) -> None:
        self._conn = runner.conn
        self._lines = lines

    async def add(self, order: SupplierOrder) -> None:
        values = _order_values(order)
        values.update(
            supplier_id=order.supplier_id,
            branch_id=order.branch_id,
            job_id=order.job_id,
            choice_reason=order.choice_reason,
            placed_by=order.placed_by,
            placed_at=order.placed_at,
        )
        order.id = (await self._conn.execute(order_t.insert().values(**values).returning(order_t.c.id))).scalar_one()

    async def get(self, actor: Actor | None, order_id: int, *, lock: bool = False) -> SupplierOrder:
        """An order with its lines; `actor` None is the system (webhooks, workers), which sees every branch."""
        if not 0 < order_id <= MAX_ROW_ID:
            raise NotFound(f"no supplier order {order_id}")
        query = select(order_t).where(order_t.c.id == order_id)
        if actor is not None and actor.branch_id is not None:
            query = query.where(order_t.c.branch_id == actor.branch_id)
        if lock:
            query = query.with_for_update()
        row = (await self._conn.execute(query)).mappings().first()
        if row is None:
            raise NotFound(f"no supplier order {order_id}")
        order = _to_order(row)
        order.lines = await self._lines.for_order(order_id, lock=lock)
        return order

    async def many(self, order_ids: Sequence[int]) -> dict[int, SupplierOrder]:
        """Orders with their lines as stored, by id, unlocked, for the system (every branch): two queries
        for up to a few hundred ids (what a poll compares a batch of a supplier's answers with)."""
        ids = sorted(set(order_ids))
        if not ids:
            return {}
        rows = (await self._conn.execute(select(order_t).where(order_t.c.id.in_(ids)))).mappings()
        orders = {order.id: order for order in map(_to_order, rows) if order.id is not None}
        query = select(line_t).where(line_t.c.order_id.in_(ids)).order_by(line_t.c.id)
        for row in (await self._conn.execute(query)).mappings():
            line = _to_line(row)
            if line.order_id in orders:
                orders[line.order_id].lines.append(line)
        return orders

    async def find(self, supplier_id: int, supplier_ref: str | None, order_id: int | None) -> int | None:
        """Our order id for what a supplier calls an order (its own id, or our PO number)."""
        conditions = []
        if supplier_ref:
            conditions.append(order_t.c.supplier_ref == supplier_ref)
        if order_id is not None:
            conditions.append(order_t.c.id == order_id)
        if not conditions:
            return None
        query = select(order_t.c.id).where(order_t.c.supplier_id == supplier_id, or_(*conditions)).limit(1)
        value: int | None = (await self._conn.execute(query)).scalar_one_or_none()
        return value

    async def pending_for_lines(self, line_ids: Sequence[int]) -> list[SupplierOrder]:
        """Orders sent but never acknowledged for these lines (their retry reuses the same PO)."""
        query = (
            select(order_t)
            .join(line_t, line_t.c.order_id == order_t.c.id)
            .where(line_t.c.id.in_(line_ids), order_t.c.status == OrderStatus.PLACED.value)
        )
        return [_to_order(row) for row in (await self._conn.execute(query)).mappings()]

    async def list(
        self, actor: Actor, status: Sequence[OrderStatus], supplier_id: int | None, limit: int, before: int | None
    ) -> list[SupplierOrder]:
        query: Select[Any] = select(order_t).order_by(order_t.c.id.desc()).limit(limit)
        if actor.branch_id is not None:
            query = query.where(order_t.c.branch_id == actor.branch_id)
        if status:
            query = query.where(order_t.c.status.in_([s.value for s in status]))
        if supplier_id is not None:
            query = query.where(order_t.c.supplier_id == supplier_id)
        if before is not None:
            query = query.where(order_t.c.id < before)
        orders = [_to_order(row) for row in (await self._conn.execute(query)).mappings()]
        if orders:
            ids = [o.id for o in orders]
            rows = await self._conn.execute(select(line_t).where(line_t.c.order_id.in_(ids)).order_by(line_t.c.id))
            by_order: dict[int, list[PartLine]] = {}
            for row in rows.mappings():
                by_order.setdefault(row["order_id"], []).append(_to_line(row))
            for order in orders:
                order.lines = by_order.get(order.id or 0, [])
        return orders

    async def open_for_supplier(self, supplier_id: int) -> list[int]:
        done = (OrderStatus.DELIVERED.value, OrderStatus.CANCELLED.value)
        query = select(order_t.c.id).where(and_(order_t.c.supplier_id == supplier_id, order_t.c.status.not_in(done)))
        return [row[0] for row in await self._conn.execute(query)]

    async def save(self, order: SupplierOrder) -> None:
        assert order.id is not None
        await self._conn.execute(update(order_t).where(order_t.c.id == order.id).values(**_order_values(order)))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _to_part(row: Mapping[str, Any]) -> Part:
    return Part(row["sku"], row["description"], tuple(row["models"] or ()))


def _line_values(line: PartLine) -> dict[str, Any]:
    return {
        "status": line.status.value,
        "supplier_id": line.supplier_id,
        "supplier_sku": line.supplier_sku,
        "order_id": line.order_id,
        "unit_price_cents": line.unit_price_cents,
        "promised_at": line.promised_at,
        "eta": line.eta,
        "shipped_quantity": line.shipped_quantity,
        "received_quantity": line.received_quantity,
        "received_at": line.received_at,
        "fact_at": line.fact_at,
        "status_fact_at": line.status_fact_at,
        "cancel_reason": line.cancel_reason,
        "cancelled_by_supplier": line.cancelled_by_supplier,
        "version": line.version,
        "updated_at": line.updated_at or line.created_at,
    }


def _to_line(row: Mapping[str, Any]) -> PartLine:
    return PartLine(
        id=row["id"],
        job_id=row["job_id"],
        branch_id=row["branch_id"],
        sku=row["sku"],
        quantity=row["quantity"],
        created_at=row["created_at"],
        status=PartStatus(row["status"]),
        supplier_id=row["supplier_id"],
        supplier_sku=row["supplier_sku"],
        order_id=row["order_id"],
        unit_price_cents=row["unit_price_cents"],
        promised_at=row["promised_at"],
        eta=row["eta"],
        shipped_quantity=row["shipped_quantity"],
        received_quantity=row["received_quantity"],
        received_at=row["received_at"],
        fact_at=row["fact_at"],
        status_fact_at=row["status_fact_at"],
        cancel_reason=row["cancel_reason"],
        cancelled_by_supplier=row["cancelled_by_supplier"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


def _order_values(order: SupplierOrder) -> dict[str, Any]:
    return {
        "supplier_ref": order.supplier_ref,
        "status": order.status.value,
        "tracking_number": order.tracking_number,
        "updated_at": order.updated_at or order.placed_at,
    }


def _to_order(row: Mapping[str, Any]) -> SupplierOrder:
    return SupplierOrder(
        id=row["id"],
        supplier_id=row["supplier_id"],
        branch_id=row["branch_id"],
        job_id=row["job_id"],
        placed_at=row["placed_at"],
        placed_by=row["placed_by"],
        choice_reason=row["choice_reason"],
        status=OrderStatus(row["status"]),
        supplier_ref=row["supplier_ref"],
        tracking_number=row["tracking_number"],
        updated_at=row["updated_at"],
    )
