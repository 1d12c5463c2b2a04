"""What the uncollected-device reminders read: devices ready for pickup and since when, and which
reminders a job has had."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.model import EventKind
from domain.stages import Stage
from service.persistence.tables import event_t, job_t


@dataclass(frozen=True, slots=True)
class Waiting:
    job_id: int
    branch_id: int
    ready_since: datetime


class ReminderRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def waiting_for_pickup(self, ready_before: datetime) -> list[Waiting]:
        """Devices in ready_for_pickup since before `ready_before` (the index on stage serves it)."""
        became_ready = (
            select(event_t.c.job_id, func.max(event_t.c.at).label("ready_since"))
            .where(event_t.c.kind == EventKind.STAGE_CHANGED.value, event_t.c.to_stage == Stage.READY_FOR_PICKUP.value)
            .group_by(event_t.c.job_id)
            .subquery()
        )
        query = (
            select(job_t.c.id, job_t.c.branch_id, became_ready.c.ready_since)
            .join(became_ready, became_ready.c.job_id == job_t.c.id)
            .where(job_t.c.stage == Stage.READY_FOR_PICKUP.value, became_ready.c.ready_since <= ready_before)
            .order_by(job_t.c.id)
        )
        return [Waiting(row[0], row[1], row[2]) for row in await self._conn.execute(query)]

    async def lock_job(self, job_id: int) -> None:
        """Serialise reminders of one job (two runs at once send each reminder once)."""
        await self._conn.execute(select(job_t.c.id).where(job_t.c.id == job_id).with_for_update())

    async def reminded_days(self, job_id: int, since: datetime) -> set[int]:
        query = select(event_t.c.data).where(
            event_t.c.job_id == job_id, event_t.c.kind == EventKind.REMINDED.value, event_t.c.at >= since
        )
        return {int(row[0]["days"]) for row in await self._conn.execute(query)}
