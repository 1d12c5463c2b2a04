"""What the metrics read from the database at each scrape: counts over indexed columns, so a scrape costs
a few milliseconds however large the history, and every process answers the same."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.stages import OPEN
from service.persistence.tables import ON_ORDER_STATUSES, branch_t, job_t, line_t, outbox_t, supplier_t


@dataclass(frozen=True, slots=True)
class StateCounts:
    jobs: dict[tuple[str, str], int]  # open jobs by (branch code, stage)
    late_lines: dict[str, int]  # part lines on order past their ETA, by branch code
    outbox_pending: int  # due and not done
    outbox_undispatched: int  # due and not yet handed to the workers
    outbox_oldest_due: datetime | None
    stale_suppliers: list[str]


async def state_counts(conn: AsyncConnection, now: datetime) -> StateCounts:
    jobs = await conn.execute(
        select(branch_t.c.code, job_t.c.stage, func.count())
        .select_from(job_t.join(branch_t, branch_t.c.id == job_t.c.branch_id))
        .where(job_t.c.stage.in_([stage.value for stage in OPEN]))
        .group_by(branch_t.c.code, job_t.c.stage)
    )
    late = await conn.execute(
        select(branch_t.c.code, func.count())
        .select_from(line_t.join(branch_t, branch_t.c.id == line_t.c.branch_id))
        .where(line_t.c.status.in_(ON_ORDER_STATUSES), line_t.c.eta < now)
        .group_by(branch_t.c.code)
    )
    due = (outbox_t.c.done_at.is_(None), outbox_t.c.available_at <= now)
    pending = await conn.execute(
        select(
            func.count(),
            func.count().filter(outbox_t.c.dispatched_at.is_(None)),
            func.min(outbox_t.c.available_at),
        ).where(*due)
    )
    count, undispatched, oldest = pending.one()
    stale = await conn.execute(select(supplier_t.c.name).where(supplier_t.c.stale_since.is_not(None)))
    return StateCounts(
        jobs={(code, stage): n for code, stage, n in jobs.all()},
        late_lines={code: n for code, n in late.all()},
        outbox_pending=int(count),
        outbox_undispatched=int(undispatched),
        outbox_oldest_due=oldest,  # min() keeps the column's type: aware UTC on both dialects
        stale_suppliers=sorted(name for (name,) in stale.all()),
    )
