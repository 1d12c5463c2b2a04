"""Suppliers in storage: their settings and encrypted secrets, SKU map, reported stock, and the webhook
events already applied (the redelivery guard)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from domain.errors import NotFound, RuleConflict
from domain.parts import Supplier
from service.persistence.statements import Prepared, Runner
from service.persistence.tables import MAX_ROW_ID, part_t, supplier_sku_t, supplier_stock_t, supplier_t, webhook_t


@dataclass(frozen=True, slots=True)
class StoredSupplier:
    """A supplier with its secrets still encrypted: only the use cases that need them decrypt them."""

    supplier: Supplier
    credentials_ciphertext: str | None
    webhook_secrets_ciphertext: str | None


@dataclass(frozen=True, slots=True)
class StockReport:
    supplier_sku: str
    available: int
    price_cents: int | None
    currency: str | None
    eta: datetime | None
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class SkuMapping:
    supplier_sku: str
    sku: str | None
    available: int | None
    observed_at: datetime | None


_SECRETS_Q = Prepared(
    select(supplier_t.c.webhook_secrets_ciphertext).where(
        supplier_t.c.id == bindparam("supplier_id"), supplier_t.c.active.is_(True)
    )
)
_STOCK_KEYS = (
    "supplier_id",
    "supplier_sku",
    "available",
    "price_cents",
    "currency",
    "eta",
    "observed_at",
    "updated_at",
)


def _insert_for(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _stock_upsert(dialect: str) -> Any:
    insert = _insert_for(dialect)(supplier_stock_t)
    # The newest fact wins: a stock report older than the stored one changes nothing.
    return insert.on_conflict_do_update(
        index_elements=["supplier_id", "supplier_sku"],
        set_={k: insert.excluded[k] for k in _STOCK_KEYS[2:]},
        where=supplier_stock_t.c.observed_at <= insert.excluded.observed_at,
    )


_CLAIM_KEYS = ("supplier_id", "webhook_id", "type", "received_at")
_CLAIM = {
    d: Prepared(_insert_for(d)(webhook_t).on_conflict_do_nothing(), _CLAIM_KEYS) for d in ("postgresql", "sqlite")
}
_STOCK_UPSERT = {d: Prepared(_stock_upsert(d), _STOCK_KEYS) for d in ("postgresql", "sqlite")}


def _claim_with_stock() -> Prepared:
    """PostgreSQL: the claim and the stock upsert as ONE statement, atomic on its own (so it needs no
    BEGIN/COMMIT around it). The upsert reads the claim's RETURNING, so a redelivery (nothing claimed)
    changes nothing, and a concurrent delivery of the same id waits on the first one's insert and then
    claims nothing; the upsert keeps `_stock_upsert`'s rule (an older fact never overwrites a newer
    one). The statement answers whether the id was claimed. Binds: `_CLAIM_KEYS` and the report's
    `_STOCK_KEYS` (its `updated_at` is the claim's `received_at`)."""

    def param(table: Any, name: str, key: str | None = None) -> Any:
        return bindparam(key or name, type_=table.c[name].type)

    claim = (
        postgresql.insert(webhook_t)
        .values({key: param(webhook_t, key) for key in _CLAIM_KEYS})
        .on_conflict_do_nothing()
        .returning(webhook_t.c.webhook_id)
        .cte("claim")
    )
    report = select(
        *(param(supplier_stock_t, key, "received_at" if key == "updated_at" else None) for key in _STOCK_KEYS)
    ).where(exists(select(claim.c.webhook_id)))
    insert = postgresql.insert(supplier_stock_t).from_select(list(_STOCK_KEYS), report)
    stock = (
        insert.on_conflict_do_update(
            index_elements=["supplier_id", "supplier_sku"],
            set_={k: insert.excluded[k] for k in _STOCK_KEYS[2:]},
            where=supplier_stock_t.c.observed_at <= insert.excluded.observed_at,
        )
        .returning(supplier_stock_t.c.supplier_sku)
        .cte("stock")
    )
    return Prepared(select(exists(select(claim.c.webhook_id))).add_cte(stock))


_CLAIM_WITH_STOCK = _claim_with_stock()


class SupplierRepository:
    def __init__(self, runner: Runner) -> None:
        self._run = runner
        self._conn = runner.conn
        self._dialect = runner.conn.dialect.name

    async def add(self, values: Mapping[str, Any]) -> int:
        try:
            async with self._conn.begin_nested():
                result = await self._conn.execute(supplier_t.insert().values(**values).returning(supplier_t.c.id))
        except IntegrityError as exc:
            raise RuleConflict(f"a supplier named {values.get('name')!r} already exists") from exc
        supplier_id: int = result.scalar_one()
        return supplier_id

    async def update(self, supplier_id: int, values: Mapping[str, Any]) -> None:
        try:
            async with self._conn.begin_nested():
                result = await self._conn.execute(
                    update(supplier_t)
                    .where(supplier_t.c.id == supplier_id)
                    .values(**values, version=supplier_t.c.version + 1)
                )
        except IntegrityError as exc:
            raise RuleConflict(f"a supplier named {values.get('name')!r} already exists") from exc
        if result.rowcount == 0:
            raise NotFound(f"no supplier {supplier_id}")

    async def get(self, supplier_id: int) -> StoredSupplier:
        if not 0 < supplier_id <= MAX_ROW_ID:
            raise NotFound(f"no supplier {supplier_id}")
        row = (await self._conn.execute(select(supplier_t).where(supplier_t.c.id == supplier_id))).mappings().first()
        if row is None:
            raise NotFound(f"no supplier {supplier_id}")
        return _to_stored(row)

    async def list(self, *, active_only: bool = False) -> list[StoredSupplier]:
        query = select(supplier_t).order_by(supplier_t.c.name)
        if active_only:
            query = query.where(supplier_t.c.active.is_(True))
        return [_to_stored(row) for row in (await self._conn.execute(query)).mappings()]

    async def stored_secrets(self) -> list[tuple[int, str | None, str | None]]:
        """Every supplier's encrypted secrets (for key rotation)."""
        query = select(supplier_t.c.id, supplier_t.c.credentials_ciphertext, supplier_t.c.webhook_secrets_ciphertext)
        return [(row[0], row[1], row[2]) for row in await self._conn.execute(query)]

    async def replace_secrets(self, supplier_id: int, credentials: str | None, webhook_secrets: str | None) -> None:
        await self._conn.execute(
            update(supplier_t)
            .where(supplier_t.c.id == supplier_id)
            .values(credentials_ciphertext=credentials, webhook_secrets_ciphertext=webhook_secrets)
        )

    async def webhook_secrets(self, supplier_id: int) -> str | None:
        """The encrypted webhook secrets of an active supplier; None when there is no such supplier."""
        row = await self._run.fetchrow(_SECRETS_Q, {"supplier_id": supplier_id})
        return row["webhook_secrets_ciphertext"] if row else None

    async def claim_webhook(self, supplier_id: int, webhook_id: str, kind: str, now: datetime) -> bool:
        """Record a webhook as applied; False when it already was (a redelivery)."""
        params = {"supplier_id": supplier_id, "webhook_id": webhook_id, "type": kind, "received_at": now}
        return await self._run.execute(_CLAIM[self._dialect], params) == 1

    @property
    def claims_with_stock_atomically(self) -> bool:
        """True when `claim_webhook_with_stock` is a single statement (PostgreSQL, on the asyncpg
        connection): atomic by itself, so the caller needs no transaction around it."""
        return self._run.driver is not None

    async def claim_webhook_with_stock(
        self, supplier_id: int, webhook_id: str, kind: str, report: StockReport, now: datetime
    ) -> bool:
        """Record a webhook as applied and apply its stock report, together; False when the webhook
        already was (a redelivery: nothing changes). One statement on PostgreSQL (see
        `claims_with_stock_atomically`); elsewhere `claim_webhook` then `record_stock`, which the
        caller's transaction makes atomic."""
        if self._run.driver is None:
            if not await self.claim_webhook(supplier_id, webhook_id, kind, now):
                return False
            await self.record_stock(supplier_id, [report], now)
            return True
        params = {
            "supplier_id": supplier_id,
            "webhook_id": webhook_id,
            "type": kind,
            "received_at": now,
            "supplier_sku": report.supplier_sku,
            "available": report.available,
            "price_cents": report.price_cents,
            "currency": report.currency,
            "eta": report.eta,
            "observed_at": report.observed_at,
        }
        return bool(await self._run.fetchval(_CLAIM_WITH_STOCK, params))

    async def purge_webhooks(self, before: datetime) -> int:
        result = await self._conn.execute(delete(webhook_t).where(webhook_t.c.received_at < before))
        return int(result.rowcount)

    async def record_stock(self, supplier_id: int, reports: Sequence[StockReport], now: datetime) -> None:
        rows = [
            {
                "supplier_id": supplier_id,
                "supplier_sku": r.supplier_sku,
                "available": r.available,
                "price_cents": r.price_cents,
                "currency": r.currency,
                "eta": r.eta,
                "observed_at": r.observed_at,
                "updated_at": now,
            }
            for r in reports
        ]
        await self._run.execute_many(_STOCK_UPSERT[self._dialect], rows)

    # --- SKU map ---------------------------------------------------------------------------

    async def supplier_skus(self, supplier_ids: Sequence[int], sku: str) -> dict[int, str]:
        """What each supplier calls our SKU: its mapping, else our own code (most suppliers use it)."""
        rows = await self._conn.execute(
            select(supplier_sku_t.c.supplier_id, supplier_sku_t.c.supplier_sku).where(
                supplier_sku_t.c.sku == sku, supplier_sku_t.c.supplier_id.in_(supplier_ids)
            )
        )
        mapped = {row[0]: row[1] for row in rows}
        return {supplier_id: mapped.get(supplier_id, sku) for supplier_id in supplier_ids}

    async def our_skus(self, supplier_id: int, supplier_skus: Sequence[str]) -> dict[str, str]:
        """Our SKU for each supplier SKU we know (mapped, or identical to one of ours)."""
        wanted = set(supplier_skus)
        rows = await self._conn.execute(
            select(supplier_sku_t.c.supplier_sku, supplier_sku_t.c.sku).where(
                supplier_sku_t.c.supplier_id == supplier_id, supplier_sku_t.c.supplier_sku.in_(wanted)
            )
        )
        result = {row[0]: row[1] for row in rows if row[1] is not None}
        rest = wanted - set(result)
        if rest:
            own = await self._conn.execute(select(part_t.c.sku).where(part_t.c.sku.in_(rest)))
            result.update({row[0]: row[0] for row in own})
        return result

    async def set_mapping(self, supplier_id: int, supplier_sku: str, sku: str | None, now: datetime) -> None:
        insert = _insert_for(self._dialect)(supplier_sku_t).values(
            supplier_id=supplier_id, supplier_sku=supplier_sku, sku=sku, updated_at=now
        )
        await self._conn.execute(
            insert.on_conflict_do_update(
                index_elements=["supplier_id", "supplier_sku"], set_={"sku": sku, "updated_at": now}
            )
        )

    async def mappings(self, supplier_id: int, *, unmapped_only: bool) -> list[SkuMapping]:
        """The supplier's SKUs we know of: mapped ones, and those it reported that map to nothing of
        ours (kept for review, never dropped)."""
        stock = supplier_stock_t
        sku_map = supplier_sku_t
        query = (
            select(
                stock.c.supplier_sku,
                sku_map.c.sku.label("mapped"),
                part_t.c.sku.label("same"),
                stock.c.available,
                stock.c.observed_at,
            )
            .select_from(
                stock.outerjoin(
                    sku_map,
                    and_(sku_map.c.supplier_id == stock.c.supplier_id, sku_map.c.supplier_sku == stock.c.supplier_sku),
                ).outerjoin(part_t, part_t.c.sku == stock.c.supplier_sku)
            )
            .where(stock.c.supplier_id == supplier_id)
        )
        if unmapped_only:  # no mapping row at all (a NULL mapping is a reviewed "none of ours")
            query = query.where(sku_map.c.supplier_sku.is_(None), part_t.c.sku.is_(None))
        seen = {
            row["supplier_sku"]: SkuMapping(
                row["supplier_sku"], row["mapped"] or row["same"], row["available"], row["observed_at"]
            )
            for row in (await self._conn.execute(query.order_by(stock.c.supplier_sku))).mappings()
        }
        if not unmapped_only:  # mappings made by hand for SKUs not reported yet
            rows = await self._conn.execute(
                select(sku_map.c.supplier_sku, sku_map.c.sku).where(sku_map.c.supplier_id == supplier_id)
            )
            for supplier_sku, sku in rows:
                seen.setdefault(supplier_sku, SkuMapping(supplier_sku, sku, None, None))
        return sorted(seen.values(), key=lambda m: m.supplier_sku)

    async def mark_health(self, supplier_id: int, *, ok: bool, now: datetime) -> None:
        """A good answer clears staleness; a failure starts it (keeping when it started)."""
        if ok:
            values: dict[str, Any] = {"last_ok_at": now, "stale_since": None}
            query = update(supplier_t).where(supplier_t.c.id == supplier_id)
        else:
            values = {"stale_since": now}
            query = update(supplier_t).where(supplier_t.c.id == supplier_id, supplier_t.c.stale_since.is_(None))
        await self._conn.execute(query.values(**values))


def _to_stored(row: Mapping[str, Any]) -> StoredSupplier:
    supplier = Supplier(
        id=row["id"],
        name=row["name"],
        adapter=row["adapter"],
        base_url=row["base_url"],
        poll_interval_seconds=row["poll_interval_seconds"],
        rate_limit_per_minute=row["rate_limit_per_minute"],
        active=row["active"],
        has_api_key=row["credentials_ciphertext"] is not None,
        webhook_secret_count=0,  # filled in by the use case that decrypts them, if it needs to
        last_ok_at=row["last_ok_at"],
        stale_since=row["stale_since"],
    )
    return StoredSupplier(supplier, row["credentials_ciphertext"], row["webhook_secrets_ciphertext"])
