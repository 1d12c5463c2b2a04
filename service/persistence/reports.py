"""The reports' reads: one query per figure of the manager's page, and the escalation rungs of the late list.

Every query takes the branch it is about (None: the whole chain, for a chain-wide manager) and returns
plain rows; the figures themselves (rates, per-day and per-week buckets) are computed by the use case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.escalation import Level
from domain.model import Tier
from domain.stages import OPEN, Stage
from service.persistence.tables import escalation_t, event_t, job_t


@dataclass(frozen=True, slots=True)
class Delivered:
    """A collected job and the moments its on-time judgement needs."""

    tier: Tier
    due_at: datetime
    ready_at: datetime | None  # when it first reached ready_for_pickup (None: never recorded)
    collected_at: datetime


class ReportQueries:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def stage_counts(self, branch_id: int | None) -> dict[Stage, int]:
        """Open jobs per stage (closed ones only grow: they are not a workload)."""
        query = select(job_t.c.stage, func.count()).where(job_t.c.stage.in_(sorted(OPEN))).group_by(job_t.c.stage)
        if branch_id is not None:
            query = query.where(job_t.c.branch_id == branch_id)
        return {Stage(stage): int(count) for stage, count in (await self._conn.execute(query)).all()}

    async def collected(self, branch_id: int | None, since: datetime, until: datetime) -> list[Delivered]:
        """Jobs collected in [since, until], each with the first time it was ready for pickup."""
        ready = and_(
            event_t.c.job_id == job_t.c.id,
            event_t.c.to_stage == Stage.READY_FOR_PICKUP.value,
        )
        query = (
            select(job_t.c.tier, job_t.c.due_at, func.min(event_t.c.at), job_t.c.collected_at)
            .select_from(job_t.outerjoin(event_t, ready))
            .where(
                job_t.c.stage == Stage.COLLECTED.value,
                job_t.c.collected_at >= since,
                job_t.c.collected_at <= until,
            )
            .group_by(job_t.c.id, job_t.c.tier, job_t.c.due_at, job_t.c.collected_at)
        )
        if branch_id is not None:
            query = query.where(job_t.c.branch_id == branch_id)
        rows = (await self._conn.execute(query)).all()
        return [Delivered(Tier(tier), due_at, ready_at, collected_at) for tier, due_at, ready_at, collected_at in rows]

    async def intake(self, branch_id: int | None, since: datetime) -> list[datetime]:
        """When each job since `since` was received (the page buckets them by local day)."""
        query = select(job_t.c.created_at).where(job_t.c.created_at >= since)
        if branch_id is not None:
            query = query.where(job_t.c.branch_id == branch_id)
        return [row[0] for row in (await self._conn.execute(query)).all()]

    async def open_rungs(self, job_ids: Sequence[int]) -> dict[tuple[int, str], Level]:
        """The highest open (not cleared) rung per job and promise key."""
        if not job_ids:
            return {}
        query = (
            select(escalation_t.c.job_id, escalation_t.c.promise_key, func.max(escalation_t.c.level))
            .where(escalation_t.c.job_id.in_(sorted(set(job_ids))), escalation_t.c.cleared_at.is_(None))
            .group_by(escalation_t.c.job_id, escalation_t.c.promise_key)
        )
        return {(job_id, key): Level(level) for job_id, key, level in (await self._conn.execute(query)).all()}
