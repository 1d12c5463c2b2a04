"""What the technician's queue reads: a branch's jobs in bench-work stages, with their part lines."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.model import FaultCategory, Tier, needs_answer
from domain.queue import BenchJob
from domain.stages import Stage
from service.persistence.parts import LineRepository
from service.persistence.tables import job_t, user_t


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A bench job and what the queue shows of it beyond the ordering."""

    bench: BenchJob
    technician: str | None
    device_brand: str
    device_model: str
    fault_category: FaultCategory


class QueueRepository:
    def __init__(self, conn: AsyncConnection, lines: LineRepository) -> None:
        self._conn = conn
        self._lines = lines

    async def bench_jobs(self, branch_id: int, stages: Collection[Stage]) -> list[QueuedJob]:
        """Every job of the branch in `stages` (the index on (branch, stage) serves it), and all of their
        part lines in one more query. Ordering needs the parts, so it is done by the caller."""
        query = (
            select(
                job_t.c.id,
                job_t.c.stage,
                job_t.c.tier,
                job_t.c.due_at,
                job_t.c.device_brand,
                job_t.c.device_model,
                job_t.c.fault_category,
                job_t.c.estimate,
                job_t.c.approval,
                job_t.c.preapproved_budget_cents,
                user_t.c.username,
            )
            .select_from(job_t.outerjoin(user_t, user_t.c.id == job_t.c.technician_id))
            .where(job_t.c.branch_id == branch_id, job_t.c.stage.in_(sorted(s.value for s in stages)))
        )
        rows = (await self._conn.execute(query)).all()
        lines = await self._lines.for_jobs([row.id for row in rows])
        return [
            QueuedJob(
                BenchJob(
                    row.id,
                    Stage(row.stage),
                    Tier(row.tier),
                    row.due_at,
                    tuple(lines[row.id]),
                    unanswered=needs_answer(
                        estimate_total_cents=_total(row.estimate),
                        budget_cents=row.preapproved_budget_cents,
                        answered=row.approval is not None,
                    ),
                ),
                row.username,
                row.device_brand,
                row.device_model,
                FaultCategory(row.fault_category),
            )
            for row in rows
        ]


def _total(estimate: list[dict[str, Any]] | None) -> int | None:
    """The stored estimate's total (None: no estimate yet)."""
    if not estimate:
        return None
    return sum(int(line["quantity"]) * int(line["unit_price_cents"]) for line in estimate)
