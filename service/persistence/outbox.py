"""The transactional outbox: work for the outside world, written with the change that causes it.

The relay claims pending entries (on PostgreSQL with SKIP LOCKED, so several relays never take the same
one), hands them to the task queue with the entry's id as the task id, and marks them dispatched. A
handler marks its entry done; one that is dispatched but never done (Redis lost it, a worker died) is
dispatched again after a while: handlers are idempotent, so a second run changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update

from service.persistence.statements import Runner
from service.persistence.tables import outbox_t


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    kind: str
    payload: Mapping[str, Any]
    job_id: int | None
    attempts: int
    created_at: datetime


class OutboxRepository:
    def __init__(self, runner: Runner) -> None:
        self._conn = runner.conn
        self._postgres = runner.conn.dialect.name == "postgresql"

    async def add(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        now: datetime,
        job_id: int | None = None,
        not_before: datetime | None = None,
    ) -> int:
        values = {
            "kind": kind,
            "payload": dict(payload),
            "job_id": job_id,
            "created_at": now,
            "available_at": not_before or now,
            "attempts": 0,
        }
        result = await self._conn.execute(outbox_t.insert().values(**values).returning(outbox_t.c.id))
        entry_id: int = result.scalar_one()
        return entry_id

    async def claim(self, now: datetime, *, redispatch_before: datetime, limit: int) -> list[OutboxEntry]:
        """Entries due now that were never dispatched, or dispatched before `redispatch_before` and not
        done (lost on the way); marks them dispatched at `now`."""
        query = (
            select(outbox_t)
            .where(
                outbox_t.c.done_at.is_(None),
                outbox_t.c.available_at <= now,
                or_(outbox_t.c.dispatched_at.is_(None), outbox_t.c.dispatched_at < redispatch_before),
            )
            .order_by(outbox_t.c.available_at, outbox_t.c.id)
            .limit(limit)
        )
        if self._postgres:
            query = query.with_for_update(skip_locked=True)
        rows = (await self._conn.execute(query)).mappings().all()
        entries = [_to_entry(row) for row in rows]
        if entries:
            await self._conn.execute(
                update(outbox_t)
                .where(outbox_t.c.id.in_([e.id for e in entries]))
                .values(dispatched_at=now, attempts=outbox_t.c.attempts + 1)
            )
        return entries

    async def get(self, entry_id: int, *, lock: bool = False) -> OutboxEntry | None:
        query = select(outbox_t).where(outbox_t.c.id == entry_id, outbox_t.c.done_at.is_(None))
        if lock and self._postgres:
            query = query.with_for_update()
        row = (await self._conn.execute(query)).mappings().first()
        return _to_entry(row) if row else None

    async def done(self, entry_id: int, now: datetime) -> None:
        await self._conn.execute(update(outbox_t).where(outbox_t.c.id == entry_id).values(done_at=now, last_error=None))

    async def retry_later(self, entry_id: int, not_before: datetime, error: str) -> None:
        """Back to pending, not before `not_before` (quiet hours, a channel's backoff)."""
        await self._conn.execute(
            update(outbox_t)
            .where(outbox_t.c.id == entry_id)
            .values(available_at=not_before, dispatched_at=None, last_error=error[:2000])
        )

    async def oldest_pending(self, now: datetime) -> datetime | None:
        query = select(outbox_t.c.available_at).where(outbox_t.c.done_at.is_(None), outbox_t.c.available_at <= now)
        row = (await self._conn.execute(query.order_by(outbox_t.c.available_at).limit(1))).first()
        return row[0] if row else None


def _to_entry(row: Mapping[str, Any]) -> OutboxEntry:
    return OutboxEntry(row["id"], row["kind"], row["payload"], row["job_id"], row["attempts"], row["created_at"])
