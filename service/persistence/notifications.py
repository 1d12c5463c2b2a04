"""Customer notifications in storage: one row per outbox entry and channel, updated as it goes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.persistence.tables import notification_t


@dataclass(slots=True)
class NotificationRecord:
    outbox_id: int
    job_id: int
    channel: str
    template: str
    language: str
    recipient: str
    body: str
    status: str  # pending (a retry is due), sent, delayed (quiet hours), failed, skipped
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
