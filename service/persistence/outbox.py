"""The transactional outbox: work for the outside world, written with the change that causes it.

The relay claims pending entries (on PostgreSQL with SKIP LOCKED, so several relays never take the same
one), hands them to the task queue with the entry's id as the task id, and marks them dispatched. A
handler marks its entry done; one that is dispatched but never done (Redis lost it, a worker died) is
dispatched again after a while: handlers are idempotent, so a second run changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to write: `kind` names its handler; pending from `not_before` (default: at once)."""

    kind: str
    payload: Mapping[str, Any]
    job_id: int | None = None
    not_before: datetime | None = None


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
        values = _values(NewEntry(kind, payload, job_id, not_before), now)
        result = await self._conn.execute(outbox_t.insert().values(**values).returning(outbox_t.c.id))
        entry_id: int = result.scalar_one()
        return entry_id

    async def add_many(self, entries: Sequence[NewEntry], *, now: datetime) -> None:
        """Entries in the order given, in one multi-row INSERT: a sweep writes a batch of jobs' entries in
        one statement, not one an entry. RETURNING (its rows unread) is what makes SQLAlchemy send the rows
        as one INSERT ... VALUES (...), (...) on both dialects; without it asyncpg runs it once a row."""
        if entries:
            await self._conn.execute(
                outbox_t.insert().returning(outbox_t.c.id), [_values(entry, now) for entry in entries]
            )

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

    async def release(self, entry_ids: Sequence[int]) -> None:
        """Claimed entries the queue did not take: back to never dispatched, for the next claim."""
        if entry_ids:
            await self._conn.execute(
                update(outbox_t)
                .where(outbox_t.c.id.in_(entry_ids), outbox_t.c.done_at.is_(None))
                .values(dispatched_at=None)
            )

    async def get(self, entry_id: int, *, lock: bool = False) -> OutboxEntry | None:
        query = select(outbox_t).where(outbox_t.c.id == entry_id, outbox_t.c.done_at.is_(None))
        if lock and self._postgres:
            query = query.with_for_update()
        row = (await self._conn.execute(query)).mappings().first()
        return _to_entry(row) if row else None

    async def done(self, entry_id: int, now: datetime) -> None:
        await self._conn.execute(update(outbox_t).where(outbox_t.c.id == entry_id).values(done_at=now, last_error=None))

    async def replace_payload(self, entry_id: int, payload: Mapping[str, Any]) -> None:
        """Rewrite an entry's payload (a sent message's sealed secrets are dropped)."""
        await self._conn.execute(update(outbox_t).where(outbox_t.c.id == entry_id).values(payload=dict(payload)))

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


def _values(entry: NewEntry, now: datetime) -> dict[str, Any]:
    return {
        "kind": entry.kind,
        "payload": dict(entry.payload),
        "job_id": entry.job_id,
        "created_at": now,
        "available_at": entry.not_before or now,
        "attempts": 0,
    }


def _to_entry(row: Mapping[str, Any]) -> OutboxEntry:
    return OutboxEntry(row["id"], row["kind"], row["payload"], row["job_id"], row["attempts"], row["created_at"])
