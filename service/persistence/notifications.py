"""Customer notifications in storage: one row per outbox entry and channel, updated as it goes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.persistence.tables import notification_t, outbox_t

SETTLED = ("sent", "failed", "skipped")
_CLAIM_LOCKS = 0x4E4F  # the advisory-lock namespace of message claims ("NO"), above the job id's 32 bits


@dataclass(slots=True)
class NotificationRecord:
    outbox_id: int
    job_id: int
    channel: str
    template: str
    language: str
    recipient: str
    body: str
    status: str  # pending (a retry or its turn is due), sending (leased), sent, delayed (quiet hours), failed, skipped
    attempts: int
    scheduled_for: datetime
    created_at: datetime
    sent_at: datetime | None = None
    provider_id: str | None = None
    error: str | None = None
    id: int | None = None


class NotificationRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def for_outbox(self, outbox_id: int) -> dict[str, NotificationRecord]:
        query = select(notification_t).where(notification_t.c.outbox_id == outbox_id)
        return {row["channel"]: NotificationRecord(**dict(row)) for row in (await self._conn.execute(query)).mappings()}

    async def for_job(self, job_id: int) -> list[NotificationRecord]:
        query = select(notification_t).where(notification_t.c.job_id == job_id).order_by(notification_t.c.id)
        return [NotificationRecord(**dict(row)) for row in (await self._conn.execute(query)).mappings()]

    async def lock_job(self, job_id: int) -> None:
        """Serialise the claims of one job's messages (which goes first, what was told already) across
        workers on PostgreSQL, with a transaction-scoped advisory lock: a row lock on the job would also
        hold up the staff's changes to it (a surge run measured transitions' p99 doubled). SQLite runs
        one write transaction at a time anyway."""
        if self._conn.dialect.name == "postgresql":
            await self._conn.execute(select(func.pg_advisory_xact_lock(_CLAIM_LOCKS << 32 | job_id)))

    async def told(self, job_id: int, channel: str, template: str, *, besides: int) -> list[Mapping[str, Any]]:
        """The trigger data of the job's other `template` messages on `channel` sent or being sent."""
        query = (
            select(outbox_t.c.payload)
            .join(notification_t, notification_t.c.outbox_id == outbox_t.c.id)
            .where(
                notification_t.c.job_id == job_id,
                notification_t.c.channel == channel,
                notification_t.c.template == template,
                notification_t.c.status.in_(("sent", "sending")),
                notification_t.c.outbox_id != besides,
            )
        )
        return [payload.get("data") or {} for (payload,) in await self._conn.execute(query)]

    async def unsettled_before(self, job_id: int, channel: str, *, before: int) -> list[tuple[str, datetime]]:
        """(status, scheduled_for) of the job's messages asked for before entry `before` that were tried on
        `channel` and are not settled there yet (delayed, a retry pending, being sent)."""
        query = select(notification_t.c.status, notification_t.c.scheduled_for).where(
            notification_t.c.job_id == job_id,
            notification_t.c.channel == channel,
            notification_t.c.outbox_id < before,
            notification_t.c.status.not_in(SETTLED),
        )
        return [(status, scheduled_for) for status, scheduled_for in await self._conn.execute(query)]

    async def save(self, record: NotificationRecord) -> None:
        """Insert, or update the row of the same outbox entry and channel (the entry is locked by the caller)."""
        values = asdict(record)
        values.pop("id")
        if values["error"] is not None:
            values["error"] = values["error"][:2000]
        if record.id is None:
            result = await self._conn.execute(notification_t.insert().values(**values).returning(notification_t.c.id))
            record.id = result.scalar_one()
        else:
            await self._conn.execute(update(notification_t).where(notification_t.c.id == record.id).values(**values))
