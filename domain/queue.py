"""The technician's queue: which open jobs need bench work, and in what order to take them.

Bench work is every stage where the device is in the workshop's hands and someone can (or soon will) work
on it; awaiting_approval, on_hold and ready_for_pickup wait for someone else. A job in awaiting_parts whose
parts are not all in is *waiting for parts*, and one whose parts are in but whose estimate the customer has
not approved (parts were ordered early, the estimate is over any pre-approved budget) is *waiting for the
customer*: both go after every job that can be worked on now, whatever their tier, so the top of the
queue is always something a technician can pick up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from domain.calendar import BusinessCalendar
from domain.model import Tier
from domain.parts import PartLine, parts_eta
from domain.sla import SlaPolicy, forecast
from domain.stages import Stage

BENCH_WORK: frozenset[Stage] = frozenset(
    {Stage.RECEIVED, Stage.DIAGNOSING, Stage.AWAITING_PARTS, Stage.REPAIRING, Stage.QUALITY_CHECK}
)


@dataclass(frozen=True, slots=True)
class BenchJob:
    """What the queue needs of a job: its stage, promise and part lines."""

    job_id: int
    stage: Stage
    tier: Tier
    due_at: datetime
    lines: Sequence[PartLine] = ()
    # The repair may not start before the customer answers the estimate (`needs_answer`).
    unanswered: bool = False

    @property
    def parts_ready(self) -> bool:
        """No part line is still awaited (a job without parts has nothing to wait for)."""
        return not any(line.waiting for line in self.lines)

    @property
    def parts_eta(self) -> datetime | None:
        """When the last awaited part should arrive; None when nothing is awaited or a date is unknown."""
        return parts_eta(self.lines)

    @property
    def waiting_for_parts(self) -> bool:
        return self.stage is Stage.AWAITING_PARTS and not self.parts_ready

    @property
    def waiting_for_customer(self) -> bool:
        return self.stage is Stage.AWAITING_PARTS and self.unanswered

    @property
    def workable(self) -> bool:
        return not (self.waiting_for_parts or self.waiting_for_customer)


def queue_key(job: BenchJob) -> tuple[bool, bool, datetime, tuple[int, datetime], int]:
    """Workable before waiting for parts or the customer, then express first, then the earliest promise, then parts
    readiness (all in, then expected soonest, then no date yet), then the oldest job."""
    eta = job.parts_eta
    if job.parts_ready:
        readiness = (0, job.due_at)
    elif eta is not None:
        readiness = (1, eta)
    else:
        readiness = (2, job.due_at)
    return (not job.workable, job.tier is not Tier.EXPRESS, job.due_at, readiness, job.job_id)


def in_queue_order(jobs: Iterable[BenchJob]) -> list[BenchJob]:
    """The bench-work jobs among `jobs`, in the order to take them."""
    return sorted((job for job in jobs if job.stage in BENCH_WORK), key=queue_key)


def at_risk(job: BenchJob, calendar: BusinessCalendar, policy: SlaPolicy, now: datetime) -> bool:
    """Whether the promise is likely missed: the parts' arrival plus the bench time left when a date is known,
    else the bench time from now."""
    expected = forecast(job.tier, job.due_at, job.lines, calendar, policy, now)
    if expected.ready_at is not None:
        return expected.at_risk
    return policy.ready_at(job.tier, calendar, now) > job.due_at
