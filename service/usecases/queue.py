"""The technician's queue of a branch: its open jobs that need bench work, in the order to take them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.model import Actor, Branch
from domain.queue import BENCH_WORK, at_risk, queue_key
from domain.sla import SlaPolicy
from service.persistence.queue import QueuedJob, QueueRepository
from service.uow import UnitOfWork
from service.usecases.branches import branch_of


@dataclass(frozen=True, slots=True)
class QueueItem:
    job: QueuedJob
    at_risk: bool


async def bench_queue(
    uow: UnitOfWork, actor: Actor, branch_code: str | None, *, now: datetime, sla: SlaPolicy, limit: int
) -> tuple[Branch, list[QueueItem]]:
    """Express first, then by due date, then by parts readiness; a job waiting for parts after every job
    that can be worked on now."""
    branch = await branch_of(uow, actor, branch_code)
    assert branch.id is not None
    jobs = await QueueRepository(uow.connection, uow.lines).bench_jobs(branch.id, BENCH_WORK)
    jobs.sort(key=lambda job: queue_key(job.bench))
    calendar = branch.calendar
    return branch, [QueueItem(job, at_risk(job.bench, calendar, sla, now)) for job in jobs[:limit]]
